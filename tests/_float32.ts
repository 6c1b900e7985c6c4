/**
 * Shared arithmetic of the float32 re-implementations (tests/_float32_*.ts,
 * tolerance.test.ts): float32 rounding, sums in a chosen order, and an erf
 * correct to float64, so each problem's tolerance is shown to admit an
 * honest float32 result whatever order its sums take.
 */

export type Order = "forward" | "reverse" | "tree";

export const f = Math.fround;

/** A float32 sum of term(i), i < n: in order, backwards, or as 256 strided lanes then a tree. */
export function sum(n: number, term: (i: number) => number, order: Order): number {
  let s = 0;
  if (order === "forward") { for (let i = 0; i < n; i++) s = f(s + term(i)); }
  else if (order === "reverse") { for (let i = n - 1; i >= 0; i--) s = f(s + term(i)); }
  else {
    const lanes = new Float32Array(256);
    for (let i = 0; i < n; i++) lanes[i % 256] = f(lanes[i % 256] + term(i));
    for (let w = 128; w >= 1; w >>= 1) {
      for (let j = 0; j < w; j++) lanes[j] = lanes[j] + lanes[j + w];
    }
    s = lanes[0];
  }
  return s;
}

/** erf to float64 accuracy: 2/sqrt(pi) e^(-x^2) sum 2^n x^(2n+1) / (2n+1)!!, all terms positive. */
export function erf(x: number): number {
  const a = Math.abs(x);
  if (a > 6) return Math.sign(x);
  let term = a, s = a;
  for (let n = 1; term > 1e-17 * s; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    s += term;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * s;
}
