/**
 * The keep rule: a candidate replaces the best only when it is faster
 * beyond the noise of the two sample sets.
 *
 * The verifier times the two kernels in alternating blocks of a few samples
 * each (candidate block, best block, candidate block, …), so block i of the
 * candidate and block i of the best ran moments apart under the same machine
 * conditions. The rule pairs them:
 *
 *   r_i = median(candidate block i) / median(best block i)
 *   kept when a one-sided sign test rejects "the candidate is not 1 % faster",
 *   i.e. P(Binomial(n, ½) ≥ #{i : r_i ≤ 0.99}) < 0.01.
 *
 * Δ% is the median of the r_i, less 1 (negative = faster).
 *
 * Why not a test on all samples (Mann–Whitney U): samples within a block
 * share their moment, and machine noise moves whole blocks. Timing the same
 * kernel against itself on the simulator, a one-sided Mann–Whitney U at
 * p < 0.01 on all samples called one copy "faster" in 5 of 12 runs (by 4–29 %).
 * Pairing blocks cancels what both kernels share; the sign test needs no
 * assumption about the shape of the ratios, so a block hit by a spike
 * counts once, not by its size.
 */
import { quantile } from "../../bench/stats.ts";

/** Samples per alternation block (the verifier times with chunks of this many). */
export const BLOCK_SAMPLES = 4;
/** Smallest gain that counts: 1 % of the best's time. */
export const MIN_GAIN = 0.01;
/** The sign test's level. */
export const ALPHA = 0.01;

export interface KeepResult {
  keep: boolean;
  /** Candidate against best, % of the best's time (negative = faster). */
  deltaPct: number;
  /** The rule, with this run's numbers. */
  detail: string;
  /** Paired blocks compared. */
  blocks?: number;
  /** Blocks where the candidate was at least MIN_GAIN faster. */
  faster?: number;
  /** The sign test's one-sided p-value. */
  p?: number;
  /** Per-block candidate/best ratios. */
  ratios?: number[];
}

const median = (xs: ArrayLike<number>) => quantile(Float64Array.from(xs).sort(), 0.5);

/** P(X ≥ k) for X ~ Binomial(n, ½), in log space (exact for any n a run produces). */
export function binomialTail(n: number, k: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  let logC = 0; // log C(n, 0)
  const terms: number[] = [];
  for (let i = 0; i <= n; i++) {
    if (i >= k) terms.push(logC - n * Math.LN2);
    logC += Math.log(n - i) - Math.log(i + 1);
  }
  const top = Math.max(...terms);
  return Math.min(1, Math.exp(top) * terms.reduce((a, t) => a + Math.exp(t - top), 0));
}

function fmtNs(ns: number): string {
  if (!Number.isFinite(ns)) return "—";
  if (ns < 1e3) return `${ns.toFixed(0)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toPrecision(4)} µs`;
  return `${(ns / 1e6).toPrecision(4)} ms`;
}

export function fmtPct(v: number): string {
  return `${v > 0 ? "+" : v < 0 ? "−" : "±"}${Math.abs(v).toFixed(1)} %`;
}

export function fmtP(p: number): string {
  return p >= 0.001 ? p.toFixed(3) : p.toExponential(1);
}

/**
 * The rule for one timed run. `candidateNs` and `bestNs` are the clock's
 * samples in the order they were taken, `block` samples per alternation.
 */
export function keepRule(
  candidateNs: number[],
  bestNs: number[],
  block = BLOCK_SAMPLES,
): KeepResult {
  const b = Math.max(1, Math.floor(block));
  const n = Math.floor(Math.min(candidateNs.length, bestNs.length) / b);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) {
    ratios.push(
      median(candidateNs.slice(i * b, (i + 1) * b)) / median(bestNs.slice(i * b, (i + 1) * b)),
    );
  }
  const medC = median(candidateNs);
  const medB = median(bestNs);
  const faster = ratios.filter((r) => r <= 1 - MIN_GAIN).length;
  const p = binomialTail(n, faster);
  const keep = n > 0 && p < ALPHA;
  const deltaPct = n > 0 ? (median(ratios) - 1) * 100 : (medC / medB - 1) * 100;
  const needed = neededFaster(n);
  const detail = n === 0
    ? `no paired blocks to compare (${candidateNs.length} and ${bestNs.length} samples) — not kept`
    : `candidate ${fmtNs(medC)} vs best ${fmtNs(medB)} median; paired Δ ${
      fmtPct(deltaPct)
    } (median of ${n} block ratios); ${faster} of ${n} blocks ≥ ${
      MIN_GAIN * 100
    } % faster, one-sided sign test p = ${fmtP(p)} ${keep ? "<" : "≥"} ${ALPHA}${
      needed === null
        ? ` (${n} blocks cannot reach p < ${ALPHA})`
        : keep
        ? ""
        : ` (needs ${needed} of ${n})`
    } — ${keep ? "kept" : "not kept"}`;
  return { keep, deltaPct, detail, blocks: n, faster, p, ratios };
}

/** Blocks that must be faster for p < ALPHA with n blocks; null when none suffice. */
export function neededFaster(n: number): number | null {
  for (let k = 0; k <= n; k++) if (binomialTail(n, k) < ALPHA) return k;
  return null;
}

/**
 * Replicated runs (the verifier's second run swaps the kernels' order and
 * buffers): kept only when every run keeps. Δ% is the median of all paired
 * ratios.
 */
export function combineRuns(runs: KeepResult[]): KeepResult {
  const ratios = runs.flatMap((r) => r.ratios ?? []);
  const keep = runs.length > 0 && runs.every((r) => r.keep);
  const deltaPct = ratios.length
    ? (median(ratios) - 1) * 100
    : runs.reduce((a, r) => a + r.deltaPct, 0) / Math.max(1, runs.length);
  const detail = runs.length === 1
    ? runs[0].detail
    : runs.map((r, i) => `run ${i + 1}: ${r.detail}`)
      .join("; ") +
      ` ⇒ ${keep ? "kept" : "not kept"} (Δ ${
        fmtPct(deltaPct)
      } over ${ratios.length} paired blocks)`;
  return {
    keep,
    deltaPct,
    detail,
    blocks: ratios.length,
    faster: runs.reduce((a, r) => a + (r.faster ?? 0), 0),
    p: Math.max(...runs.map((r) => r.p ?? 1)),
    ratios,
  };
}
