/**
 * The agent's one door to an LLM: `openProvider` checks the options, reads
 * the key from the environment (only there, only now) and returns a
 * ChatProvider; the rest of this folder is behind it.
 *
 * Keys: read from the named variable when the provider is opened, held in a
 * closure (not on any object), sent only in the request's auth header, and
 * cut out of every text this folder surfaces (errors, SDK log lines, a
 * command's stderr). A command provider's child never sees them.
 */
import { anthropicProvider } from "./anthropic.ts";
import { commandProvider, KEY_VARIABLES } from "./command.ts";
import { ProviderError, redactor } from "./errors.ts";
import type { HttpKey } from "./http.ts";
import { openAiProvider } from "./openai.ts";
import type { ChatProvider, ProviderName, ProviderOptions } from "./types.ts";

export type {
  ChatMessage,
  ChatProvider,
  ChatReply,
  ChatRequest,
  ProviderName,
  ProviderOptions,
  StreamMode,
  Usage,
} from "./types.ts";
export { DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_MS, STREAM_ABOVE_MAX_TOKENS } from "./types.ts";
export { ProviderError, type ProviderErrorKind } from "./errors.ts";
export { TokenBudget, withBudget } from "./budget.ts";
export { formatPrompt } from "./command.ts";

export const PROVIDER_NAMES: readonly ProviderName[] = [
  "openai",
  "anthropic",
  "openai-compatible",
  "command",
];

const DEFAULT_KEY_ENV = { openai: "OPENAI_API_KEY", anthropic: "ANTHROPIC_API_KEY" } as const;
/** Sent to an openai-compatible server when no --api-key-env is given (Ollama wants one, ignores it). */
export const PLACEHOLDER_KEY = "metalbench-no-key";

function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no env permission: as if unset
  }
}

function configError(message: string, provider?: ProviderName): ProviderError {
  return new ProviderError("config", message, { provider });
}

export function openProvider(
  opts: ProviderOptions,
  env: (name: string) => string | undefined = readEnv,
): ChatProvider {
  const name = opts.provider;
  if (!PROVIDER_NAMES.includes(name)) {
    throw configError(
      `unknown provider "${String(name).slice(0, 40)}" — fix: pass --provider ${
        PROVIDER_NAMES.join("|")
      }`,
    );
  }
  if (name !== "command" && !opts.model?.trim()) {
    throw configError(`${name}: no model given — fix: pass --model NAME`, name);
  }
  if (opts.timeoutMs !== undefined && !(Number.isFinite(opts.timeoutMs) && opts.timeoutMs > 0)) {
    throw configError(`${name}: the timeout must be above 0 ms — fix: pass a positive timeout`);
  }
  if (
    opts.maxRetries !== undefined &&
    !(Number.isSafeInteger(opts.maxRetries) && opts.maxRetries >= 0)
  ) {
    throw configError(`${name}: retries must be a whole number ≥ 0 — fix: pass 0, 1, 2, …`);
  }
  const keyEnv = opts.apiKeyEnv?.trim() || undefined;
  if (keyEnv !== undefined && !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(keyEnv)) {
    // Never echo it: a key pasted where its variable's name belongs would land in the message.
    throw configError(
      "--api-key-env takes the NAME of a variable (letters, digits, _), not a key — fix: pass e.g. --api-key-env MY_KEY",
      name,
    );
  }
  // Every key this process holds is cut from what we surface, whichever provider is used
  // (values too short to be keys would only cut ordinary words).
  const held = [...KEY_VARIABLES, ...(keyEnv ? [keyEnv] : [])].map(env)
    .filter((v): v is string => !!v && v.length >= 8);

  if (name === "command") {
    return commandProvider(
      opts,
      keyEnv ? [keyEnv] : [],
      held,
      redactor(held),
    );
  }

  const baseUrl = opts.baseUrl?.trim() || undefined;
  if (baseUrl !== undefined) checkUrl(baseUrl, name);
  if (name === "openai-compatible" && baseUrl === undefined) {
    throw configError(
      "openai-compatible needs the server's URL — fix: pass --base-url, e.g. http://127.0.0.1:11434/v1 (Ollama) or http://127.0.0.1:8080/v1 (llama.cpp, mlx_lm.server)",
      name,
    );
  }

  let key: HttpKey;
  if (name === "openai-compatible" && keyEnv === undefined) {
    key = { value: PLACEHOLDER_KEY };
  } else {
    const variable = keyEnv ?? DEFAULT_KEY_ENV[name as "openai" | "anthropic"];
    const value = env(variable);
    if (!value) {
      throw configError(
        `${variable} is not set — fix: export it, or pass --api-key-env NAME`,
        name,
      );
    }
    key = { value, env: variable };
  }
  const redact = redactor([...held, key.env ? key.value : undefined]);
  const sane = { ...opts, baseUrl };
  return name === "anthropic"
    ? anthropicProvider(sane, key, redact)
    : openAiProvider(sane, key, redact);
}

function checkUrl(url: string, name: ProviderName): void {
  let parsed: URL | undefined;
  try {
    parsed = new URL(url);
  } catch { /* below */ }
  if (!parsed || (parsed.protocol !== "http:" && parsed.protocol !== "https:")) {
    throw configError(
      `${name}: the base URL is not an http(s) URL — fix: pass --base-url http://HOST:PORT/v1`,
      name,
    );
  }
}
