/**
 * ProviderError, and the redaction every surfaced text goes through: an SDK
 * error or a server's body may echo the request's key back (a 401 often
 * does), so no text leaves this folder before the key's value — in any
 * spelling we can think of, and any long piece of it — is cut out.
 */
import type { ProviderName, Usage } from "./types.ts";

export type ProviderErrorKind =
  | "config"
  | "auth"
  | "rate-limit"
  | "network"
  | "timeout"
  | "server"
  | "bad-reply"
  | "budget";

export interface ProviderErrorInfo {
  provider?: ProviderName;
  /** The HTTP status of the last attempt, when there was one. */
  status?: number;
  /** Tokens the failed call still spent (a reply with no text, say): charge them. */
  usage?: Usage;
  /** More than the one line: a command's stderr tail, a server's longer message. Redacted. */
  detail?: string;
}

/** A provider call that failed; the message is one line, "what — fix: what to do", key-free. */
export class ProviderError extends Error {
  override name = "ProviderError";
  readonly provider?: ProviderName;
  readonly status?: number;
  readonly usage?: Usage;
  readonly detail?: string;
  constructor(readonly kind: ProviderErrorKind, message: string, info: ProviderErrorInfo = {}) {
    super(message);
    this.provider = info.provider;
    this.status = info.status;
    this.usage = info.usage;
    this.detail = info.detail;
  }
}

export const REDACTED = "[redacted]";
/** A piece of a key this long is as good as the key to a guesser: cut it too. */
const FRAGMENT = 12;

/** Every spelling of a secret a message could carry it in. */
function spellings(secret: string): string[] {
  const out = new Set([secret, encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]);
  try {
    out.add(btoa(secret));
    out.add(btoa(`:${secret}`)); // HTTP Basic with an empty user
  } catch { /* not latin-1: no base64 spelling */ }
  return [...out].filter((s) => s.length > 0);
}

/**
 * A function that removes the secrets from a text: whole, in their other
 * spellings, and any run of FRAGMENT or more of their characters.
 */
export function redactor(secrets: readonly (string | undefined)[]): (text: string) => string {
  const words = secrets.filter((s): s is string => !!s).flatMap(spellings);
  if (words.length === 0) return (text) => text;
  const whole = [...words].sort((a, b) => b.length - a.length);
  const pieces = new Set<string>();
  for (const w of words) {
    for (let i = 0; i + FRAGMENT <= w.length; i++) pieces.add(w.slice(i, i + FRAGMENT));
  }
  return (text: string): string => {
    for (const w of whole) text = text.split(w).join(REDACTED);
    if (pieces.size === 0 || text.length < FRAGMENT) return text;
    // Mark every window that is a piece of a secret, then cut the marked runs.
    const cut = new Uint8Array(text.length);
    let any = false;
    for (let j = 0; j + FRAGMENT <= text.length; j++) {
      if (pieces.has(text.slice(j, j + FRAGMENT))) {
        cut.fill(1, j, j + FRAGMENT);
        any = true;
      }
    }
    if (!any) return text;
    let out = "";
    for (let j = 0; j < text.length; j++) {
      if (!cut[j]) out += text[j];
      else if (j === 0 || !cut[j - 1]) out += REDACTED;
    }
    return out;
  };
}

/** One line of at most `max` characters. */
export function oneLine(text: string, max = 240): string {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}
