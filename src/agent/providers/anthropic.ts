/**
 * "anthropic" through the official `@anthropic-ai/sdk` messages API.
 *
 * Streaming: above STREAM_ABOVE_MAX_TOKENS (mode "auto") the reply is
 * streamed, as the SDK refuses a plain call that may take over 10 minutes
 * (≈21.3k tokens). The events are summed here: text deltas, input tokens
 * from message_start, output tokens (cumulative) from message_delta. Input
 * counts include prompt-cache reads and writes: they are tokens spent.
 *
 * A client is made per call, so the key lives in the provider's closure,
 * never in an object someone might log.
 */
import Anthropic from "@anthropic-ai/sdk";
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

interface InputCounts {
  input_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

function inputTokens(u: InputCounts | undefined): number | undefined {
  if (typeof u?.input_tokens !== "number") return undefined;
  return u.input_tokens + (u.cache_creation_input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0);
}

export function anthropicProvider(
  opts: ProviderOptions,
  key: HttpKey,
  redact: (s: string) => string,
): ChatProvider {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;

  const client = (trace: CallTrace) =>
    new Anthropic({
      apiKey: key.value,
      baseURL: opts.baseUrl,
      timeout: timeoutMs,
      maxRetries: opts.maxRetries ?? DEFAULT_MAX_RETRIES,
      fetch: guardedFetch(timeoutMs, trace),
      logLevel: "warn",
      logger: sdkLogger(redact),
      webhookKey: null,
    });

  async function complete(req: ChatRequest): Promise<ChatReply> {
    const started = performance.now();
    const trace: CallTrace = { attempts: 0, stalled: false };
    const sdk = client(trace);
    const stream = shouldStream(opts.stream, req.maxTokens);
    const base = {
      model: opts.model,
      max_tokens: req.maxTokens,
      ...(req.system ? { system: req.system } : {}),
      messages: req.messages.map((m) => ({ role: m.role, content: m.content })),
    };
    try {
      let text = "";
      let finishReason: string | undefined;
      let model = opts.model;
      let input: number | undefined;
      let output: number | undefined;
      let stopped = false;
      if (stream) {
        const events = await sdk.messages.create({ ...base, stream: true }, {
          signal: req.signal,
        });
        for await (const ev of events) {
          if (ev.type === "message_start") {
            input = inputTokens(ev.message.usage);
            output = ev.message.usage?.output_tokens;
            if (ev.message.model) model = ev.message.model;
          } else if (ev.type === "content_block_delta" && ev.delta.type === "text_delta") {
            text += ev.delta.text;
          } else if (ev.type === "message_delta") {
            finishReason = ev.delta.stop_reason ?? finishReason;
            input = inputTokens(ev.usage) ?? input;
            output = ev.usage?.output_tokens ?? output;
          } else if (ev.type === "message_stop") {
            stopped = true;
          }
        }
      } else {
        const done = await sdk.messages.create(base, { signal: req.signal });
        for (const block of done.content ?? []) if (block.type === "text") text += block.text;
        finishReason = done.stop_reason ?? undefined;
        input = inputTokens(done.usage);
        output = done.usage?.output_tokens;
        if (done.model) model = done.model;
      }
      // An SDK stream ends quietly when aborted or cut: a part must not pass for a whole reply.
      req.signal?.throwIfAborted();
      if (stream && !stopped) throw streamCut("anthropic", req, text);
      return finishReply({
        text,
        usage: usageOr(input, output, req, text),
        provider: "anthropic",
        model,
        latencyMs: performance.now() - started,
        finishReason,
        streamed: stream,
      }, req.purpose);
    } catch (e) {
      if (e instanceof ProviderError) throw e;
      throw sdkFailure(e, Anthropic, {
        provider: "anthropic",
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

  return { name: "anthropic", model: opts.model, complete };
}
