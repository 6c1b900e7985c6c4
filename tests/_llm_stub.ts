/**
 * A scripted LLM server on loopback, for tests: a real HTTP server
 * (Deno.serve on 127.0.0.1, a free port) that speaks
 *
 * - the OpenAI chat-completions API: POST …/chat/completions, plain, or
 *   `stream: true` as SSE chunks (a final usage chunk when the request asks
 *   for `stream_options.include_usage`, as OpenAI does), then `data: [DONE]`;
 * - the Anthropic messages API: POST …/messages, plain, or `stream: true` as
 *   SSE events: message_start, content_block_start, content_block_delta…,
 *   content_block_stop, message_delta (with usage), message_stop.
 *
 * Each request takes the next reply of the script; every request is recorded
 * (headers and body, and the prompt in one shape for both APIs) before it
 * is answered.
 *
 *     const stub = startLlmStub(["a reply", { status: 429 }, { text: "b", usage: { input: 9, output: 3 } }]);
 *     openProvider({ provider: "openai", model: "m", baseUrl: `${stub.url}/v1` }, env);
 *     openProvider({ provider: "anthropic", model: "m", baseUrl: stub.url }, env);
 *     stub.push("one more");                  // append to the script
 *     stub.requests[0].messages.at(-1)?.content, stub.requests[0].headers.authorization
 *     await stub.close();
 *
 * Instead of (or after) a list, a function can answer: `startLlmStub((req, i) => …)`
 * is called when the queue is empty. With neither, a request gets HTTP 500
 * "llm stub: script exhausted" (marked not retryable), so a test that asks
 * more than it scripted fails loudly.
 *
 * Error replies carry `retry-after-ms: 1` unless `headers` says otherwise, so
 * the SDKs' retries do not wait their real back-off (0.5–8 s) in tests.
 */

/** One scripted answer: a string is `{ text }`. */
export type StubReply = string | ScriptedReply;

export interface ScriptedReply {
  /** The reply's text. */
  text?: string;
  /** Token counts to report (default: characters / 4 of the prompt and of the text). */
  usage?: { input: number; output: number };
  /** Default "stop" (OpenAI) / "end_turn" (Anthropic). */
  finishReason?: string;
  /** The model named in the reply (default: the one asked for). */
  model?: string;
  /** Answer with this HTTP status instead (429, 500, 401, …). */
  status?: number;
  /**
   * Send this body as it is (with `status`, default 200), instead of a reply made
   * from `text`; an error status without one gets the API's error JSON. A
   * function sees the request (to echo its key back, say).
   */
  body?: string | ((req: Recorded) => string);
  /** Extra response headers. */
  headers?: Record<string, string>;
  /** Wait this long before answering (before the headers). */
  delayMs?: number;
  /** Never answer (until the stub closes). */
  hang?: boolean;
  /** Send the headers and part of the body, then nothing more. */
  stall?: boolean;
  /** Send the headers and part of the body, then end it (a connection cut short). */
  cut?: boolean;
}

export interface Recorded {
  api: "openai" | "anthropic" | "other";
  method: string;
  path: string;
  /** Lower-case names. */
  headers: Record<string, string>;
  /** The JSON body (or the raw text when it is not JSON). */
  // deno-lint-ignore no-explicit-any
  body: any;
  stream: boolean;
  model: string;
  maxTokens?: number;
  /** The system prompt, from either API's place for it. */
  system: string;
  /** The conversation without the system prompt. */
  messages: { role: string; content: string }[];
}

export interface LlmStub {
  /** http://127.0.0.1:PORT (OpenAI SDKs want `${url}/v1`; any path ending in the API's route works). */
  url: string;
  requests: Recorded[];
  push(...replies: StubReply[]): void;
  /** Scripted replies not yet used. */
  pending(): number;
  close(): Promise<void>;
}

type Responder = (req: Recorded, index: number) => StubReply;

export function startLlmStub(script: StubReply[] | Responder = []): LlmStub {
  const queue: StubReply[] = Array.isArray(script) ? [...script] : [];
  const responder = Array.isArray(script) ? undefined : script;
  const requests: Recorded[] = [];
  const closing = Promise.withResolvers<void>();

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (request) => {
      const rec = await record(request);
      const index = requests.push(rec) - 1;
      const next = queue.shift() ?? responder?.(rec, index);
      const reply: ScriptedReply = typeof next === "string" ? { text: next } : next ?? {
        status: 500,
        body: JSON.stringify({ error: { message: "llm stub: script exhausted" } }),
        headers: { "x-should-retry": "false" },
      };
      // (Not request.signal: Deno aborts it after every response, and warns.)
      const gone = closing.promise;
      if (reply.delayMs) await Promise.race([sleep(reply.delayMs), gone]);
      if (reply.hang) {
        await gone;
        return new Response(null, { status: 503 });
      }
      return answer(rec, reply, gone);
    },
  );

  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    push: (...replies) => void queue.push(...replies),
    pending: () => queue.length,
    async close() {
      closing.resolve();
      await server.shutdown();
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function record(request: Request): Promise<Recorded> {
  const path = new URL(request.url).pathname;
  const api = path.endsWith("/chat/completions")
    ? "openai"
    : path.endsWith("/messages")
    ? "anthropic"
    : "other";
  const raw = await request.text();
  // deno-lint-ignore no-explicit-any
  let body: any = raw;
  try {
    body = JSON.parse(raw);
  } catch { /* keep the text */ }
  const headers: Record<string, string> = {};
  request.headers.forEach((v, k) => headers[k] = v);
  // deno-lint-ignore no-explicit-any
  const text = (c: any): string =>
    typeof c === "string"
      ? c
      : Array.isArray(c)
      ? c.map((p) => (typeof p?.text === "string" ? p.text : "")).join("")
      : "";
  // deno-lint-ignore no-explicit-any
  const all: { role: string; content: string }[] = (body?.messages ?? []).map((m: any) => ({
    role: String(m?.role),
    content: text(m?.content),
  }));
  const isSystem = (m: { role: string }) => m.role === "system" || m.role === "developer";
  const system = api === "anthropic"
    ? text(body?.system)
    : all.filter(isSystem).map((m) => m.content).join("\n");
  return {
    api,
    method: request.method,
    path,
    headers,
    body,
    stream: body?.stream === true,
    model: String(body?.model ?? ""),
    maxTokens: body?.max_tokens ?? body?.max_completion_tokens,
    system,
    messages: all.filter((m) => !isSystem(m)),
  };
}

const enc = new TextEncoder();

function answer(rec: Recorded, reply: ScriptedReply, gone: Promise<void>): Response {
  const headers = new Headers(reply.headers);
  const status = reply.status ?? 200;
  if (status >= 400 || reply.body !== undefined) {
    if (status >= 400 && !headers.has("retry-after-ms")) headers.set("retry-after-ms", "1");
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    const body = typeof reply.body === "function"
      ? reply.body(rec)
      : reply.body ?? errorBody(rec.api, status);
    return new Response(body, { status, headers });
  }
  const text = reply.text ?? "";
  const promptChars = rec.system.length + rec.messages.reduce((n, m) => n + m.content.length, 0);
  const usage = reply.usage ??
    { input: Math.ceil(promptChars / 4), output: Math.ceil(text.length / 4) };
  const model = reply.model ?? rec.model;
  const parts = rec.stream
    ? (rec.api === "anthropic" ? anthropicEvents : openAiChunks)(rec, text, usage, model, reply)
    : [JSON.stringify(
      (rec.api === "anthropic" ? anthropicMessage : openAiCompletion)(text, usage, model, reply),
    )];
  headers.set("content-type", rec.stream ? "text/event-stream" : "application/json");
  if (!reply.stall && !reply.cut) return new Response(parts.join(""), { status: 200, headers });
  // Half of the parts (half of a plain body's characters), then the end, or silence.
  const first = parts.length > 1
    ? parts.slice(0, Math.ceil(parts.length / 2)).join("")
    : parts[0].slice(0, Math.floor(parts[0].length / 2));
  if (reply.cut) return new Response(first, { status: 200, headers });
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      controller.enqueue(enc.encode(first));
      await gone;
      try {
        controller.close();
      } catch { /* the client cancelled */ }
    },
  });
  return new Response(body, { status: 200, headers });
}

function errorBody(api: Recorded["api"], status: number): string {
  const type = status === 429
    ? "rate_limit_error"
    : status === 401
    ? "authentication_error"
    : status >= 500
    ? "api_error"
    : "invalid_request_error";
  const message = `llm stub: scripted HTTP ${status}`;
  return JSON.stringify(
    api === "anthropic"
      ? { type: "error", error: { type, message } }
      : { error: { message, type } },
  );
}

type Usage = { input: number; output: number };

function pieces(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += 16) out.push(text.slice(i, i + 16));
  return out.length ? out : [""];
}

const sse = (data: unknown, event?: string) =>
  `${event ? `event: ${event}\n` : ""}data: ${JSON.stringify(data)}\n\n`;

function openAiCompletion(text: string, usage: Usage, model: string, reply: ScriptedReply) {
  return {
    id: "chatcmpl-stub",
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{
      index: 0,
      message: { role: "assistant", content: text },
      finish_reason: reply.finishReason ?? "stop",
    }],
    usage: {
      prompt_tokens: usage.input,
      completion_tokens: usage.output,
      total_tokens: usage.input + usage.output,
    },
  };
}

function openAiChunks(
  rec: Recorded,
  text: string,
  usage: Usage,
  model: string,
  reply: ScriptedReply,
): string[] {
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    sse({
      id: "chatcmpl-stub",
      object: "chat.completion.chunk",
      created: Math.floor(Date.now() / 1000),
      model,
      choices,
      ...extra,
    });
  const out = pieces(text).map((p, i) =>
    chunk([{
      index: 0,
      delta: i === 0 ? { role: "assistant", content: p } : { content: p },
      finish_reason: null,
    }])
  );
  out.push(chunk([{ index: 0, delta: {}, finish_reason: reply.finishReason ?? "stop" }]));
  if (rec.body?.stream_options?.include_usage) {
    out.push(chunk([], {
      usage: {
        prompt_tokens: usage.input,
        completion_tokens: usage.output,
        total_tokens: usage.input + usage.output,
      },
    }));
  }
  out.push("data: [DONE]\n\n");
  return out;
}

function anthropicMessage(text: string, usage: Usage, model: string, reply: ScriptedReply) {
  return {
    id: "msg_stub",
    type: "message",
    role: "assistant",
    model,
    content: [{ type: "text", text }],
    stop_reason: reply.finishReason ?? "end_turn",
    stop_sequence: null,
    usage: { input_tokens: usage.input, output_tokens: usage.output },
  };
}

function anthropicEvents(
  _rec: Recorded,
  text: string,
  usage: Usage,
  model: string,
  reply: ScriptedReply,
): string[] {
  return [
    sse({
      type: "message_start",
      message: {
        id: "msg_stub",
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: usage.input, output_tokens: 1 },
      },
    }, "message_start"),
    sse({
      type: "content_block_start",
      index: 0,
      content_block: { type: "text", text: "" },
    }, "content_block_start"),
    sse({ type: "ping" }, "ping"),
    ...pieces(text).map((p) =>
      sse({
        type: "content_block_delta",
        index: 0,
        delta: { type: "text_delta", text: p },
      }, "content_block_delta")
    ),
    sse({ type: "content_block_stop", index: 0 }, "content_block_stop"),
    sse({
      type: "message_delta",
      delta: { stop_reason: reply.finishReason ?? "end_turn", stop_sequence: null },
      usage: { output_tokens: usage.output },
    }, "message_delta"),
    sse({ type: "message_stop" }, "message_stop"),
  ];
}
