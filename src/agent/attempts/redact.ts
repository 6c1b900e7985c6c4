/**
 * Defence in depth for secrets: the provider layer never hands a key to the
 * AttemptDB or a transcript, but an SDK's error text could echo one. Every
 * string of a value is scrubbed of the given secrets before it is written.
 */

/** Shorter values are not treated as secrets: scrubbing "a" would mangle everything. */
const MIN_SECRET_LENGTH = 8;

export const REDACTED = "[redacted]";

export function redactStrings<T>(value: T, secrets: readonly string[]): T {
  const live = secrets.filter((s) => s.length >= MIN_SECRET_LENGTH);
  if (live.length === 0) return value;
  const scrub = (v: unknown): unknown => {
    if (typeof v === "string") return live.reduce((s, secret) => s.replaceAll(secret, REDACTED), v);
    if (Array.isArray(v)) return v.map(scrub);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [scrub(k), scrub(x)]));
    }
    return v;
  };
  return scrub(value) as T;
}
