/**
 * Questions asked of a lineage, as pure functions of its entries, so the
 * AttemptDB, the history view and the plot answer them the same way.
 *
 * Times are compared like with like: only entries measured by the same
 * clock, backend, size and simulator flag as the lineage's latest kept (or
 * baseline) entry compete for best and top N.
 */
import type { AttemptBench, AttemptEntry, Verdict } from "./schema.ts";

type Timed = AttemptEntry & { bench: AttemptBench };

const FAILED: ReadonlySet<Verdict> = new Set<Verdict>([
  "slower",
  "incorrect",
  "compile-error",
  "fault",
  "rejected",
]);

function sameMeasure(a: AttemptBench, b: AttemptBench): boolean {
  return a.clock === b.clock && a.backend === b.backend && a.size === b.size &&
    a.simulated === b.simulated;
}

/** Baseline and kept entries with a time, measured like the latest of them. */
function comparable(entries: AttemptEntry[], verdicts: Verdict[]): Timed[] {
  const timed = entries.filter((e): e is Timed =>
    e.bench !== null && (e.verdict === "kept" || e.verdict === "baseline")
  );
  const latest = timed.at(-1);
  if (!latest) return [];
  return timed.filter((e) => verdicts.includes(e.verdict) && sameMeasure(e.bench, latest.bench));
}

const byMedian = (a: Timed, b: Timed) => a.bench.medianNs - b.bench.medianNs;

/** The first baseline entry of the lineage. */
export function baselineOf(entries: AttemptEntry[]): AttemptEntry | undefined {
  return entries.find((e) => e.verdict === "baseline");
}

/** The fastest kept-or-baseline entry by bench.medianNs. */
export function bestOf(entries: AttemptEntry[]): AttemptEntry | undefined {
  return comparable(entries, ["kept", "baseline"]).sort(byMedian)[0];
}

/**
 * The latest kept-or-baseline entry: what the kernel file holds (each kept
 * attempt beat the one before it, measured side by side).
 */
export function currentOf(entries: AttemptEntry[]): AttemptEntry | undefined {
  return entries.findLast((e) => e.verdict === "kept" || e.verdict === "baseline");
}

/** The n fastest kept attempts, fastest first. */
export function topNOf(entries: AttemptEntry[], n: number): AttemptEntry[] {
  return comparable(entries, ["kept"]).sort(byMedian).slice(0, Math.max(0, n));
}

export interface TechniqueTried {
  round: number;
  candidate: number;
  retry: number;
  technique: string;
  verdict: Verdict;
  deltaPct: number | null;
}

/** Every technique tried after the baseline, in order. */
export function techniquesOf(entries: AttemptEntry[]): TechniqueTried[] {
  return entries.filter((e) => e.verdict !== "baseline").map((e) => ({
    round: e.round,
    candidate: e.candidate,
    retry: e.retry,
    technique: e.technique,
    verdict: e.verdict,
    deltaPct: e.deltaPct,
  }));
}

export interface FailedTechnique {
  technique: string;
  verdict: string;
  reason: string;
}

/** Techniques that were not kept, with why; each (technique, verdict, reason) once. */
export function failedTechniquesOf(entries: AttemptEntry[]): FailedTechnique[] {
  const seen = new Set<string>();
  const out: FailedTechnique[] = [];
  for (const e of entries) {
    if (!FAILED.has(e.verdict)) continue;
    const key = JSON.stringify([e.technique, e.verdict, e.reason]);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ technique: e.technique, verdict: e.verdict, reason: e.reason });
  }
  return out;
}

/** The highest round recorded, or -1 for an empty lineage. */
export function lastRoundOf(entries: AttemptEntry[]): number {
  return entries.reduce((max, e) => Math.max(max, e.round), -1);
}
