/**
 * What the two HTTP providers share (both official SDKs are built alike, by
 * Stainless): a fetch that counts attempts and stops a body that goes
 * silent, a logger that redacts, and the one mapping from an SDK failure to
 * a ProviderError.
 *
 * Redirects are not followed (the key's header would go along to another
 * host); a 3xx is an error of kind "config".
 *
 * Timeouts: the SDKs time an attempt only until the reply's headers arrive;
 * a body (a stream above all) could then stall forever. The guarded fetch
 * fails a body read that waits longer than the same timeout.
 */
import { oneLine, ProviderError, type ProviderErrorKind } from "./errors.ts";
import type { ProviderName } from "./types.ts";

/** The key an HTTP provider sends. */
export interface HttpKey {
  value: string;
  /** The env var it came from; undefined for a placeholder. */
  env?: string;
}

/** Raised inside a body read that waited too long; mapped to kind "timeout". */
export class BodyStalled extends Error {
  override name = "BodyStalled";
}

/** Per call: the attempts made, and whether a body stalled. */
export interface CallTrace {
  attempts: number;
  stalled: boolean;
}

/** A fetch for one call's SDK client: counts attempts, and fails a body silent for `idleMs`. */
export function guardedFetch(idleMs: number, trace: CallTrace): typeof fetch {
  return async (input, init) => {
    trace.attempts++;
    // Never follow a redirect: it would carry the key's header to wherever it points.
    const res = await fetch(input, { ...init, redirect: "manual" });
    if (!res.body) return res;
    const guarded = new Response(withIdleTimeout(res.body, idleMs, trace), {
      status: res.status,
      statusText: res.statusText,
      headers: res.headers,
    });
    Object.defineProperty(guarded, "url", { value: res.url });
    return guarded;
  };
}

function withIdleTimeout(
  body: ReadableStream<Uint8Array>,
  ms: number,
  trace: CallTrace,
): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stall = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          trace.stalled = true;
          reject(new BodyStalled(`no data for ${ms} ms`));
        }, ms);
      });
      try {
        const { done, value } = await Promise.race([reader.read(), stall]);
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (e) {
        reader.cancel().catch(() => {});
        throw e;
      } finally {
        clearTimeout(timer);
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}

type LogFn = (message: string, ...rest: unknown[]) => void;

/** The SDK's logger: warnings and errors to stderr, redacted; info and debug dropped. */
export function sdkLogger(
  redact: (s: string) => string,
): { error: LogFn; warn: LogFn; info: LogFn; debug: LogFn } {
  const emit: LogFn = (message, ...rest) => {
    const text = [message, ...rest].map((x) => typeof x === "string" ? x : safeJson(x)).join(" ");
    console.error(redact(oneLine(text, 400)));
  };
  return { error: emit, warn: emit, info: () => {}, debug: () => {} };
}

function safeJson(x: unknown): string {
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return String(x);
  }
}

/** The error classes of one SDK (both export these names). */
export interface SdkErrors {
  // deno-lint-ignore no-explicit-any
  APIError: abstract new (...args: any[]) => Error;
  // deno-lint-ignore no-explicit-any
  APIConnectionError: abstract new (...args: any[]) => Error;
  // deno-lint-ignore no-explicit-any
  APIConnectionTimeoutError: abstract new (...args: any[]) => Error;
  // deno-lint-ignore no-explicit-any
  APIUserAbortError: abstract new (...args: any[]) => Error;
}

export interface FailureContext {
  provider: ProviderName;
  purpose: string;
  baseUrl: string;
  /** The env var the key came from, or undefined for a placeholder key. */
  keyEnv?: string;
  timeoutMs: number;
  trace: CallTrace;
  redact: (s: string) => string;
  signal?: AbortSignal;
}

function causeChain(e: unknown): unknown[] {
  const out: unknown[] = [];
  for (let x = e; x !== undefined && x !== null && out.length < 8; x = (x as Error).cause) {
    out.push(x);
    if (typeof x !== "object") break;
  }
  return out;
}

/** The server's own words for a failure, redacted, on one line. */
function serverMessage(e: unknown, redact: (s: string) => string): string {
  // deno-lint-ignore no-explicit-any
  const x = e as any;
  const candidates = [x?.error?.message, x?.error?.error?.message, x?.message];
  const text = candidates.find((c) => typeof c === "string" && c.trim() !== "") ?? String(e);
  return oneLine(redact(text), 200);
}

/**
 * Maps whatever an SDK call threw to a ProviderError (or, when the caller
 * aborted, to the caller's abort reason, unchanged).
 */
export function sdkFailure(e: unknown, errors: SdkErrors, ctx: FailureContext): unknown {
  if (ctx.signal?.aborted) return ctx.signal.reason;
  const who = `${ctx.provider} (${ctx.purpose})`;
  const tries = ctx.trace.attempts === 1 ? "1 attempt" : `${ctx.trace.attempts} attempts`;
  const make = (kind: ProviderErrorKind, what: string, fix: string, status?: number) =>
    new ProviderError(kind, ctx.redact(`${who}: ${what} — fix: ${fix}`), {
      provider: ctx.provider,
      status,
    });
  const chain = causeChain(e);

  if (ctx.trace.stalled || chain.some((x) => x instanceof BodyStalled)) {
    return make(
      "timeout",
      `the reply stopped arriving for ${ctx.timeoutMs} ms`,
      "check the server, or raise the timeout",
    );
  }
  if (e instanceof errors.APIConnectionTimeoutError) {
    return make(
      "timeout",
      `no reply within ${ctx.timeoutMs} ms (${tries})`,
      `check the server at ${ctx.baseUrl}, or raise the timeout`,
    );
  }
  if (e instanceof errors.APIUserAbortError) {
    return make("network", `the request was aborted (${tries})`, "retry");
  }
  if (e instanceof errors.APIConnectionError) {
    const why = chain.slice(1).map((c) => serverMessage(c, ctx.redact)).at(-1) ??
      serverMessage(e, ctx.redact);
    return make(
      "network",
      `cannot reach ${ctx.baseUrl} (${tries}): ${why}`,
      "check the network, the base URL and that the server is running",
    );
  }
  if (e instanceof errors.APIError) {
    // deno-lint-ignore no-explicit-any
    const status: number | undefined = (e as any).status;
    const msg = serverMessage(e, ctx.redact);
    const http = status === undefined ? "" : `HTTP ${status}: `;
    const kind = status === undefined ? streamErrorKind(e) : statusKind(status);
    switch (kind) {
      case "auth":
        return make(
          "auth",
          `the server refused the ${keyName(ctx)} (${http}${msg})`,
          ctx.keyEnv
            ? `check the key in ${ctx.keyEnv} and the account, or pass --api-key-env NAME`
            : "pass --api-key-env NAME naming the variable that holds this server's key",
          status,
        );
      case "rate-limit":
        return make(
          "rate-limit",
          `rate limited (${http}${msg}; ${tries})`,
          "wait, run fewer candidates or kernels at once, or raise the account's rate limit",
          status,
        );
      case "timeout":
        return make(
          "timeout",
          `the server timed out (${http}${msg}; ${tries})`,
          "retry later, or raise the timeout",
          status,
        );
      case "server":
        return make("server", `server error (${http}${msg}; ${tries})`, "retry later", status);
      default:
        return make(
          "config",
          `the server refused the request (${http}${msg})`,
          "check --model, --base-url and the prompt's size",
          status,
        );
    }
  }
  const msg = serverMessage(e, ctx.redact);
  if (/streaming is required/i.test(msg)) {
    return make("config", msg, "ask for fewer tokens, or stream the reply");
  }
  return make("bad-reply", `the reply could not be read: ${msg}`, "check the server's API");
}

function keyName(ctx: FailureContext): string {
  return ctx.keyEnv ? `key from ${ctx.keyEnv}` : "placeholder key (no --api-key-env given)";
}

function statusKind(status: number): ProviderErrorKind {
  if (status === 401 || status === 402 || status === 403) return "auth";
  if (status === 429) return "rate-limit";
  if (status === 408) return "timeout";
  if (status === 409 || status >= 500) return "server";
  // 3xx (a redirect not followed) and other 4xx: the request or its URL is wrong.
  return "config";
}

/** An error event inside a stream carries a type, not a status. */
function streamErrorKind(e: unknown): ProviderErrorKind {
  // deno-lint-ignore no-explicit-any
  const x = e as any;
  const type = String(x?.type ?? x?.error?.type ?? x?.error?.error?.type ?? "");
  if (/rate_limit/.test(type)) return "rate-limit";
  if (/authentication|permission|billing/.test(type)) return "auth";
  if (/invalid_request|not_found|request_too_large/.test(type)) return "config";
  return "server";
}
