/**
 * One candidate of a round: ask the model, read its reply, stage and verify
 * the kernel, and on a rejected reply, a compile error, a fault or a wrong
 * result feed that back and ask again (up to the policy's retries). Every
 * attempt is recorded (its AttemptDB line and transcript) as it ends —
 * except one that beat the best: whether it is kept is the round's call.
 */
import { type ChatRequest, ProviderError, type Usage } from "../providers/provider.ts";
import { type AttemptEntry, newAttemptId } from "../attempts/schema.ts";
import type { TranscriptCall } from "../attempts/transcripts.ts";
import type { CandidateVerdict, Profile } from "./steps.ts";
import type { Lineage } from "./lineage.ts";

/** The round's diagnosis call, recorded with the first attempt that ends. */
export class RoundShared {
  #profile: Profile | null;
  constructor(profile: Profile) {
    this.#profile = profile;
  }
  claim(): { calls: TranscriptCall[]; tokens: { input: number; output: number } } {
    const p = this.#profile;
    this.#profile = null;
    return p
      ? { calls: p.calls, tokens: p.tokens }
      : { calls: [], tokens: { input: 0, output: 0 } };
  }
}

export interface CandidateResult {
  /** The last attempt, when it beat the best: the round decides whether it is kept. */
  fast: { entry: AttemptEntry; verdict: CandidateVerdict } | null;
  /** Why the candidate ended before its attempts were done. */
  stop: null | { reason: "budget"; message: string } | { reason: "provider"; error: ProviderError };
}

/** Provider failures that end the whole run rather than one candidate. */
const FATAL = new Set(["config", "auth"]);

type Asked =
  | { ok: true; text: string; call: TranscriptCall; usage: Usage }
  | { ok: false; reason: string; call: TranscriptCall; usage: Usage | undefined }
  | { stop: NonNullable<CandidateResult["stop"]> };

/** One call to the model; a reply with no text is an attempt like any refused reply. */
async function ask(l: Lineage, req: ChatRequest): Promise<Asked> {
  const call: TranscriptCall = {
    purpose: req.purpose,
    system: req.system,
    messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
    reply: null,
    provider: l.provider.name,
    model: l.provider.model,
  };
  try {
    const r = await l.provider.complete({ ...req, signal: l.signal });
    const done = { ...call, reply: r.text, usage: r.usage, model: r.model, latencyMs: r.latencyMs };
    return { ok: true, text: r.text, call: done, usage: r.usage };
  } catch (e) {
    if (!(e instanceof ProviderError)) throw e;
    if (e.kind === "budget") return { stop: { reason: "budget", message: e.message } };
    if (FATAL.has(e.kind)) throw e;
    if (e.kind !== "bad-reply") return { stop: { reason: "provider", error: e } };
    return {
      ok: false,
      reason: e.message,
      call: { ...call, error: e.message, usage: e.usage },
      usage: e.usage,
    };
  }
}

export async function runCandidate(
  l: Lineage,
  round: number,
  candidate: number,
  best: AttemptEntry,
  profile: Profile,
  shared: RoundShared,
): Promise<CandidateResult> {
  let req = await l.steps.request({ round, candidate, best, profile, entries: l.entries });
  for (let retry = 0; retry <= l.policy.retries; retry++) {
    l.signal.throwIfAborted();
    const id = newAttemptId(l.kernel, round, candidate, retry);
    const asked = await ask(l, req);
    if ("stop" in asked) return { fast: null, stop: asked.stop };

    let verdict = refused(asked.ok ? "" : asked.reason);
    let technique = "";
    let source = "";
    if (asked.ok) {
      const draft = l.steps.parse(asked.text);
      technique = draft.technique;
      if (!draft.ok) verdict = refused(draft.reason);
      else if (l.scrub(draft.source) !== draft.source) {
        // A key in a kernel would reach the kernel file and session.json: never use one.
        verdict = refused("the kernel source holds an API key this process holds; not used");
      } else {
        source = draft.source;
        const staged = await l.steps.stage(source, id);
        try {
          verdict = await l.steps.verify(staged);
        } finally {
          await l.steps.discard(staged);
        }
      }
    }

    const diagnosis = shared.claim();
    const entry = await l.entryOf({
      id,
      parentId: best.id,
      round,
      candidate,
      retry,
      technique,
      source,
      profile: profile.facts,
      verdict,
      tokens: {
        input: diagnosis.tokens.input + (asked.usage?.inputTokens ?? 0),
        output: diagnosis.tokens.output + (asked.usage?.outputTokens ?? 0),
      },
      calls: [...diagnosis.calls, asked.call],
    });
    if (verdict.verdict === "kept") return { fast: { entry, verdict }, stop: null };
    await l.record(entry);
    if (verdict.verdict === "slower" || retry === l.policy.retries) break;
    req = l.steps.retry(req, asked.ok ? asked.text : "", verdict);
  }
  return { fast: null, stop: null };
}

function refused(reason: string): CandidateVerdict {
  return {
    verdict: "rejected",
    reason,
    bench: null,
    correctness: null,
    deltaPct: null,
    plausible: null,
    record: null,
  };
}
