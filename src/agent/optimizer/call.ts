/**
 * One model call, kept whole for the transcript: the request as sent, the
 * reply or the error, tokens and latency. The profiler's diagnosis and the
 * optimizer's rewrites both go through here, so every call is auditable the
 * same way (.agent-steel/transcripts/<id>.json, written by the loop).
 */
import type { TranscriptCall } from "../attempts/transcripts.ts";
import type { ChatProvider, ChatReply, ChatRequest } from "../providers/provider.ts";

export type { TranscriptCall } from "../attempts/transcripts.ts";

export function transcriptCall(
  provider: ChatProvider,
  req: ChatRequest,
  outcome: { reply: ChatReply } | { error: unknown },
): TranscriptCall {
  const base = {
    purpose: req.purpose,
    system: req.system,
    messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
  };
  if ("reply" in outcome) {
    const r = outcome.reply;
    return {
      ...base,
      reply: r.text,
      usage: r.usage,
      provider: r.provider,
      model: r.model,
      latencyMs: r.latencyMs,
    };
  }
  const e = outcome.error;
  const usage = (e as { usage?: unknown })?.usage;
  return {
    ...base,
    reply: null,
    // Provider errors are key-free one-liners (providers/errors.ts).
    error: e instanceof Error ? `${e.name}: ${e.message}` : String(e),
    ...(usage ? { usage } : {}),
    provider: provider.name,
    model: provider.model,
  };
}

/**
 * Call the model. The transcript entry goes to `onCall` whether the call
 * succeeds or fails (then the original error is rethrown, so a budget or
 * auth error keeps its kind for the loop).
 */
export async function callModel(
  provider: ChatProvider,
  req: ChatRequest,
  onCall?: (call: TranscriptCall) => void,
): Promise<{ reply: ChatReply; call: TranscriptCall }> {
  let reply: ChatReply;
  try {
    reply = await provider.complete(req);
  } catch (error) {
    onCall?.(transcriptCall(provider, req, { error }));
    throw error;
  }
  const call = transcriptCall(provider, req, { reply });
  onCall?.(call);
  return { reply, call };
}
