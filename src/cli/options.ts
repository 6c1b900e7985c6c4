/** Option parsers shared by the commands; the bounds keep a typo from running for days. */
import { InvalidArgumentError } from "@commander-js/extra-typings";

/** An integer option within [min, max]. */
export function intOption(min: number, max = 2 ** 31 - 1) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\s*-?\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got '${value}'`);
    }
    return n;
  };
}

/** A duration in seconds, more than 0 and at most a day. */
export function secondsOption(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 86400) {
    throw new InvalidArgumentError(`expected seconds from 0 to 86400, got '${value}'`);
  }
  return n;
}
