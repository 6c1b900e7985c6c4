/**
 * Element-wise comparison of a kernel's output with the reference's.
 *
 * An element passes when |k - r| <= rtol*|r| + stol*scale + atol. The
 * scale is the output's own (the RMS of its finite reference values, or
 * the problem's scale expression), so the bound shrinks with the output:
 * small outputs get no free pass from a fixed atol, while an element near
 * zero in a large output still has room for cancellation. The defaults and
 * why they are what they are: DEFAULT_TOLERANCE in registry/problem.ts.
 *
 * NaN and Inf must match the reference exactly (a kernel that leaves the
 * NaN poison in place fails here); integers are exact.
 */
import { evaluate } from "../registry/expr.ts";
import { decodeTensor } from "../reference/tensor_io.ts";
import {
  type ResolvedTensor,
  scaleEnv,
  type SizedProblem,
  type Tolerances,
} from "../registry/problem.ts";

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
  /**
   * The first failing element (NaN/Inf as strings, for JSON), and the most
   * it could have been off by (where the reference is finite).
   */
  firstFailureValues?: { kernel: JsonFloat; reference: JsonFloat; bound?: number };
  /** The output's scale the bound used. */
  scale: number;
  /** The absolute part of every element's bound: stol*scale + atol (each adds rtol*|r|). */
  absTol: number;
  /** Largest |k - r| / bound over finite elements: above 1 fails; how close the worst came. */
  maxErrorRatio: number;
}

export type JsonFloat = number | "NaN" | "Infinity" | "-Infinity";
const jsonFloat = (v: number): JsonFloat =>
  Number.isFinite(v) ? v : (String(v) as "NaN" | "Infinity" | "-Infinity");

/** A tolerance ready to compare with; `scaleValue` resolves an entry's `scale` expression. */
export type Bound = Tolerances & { scaleValue?: number };

const EXACT: Bound = { rtol: 0, stol: 0, atol: 0 };

/** Root mean square of the finite values (0 when there are none). */
export function rms(values: ArrayLike<number>): number {
  let sum = 0;
  // Fast path: with no NaN or Inf in the values, the plain sum is finite.
  for (let i = 0; i < values.length; i++) sum += values[i] * values[i];
  if (Number.isFinite(sum)) return values.length ? Math.sqrt(sum / values.length) : 0;
  sum = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      sum += v * v;
      n++;
    }
  }
  return n ? Math.sqrt(sum / n) : 0;
}

/**
 * The bound for one output of one trial: integers exact; a scale expression
 * evaluated with this trial's input RMS values (rms_<input>).
 */
export function toleranceFor(
  problem: SizedProblem,
  output: ResolvedTensor,
  inputs: ReadonlyMap<string, Uint8Array>,
): Bound {
  if (output.dtype === "int32" || output.dtype === "uint32") return EXACT;
  const tol = problem.tolerance;
  if (tol.scale === undefined) return tol;
  const env = scaleEnv(problem);
  for (const t of problem.inputs) {
    const bytes = inputs.get(t.name);
    if (bytes) env[`rms_${t.name}`] = rms(decodeTensor(bytes, t.dtype));
  }
  return { ...tol, scaleValue: evaluate(tol.scale, env) };
}

/** The first failure as the record keeps it; a bound only where the reference is finite. */
function failureValues(k: number, r: number, absTol: number, rtol: number) {
  return Number.isFinite(r)
    ? { kernel: jsonFloat(k), reference: r, bound: absTol + rtol * Math.abs(r) }
    : { kernel: jsonFloat(k), reference: jsonFloat(r) };
}

export function compare(
  kernel: ArrayLike<number>,
  reference: ArrayLike<number>,
  tol: Bound,
): Comparison {
  if (kernel.length !== reference.length) {
    throw new Error(
      `output has ${kernel.length} elements, the reference ${reference.length}`,
    );
  }
  if (tol.scale !== undefined && tol.scaleValue === undefined) {
    throw new Error(`tolerance scale "${tol.scale}" is not resolved: use toleranceFor()`);
  }
  const scale = tol.scaleValue ?? rms(reference);
  const absTol = tol.stol * scale + tol.atol;
  const rtol = tol.rtol;
  let within = 0;
  let nonFinite = 0;
  let maxAbs = 0;
  let maxRel = 0;
  let maxRatio = 0;
  let first = -1;
  for (let i = 0; i < kernel.length; i++) {
    const k = kernel[i];
    const r = reference[i];
    let ok: boolean;
    if (Number.isFinite(k) && Number.isFinite(r)) {
      const abs = Math.abs(k - r);
      const mag = Math.abs(r);
      const bound = absTol + rtol * mag;
      ok = abs <= bound;
      // Divide only on a new maximum: this loop runs over every output element.
      if (abs > maxAbs) maxAbs = abs;
      if (abs > maxRel * mag && r !== 0) maxRel = abs / mag;
      if (abs > maxRatio * bound) {
        // Finite for JSON: a miss under an exact bound (integers) is the largest ratio.
        maxRatio = bound > 0 ? abs / bound : Number.MAX_VALUE;
      }
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
      ? failureValues(kernel[first], reference[first], absTol, rtol)
      : undefined,
    scale,
    absTol,
    maxErrorRatio: maxRatio,
  };
}

export const passes = (c: Pick<Comparison, "within" | "elements">) => c.within === c.elements;
