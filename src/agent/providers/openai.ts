/**
 * "openai" and "openai-compatible" (Ollama, llama.cpp's server, vLLM,
 * mlx_lm.server, …) through the official `openai` SDK's chat completions.
 *
 * - "openai" asks with `max_completion_tokens` (newer OpenAI models refuse
 *   `max_tokens`); "openai-compatible" with `max_tokens`, which every
 *   compatible server reads.
 * - Streamed replies ask for `stream_options.include_usage`, so the last chunk
 *   carries the counts; a server that sends none gets an estimate, flagged.
 * - "openai-compatible" never sends the user's OpenAI organization or project
 *   headers (the SDK would read OPENAI_ORG_ID / OPENAI_PROJECT_ID).
 * - A client is made per call, so the key lives in the provider's closure,
 *   never in an object someone might log.
 */
import OpenAI from "openai";
import { ProviderError } from "./errors.ts";
import { type CallTrace, guardedFetch, type HttpKey, sdkFailure, sdkLogger } from "./http.ts";
import { finishReply, streamCut, usageOr } from "./reply.ts";
import {
  type ChatProvider,
  type ChatReply,
  type ChatRequest,
  DEFAULT_MAX_RETRIES,
  DEFAULT_TIMEOUT_MS,
  type ProviderOptions,
  shouldStream,
} from "./types.ts";

export function openAiProvider(
  opts: ProviderOptions,
  key: HttpKey,
  redact: (s: string) => string,
): ChatProvider {
  const name = opts.provider === "openai" ? "openai" : "openai-compatible";
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const compatible = name === "openai-compatible";

  const client = (trace: CallTrace) =>
    new OpenAI({
      apiKey: key.value,
      baseURL: opts.baseUrl,
      timeout: timeoutMs,
      maxRetries: opts.maxRetries ?? DEFAULT_MAX_RETRIES,
      fetch: guardedFetch(timeoutMs, trace),
      logLevel: "warn",
      logger: sdkLogger(redact),
      adminAPIKey: null,
      webhookSecret: null,
      ...(compatible ? { organization: null, project: null } : {}),
    });

  async function complete(req: ChatRequest): Promise<ChatReply> {
    const started = performance.now();
    const trace: CallTrace = { attempts: 0, stalled: false };
    const sdk = client(trace);
    const stream = shouldStream(opts.stream, req.maxTokens);
    const messages: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [
      ...(req.system ? [{ role: "system" as const, content: req.system }] : []),
      ...req.messages.map((m) => ({ role: m.role, content: m.content })),
    ];
    const limit = compatible
      ? { max_tokens: req.maxTokens }
      : { max_completion_tokens: req.maxTokens };
    const base = { model: opts.model, messages, ...limit };
    try {
      let text = "";
      let finishReason: string | undefined;
      let model = opts.model;
      let counts: OpenAI.Completions.CompletionUsage | undefined | null;
      if (stream) {
        const chunks = await sdk.chat.completions.create(
          { ...base, stream: true, stream_options: { include_usage: true } },
          { signal: req.signal },
        );
        for await (const chunk of chunks) {
          const choice = chunk.choices?.[0];
          text += choice?.delta?.content ?? "";
          finishReason = choice?.finish_reason ?? finishReason;
          if (chunk.usage) counts = chunk.usage;
          if (chunk.model) model = chunk.model;
        }
      } else {
        const done = await sdk.chat.completions.create(base, { signal: req.signal });
        const choice = done.choices?.[0];
        text = choice?.message?.content ?? "";
        finishReason = choice?.finish_reason ?? undefined;
        counts = done.usage;
        if (done.model) model = done.model;
      }
      // An SDK stream ends quietly when aborted or cut: a part must not pass for a whole reply.
      req.signal?.throwIfAborted();
      if (stream && finishReason === undefined) throw streamCut(name, req, text);
      return finishReply({
        text,
        usage: usageOr(counts?.prompt_tokens, counts?.completion_tokens, req, text),
        provider: name,
        model,
        latencyMs: performance.now() - started,
        finishReason,
        streamed: stream,
      }, req.purpose);
    } catch (e) {
      if (e instanceof ProviderError) throw e;
      throw sdkFailure(e, OpenAI, {
        provider: name,
        purpose: req.purpose,
        baseUrl: sdk.baseURL,
        keyEnv: key.env,
        timeoutMs,
        trace,
        redact,
        signal: req.signal,
      });
    }
  }

  return { name, model: opts.model, complete };
}
