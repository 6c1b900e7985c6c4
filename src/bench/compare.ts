/**
 * Element-wise comparison of a kernel's output with the reference's.
 * An element passes when |k - r| <= atol + rtol * |r|; NaN and Inf must
 * match the reference exactly (a kernel that leaves the NaN poison in place
 * fails here).
 */
import type { Tolerances } from "../registry/problem.ts";

export interface Comparison {
  elements: number;
  /** Elements within tolerance. */
  within: number;
  /** Kernel NaN/Inf where the reference has none (or the other way round). */
  nonFiniteMismatches: number;
  maxAbsError: number;
  maxRelError: number;
  /** Index of the first failing element, or -1. */
  firstFailure: number;
  firstFailureValues?: { kernel: number; reference: number };
}

export function compare(
  kernel: ArrayLike<number>,
  reference: ArrayLike<number>,
  tol: Tolerances,
): Comparison {
  if (kernel.length !== reference.length) {
    throw new Error(
      `output has ${kernel.length} elements, the reference ${reference.length}`,
    );
  }
  let within = 0;
  let nonFinite = 0;
  let maxAbs = 0;
  let maxRel = 0;
  let first = -1;
  for (let i = 0; i < kernel.length; i++) {
    const k = kernel[i];
    const r = reference[i];
    let ok: boolean;
    if (Number.isFinite(k) && Number.isFinite(r)) {
      const abs = Math.abs(k - r);
      const rel = abs / Math.max(Math.abs(r), Number.MIN_VALUE);
      if (abs > maxAbs) maxAbs = abs;
      if (r !== 0 && rel > maxRel) maxRel = rel;
      ok = abs <= tol.atol + tol.rtol * Math.abs(r);
    } else {
      ok = Object.is(k, r) || (Number.isNaN(k) && Number.isNaN(r));
      if (!ok) nonFinite++;
    }
    if (ok) within++;
    else if (first < 0) first = i;
  }
  return {
    elements: kernel.length,
    within,
    nonFiniteMismatches: nonFinite,
    maxAbsError: maxAbs,
    maxRelError: maxRel,
    firstFailure: first,
    firstFailureValues: first >= 0
      ? { kernel: kernel[first], reference: reference[first] }
      : undefined,
  };
}

export const passes = (c: Comparison) => c.within === c.elements;
