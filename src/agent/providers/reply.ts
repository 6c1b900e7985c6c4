/** The last step every provider shares: a reply with text, or a "bad-reply" that still counts its tokens. */
import { ProviderError } from "./errors.ts";
import type { ChatReply, ChatRequest, ProviderName, Usage } from "./types.ts";

/** A token count from characters, for servers that report none: about 4 characters a token. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** The characters of a request's prompt, for estimates. */
export function promptChars(req: ChatRequest): number {
  return req.system.length + req.messages.reduce((n, m) => n + m.content.length, 0);
}

/** Reasons that mean "cut at maxTokens", across the APIs. */
const TRUNCATED = new Set(["length", "max_tokens", "model_context_window_exceeded"]);

export function finishReply(
  reply: Omit<ChatReply, "truncated">,
  purpose: string,
): ChatReply {
  const truncated = reply.finishReason !== undefined && TRUNCATED.has(reply.finishReason);
  if (reply.text.trim() === "") {
    const why = reply.finishReason ? ` (finish reason "${reply.finishReason}")` : "";
    throw new ProviderError(
      "bad-reply",
      `${reply.provider} (${purpose}): the model's reply has no text${why} — fix: ` +
        (truncated ? "raise the reply's token limit" : "retry, or try another model"),
      { provider: reply.provider, usage: reply.usage },
    );
  }
  return { ...reply, truncated };
}

/** Usage from a server's counts, or an estimate when it gave none. */
export function usageOr(
  input: number | undefined | null,
  output: number | undefined | null,
  req: ChatRequest,
  text: string,
): Usage {
  if (typeof input === "number" && typeof output === "number") {
    return { inputTokens: input, outputTokens: output };
  }
  return {
    inputTokens: Math.ceil(promptChars(req) / 4),
    outputTokens: estimateTokens(text),
    estimated: true,
  };
}

/** A stream that ended before the server said the reply was done. */
export function streamCut(provider: ProviderName, req: ChatRequest, text: string): ProviderError {
  return new ProviderError(
    "bad-reply",
    `${provider} (${req.purpose}): the reply's stream ended before the reply did — fix: retry`,
    { provider, usage: usageOr(undefined, undefined, req, text) },
  );
}
