/**
 * One stage's conversation with the model: ask, check the reply by running
 * it, and on a failure send the reason back and ask again, up to a limit.
 * Every reply is one attempt: recorded (with its transcript) before the
 * next question. An unreachable model is not an attempt: its error goes up.
 */
import type { ChatMessage, ChatProvider } from "../agent/providers/provider.ts";
import type { TranscriptCall } from "../agent/attempts/transcripts.ts";
import type { Verdict } from "../agent/attempts/schema.ts";
import { type Stage, WeldFailure } from "./failure.ts";
import type { Parsed } from "./reply.ts";

export type Checked<T> =
  | { ok: true; value: T; verdict: Verdict; reason: string }
  | {
    ok: false;
    /** One line for the AttemptDB and, on the last attempt, for the user. */
    reason: string;
    /** What the model is told (may be longer than the reason: a compile log). */
    feedback: string;
    verdict: Verdict;
  };

/** Check what a reply holds; one that does not parse is rejected, the parser's reason fed back. */
export function checkParsed<P, T>(
  parse: (reply: string) => Parsed<P>,
  check: (value: P) => Promise<Checked<T>>,
): (reply: string) => Promise<Checked<T>> {
  return async (reply) => {
    const parsed = parse(reply);
    if (!parsed.ok) {
      return { ok: false, verdict: "rejected", reason: parsed.reason, feedback: parsed.reason };
    }
    return await check(parsed.value);
  };
}

export interface Turn<T> {
  retry: number;
  reply: string;
  checked: Checked<T>;
  calls: TranscriptCall[];
  tokens: { input: number; output: number };
}

export interface Conversation<T> {
  stage: Stage;
  provider: ChatProvider;
  system: string;
  prompt: string;
  purpose: string;
  maxTokens: number;
  /** Replies allowed in all (1 + retries). */
  attempts: number;
  signal?: AbortSignal;
  check(reply: string, retry: number): Promise<Checked<T>>;
  record(turn: Turn<T>): Promise<void>;
}

export async function converse<T>(c: Conversation<T>): Promise<T> {
  const messages: ChatMessage[] = [{ role: "user", content: c.prompt }];
  let last = "";
  for (let retry = 0; retry < c.attempts; retry++) {
    c.signal?.throwIfAborted();
    const asked = [...messages];
    const reply = await c.provider.complete({
      system: c.system,
      messages: asked,
      maxTokens: c.maxTokens,
      purpose: retry === 0 ? c.purpose : `${c.purpose}-retry`,
      signal: c.signal,
    });
    const checked = await c.check(reply.text, retry);
    await c.record({
      retry,
      reply: reply.text,
      checked,
      calls: [{
        purpose: retry === 0 ? c.purpose : `${c.purpose}-retry`,
        system: c.system,
        messages: asked,
        reply: reply.text,
        usage: reply.usage,
        provider: reply.provider,
        model: reply.model,
        latencyMs: reply.latencyMs,
      }],
      tokens: { input: reply.usage.inputTokens, output: reply.usage.outputTokens },
    });
    if (checked.ok) return checked.value;
    last = checked.reason;
    messages.push(
      { role: "assistant", content: reply.text },
      {
        role: "user",
        content:
          `That did not pass: ${checked.feedback}\n\nAnswer again, in the same format, with the whole files.`,
      },
    );
  }
  throw new WeldFailure(
    c.stage,
    `${last} (after ${c.attempts} attempt${c.attempts === 1 ? "" : "s"})`,
  );
}
