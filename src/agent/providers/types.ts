/**
 * The shapes every LLM provider shares. The agent codes against these alone;
 * `provider.ts` is the public entry that re-exports them.
 */

export type ProviderName = "openai" | "anthropic" | "openai-compatible" | "command";

export interface ChatMessage {
  role: "user" | "assistant";
  content: string;
}

export interface ChatRequest {
  system: string;
  messages: ChatMessage[];
  maxTokens: number;
  /** What the call is for, for logs and transcripts: "diagnosis" | "rewrite" | … */
  purpose: string;
  /** Aborting it stops the call; the call then rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface Usage {
  inputTokens: number;
  outputTokens: number;
  /** True when the counts are estimated (chars / 4), not reported by the model's server. */
  estimated?: boolean;
}

export interface ChatReply {
  text: string;
  usage: Usage;
  provider: ProviderName;
  /** The model that answered, as the server named it (else the model asked for). */
  model: string;
  /** Wall time of the whole call, retries included. */
  latencyMs: number;
  /** The server's reason for stopping ("stop", "end_turn", "length", "max_tokens", …), when given. */
  finishReason?: string;
  /** The reply was cut at maxTokens. */
  truncated?: boolean;
  /** The reply was streamed (see `stream` in ProviderOptions). */
  streamed?: boolean;
}

export interface ChatProvider {
  readonly name: ProviderName;
  readonly model: string;
  complete(req: ChatRequest): Promise<ChatReply>;
}

/**
 * When a reply is streamed: "auto" (default) streams when maxTokens is above
 * STREAM_ABOVE_MAX_TOKENS, "always", or "never".
 */
export type StreamMode = "auto" | "always" | "never";

export interface ProviderOptions {
  provider: ProviderName;
  model: string;
  /** openai-compatible (required); openai/anthropic (optional override, for tests). */
  baseUrl?: string;
  /**
   * Name of the env var holding the key (default OPENAI_API_KEY / ANTHROPIC_API_KEY).
   * openai-compatible sends a key only from a variable named here, never OPENAI_API_KEY
   * by default: a local or third-party server must not receive the user's OpenAI key.
   */
  apiKeyEnv?: string;
  /**
   * Provider "command": a program (split like a shell would, no shell) reading the
   * prompt on stdin, reply on stdout. See command.ts for the prompt format.
   */
  command?: string;
  /**
   * Per HTTP attempt: the most time to wait for the reply's headers, and the longest
   * silence while its body arrives. Per call for "command". Default 10 min.
   */
  timeoutMs?: number;
  /** Retries of a failed HTTP attempt (408/409/429/≥500, connection errors, timeouts). Default 2. */
  maxRetries?: number;
  /** Default "auto". */
  stream?: StreamMode;
}

/** Above this maxTokens a reply is streamed ("auto"): the Anthropic SDK refuses
 *  non-streaming calls that may exceed 10 minutes (≈21.3k tokens); keep a margin. */
export const STREAM_ABOVE_MAX_TOKENS = 16_000;

export const DEFAULT_TIMEOUT_MS = 10 * 60 * 1000;
export const DEFAULT_MAX_RETRIES = 2;

export function shouldStream(mode: StreamMode | undefined, maxTokens: number): boolean {
  if (mode === "always") return true;
  if (mode === "never") return false;
  return maxTokens > STREAM_ABOVE_MAX_TOKENS;
}
