/**
 * The seed's five targets, computed from one run's figures. Every run
 * computes all five; --target only picks the headline.
 */
import type { Scores, Target } from "../store/schema.ts";

export interface Figures {
  speedup: number | null;
  gflops: number | null;
  gbps: number | null;
  stability: number | null;
}

export function scores(f: Figures): Scores {
  const balanced = f.speedup !== null && f.gflops !== null && f.stability !== null
    ? 0.5 * f.speedup + 0.3 * (f.gflops / 1000) + 0.2 * f.stability
    : null;
  return {
    speed: f.speedup,
    compute: f.gflops,
    memory: f.gbps,
    stable: f.stability,
    balanced,
  };
}

export function headline(s: Scores, target: Target): number | null {
  return s[target];
}

/** KernelBench's fast_p: share of problems both correct and faster than p × MLX. */
export function fastP(
  runs: { correct: boolean; speedup: number | null }[],
  p: number,
): number {
  if (!runs.length) return 0;
  const hits = runs.filter((r) => r.correct && (p === 0 || (r.speedup ?? 0) > p)).length;
  return hits / runs.length;
}
