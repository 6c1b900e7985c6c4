/**
 * The verifier step: is a staged candidate correct, and faster than the
 * current best beyond the noise? Both kernels are benchmarked in one
 * harness run (same inputs, same clock, their timed samples alternating in
 * blocks of BLOCK_SAMPLES), and the candidate must pass the benchmark's
 * whole correctness protocol. Then a second run with the order swapped
 * (best first, fresh inputs): each run places the two kernels' code and
 * buffers anew, and on a shared machine that placement alone can make one
 * of two identical kernels run several % faster for a whole run. A
 * candidate is kept only when both runs say so (keep_rule.ts).
 *
 * From a record to a verdict: compile error, fault and incorrect are the
 * record's; a candidate that could not be checked, ran a partial protocol,
 * or timed beyond the device's limits is "rejected" — a cheat or a harness
 * bug is never "kept".
 */
import { type Harness, RUN_DEFAULTS, sourceFromFile } from "../../bench/harness.ts";
import { freshSeed } from "../../bench/inputs.ts";
import type { BenchOptions } from "../../bench/run.ts";
import type { BackendKind } from "../../backend/select.ts";
import type { Problem } from "../../registry/load.ts";
import type { RunRecord } from "../../store/schema.ts";
import { DEFAULT_TRIALS } from "../../store/protocol.ts";
import { clockOf } from "../../bench/harness.ts";
import { BLOCK_SAMPLES, combineRuns, type KeepResult, keepRule } from "./keep_rule.ts";

export {
  binomialTail,
  BLOCK_SAMPLES,
  combineRuns,
  type KeepResult,
  keepRule,
} from "./keep_rule.ts";

export type VerdictKind = "kept" | "slower" | "incorrect" | "compile-error" | "fault" | "rejected";

export interface Verdict {
  verdict: VerdictKind;
  /** One line: the keep rule's numbers, the compile error, the first wrong element, … */
  reason: string;
  /** Candidate against best, % of the best's time (negative = faster); null when not compared. */
  deltaPct: number | null;
  /** The candidate's record (of the run that decided). */
  candidate: RunRecord;
  /** The best's record of that run; null when it has none. */
  best: RunRecord | null;
  /** More than the line, for the model: a whole compile log or fault report. */
  feedback?: string;
  /** Every run, in order (one or two). */
  runs?: { candidate: RunRecord; best: RunRecord | null }[];
  /** The keep rule's figures, when the kernels were compared. */
  keep?: KeepResult;
}

export class VerifierError extends Error {
  override name = "VerifierError";
}

/**
 * Defaults per backend. Metal: 30 warm-up samples (GPU clocks ramp up) and
 * 100 timed, i.e. 25 alternating blocks per kernel per run. The simulator:
 * the same 100 samples — 25 blocks is what the sign test needs to keep a
 * real gain (at least 19 of 25 blocks faster) — but 5 warm-up samples, as a
 * CPU has no clocks to ramp and the runner's pages are warm after a few
 * launches; at the test size the timing is then a small part of a run (relu
 * ≈0.3 s, rms_norm_linear ≈5 s of which ≈1 s timing, on 2 shared cores).
 */
export const VERIFY_DEFAULTS = {
  metal: { warmup: 30, iters: 100 },
  sim: { warmup: 5, iters: 100 },
} as const satisfies Record<BackendKind, { warmup: number; iters: number }>;

/** Runs per verification: the second swaps the order (see the top of this file). */
export const VERIFY_RUNS = 2;

/** Bench options for verifying on `kind`, with the verifier's defaults under `overrides`. */
export function verifyOptions(
  kind: BackendKind,
  overrides: Partial<BenchOptions> = {},
): BenchOptions {
  const d = RUN_DEFAULTS[kind];
  const batch = overrides.clock?.batch ?? d.batch;
  return {
    mode: "paired",
    size: d.size,
    seed: freshSeed(),
    seedSource: "random",
    trials: DEFAULT_TRIALS,
    warmup: VERIFY_DEFAULTS[kind].warmup,
    iters: VERIFY_DEFAULTS[kind].iters,
    clock: clockOf("batched", batch, kind),
    coldStart: false,
    target: "speed",
    chunkSamples: BLOCK_SAMPLES,
    ...overrides,
  };
}

type Failure = Omit<Verdict, "candidate" | "best" | "deltaPct" | "runs">;

/** Why a candidate's record rules it out, or null when it is a correct, timed, plausible run. */
export function judgeRecord(r: RunRecord): Failure | null {
  const c = r.correctness;
  if (r.error && (r.error.kind === "reference" || r.error.kind === "resource")) {
    // Not the candidate's doing: the run could not judge any kernel.
    throw new VerifierError(r.error.message);
  }
  const feedback = r.error?.message && r.error.message !== c.detail ? r.error.message : undefined;
  switch (c.status) {
    case "compile-error":
      return { verdict: "compile-error", reason: c.detail, feedback };
    case "fault":
      return { verdict: "fault", reason: c.detail, feedback };
    case "incorrect":
      return { verdict: "incorrect", reason: c.detail };
    case "unchecked":
      return { verdict: "rejected", reason: `the candidate could not be checked: ${c.detail}` };
  }
  const p = r.settings.protocol;
  const afterTiming = c.trials.filter((t) => t.phase === "after-timing").length;
  if (!p || !p.unpoisonedTrial || p.rotationSets < 2 || afterTiming < p.rotationSets) {
    return {
      verdict: "rejected",
      reason: `the correctness protocol did not run in full (un-poisoned trial: ${
        p?.unpoisonedTrial ? "yes" : "no"
      }, output sets checked after timing: ${afterTiming} of ${p?.rotationSets ?? 0})`,
    };
  }
  if (!r.kernelTiming || r.kernelTiming.wallNs.length === 0) {
    return { verdict: "rejected", reason: "the candidate was not timed" };
  }
  if (r.plausibility && !r.plausibility.plausible) {
    return {
      verdict: "rejected",
      reason: `implausible time, beyond the device's limits: ${r.plausibility.detail}`,
    };
  }
  return null;
}

/** Why the best's record cannot be compared against, or null. */
function bestUnusable(b: RunRecord | undefined): string | null {
  if (!b) return "the current best has no record in this run";
  if (!b.kernelTiming || b.kernelTiming.wallNs.length === 0) {
    return `the current best was not timed in this run (${b.correctness.status}: ${b.correctness.detail})`;
  }
  if (b.plausibility && !b.plausibility.plausible) {
    return `the current best's time is implausible in this run (${b.plausibility.detail}): a harness problem`;
  }
  return null;
}

export async function verify(
  harness: Harness,
  problem: Problem,
  candidatePath: string,
  bestPath: string,
  opts: BenchOptions,
  runs = VERIFY_RUNS,
): Promise<Verdict> {
  if (opts.mode === "mlx") {
    throw new VerifierError("verify needs a kernel backend — fix: run without --mlx");
  }
  const o: BenchOptions = { ...opts, chunkSamples: opts.chunkSamples ?? BLOCK_SAMPLES };
  const block = o.chunkSamples!;
  const done: { candidate: RunRecord; best: RunRecord | null }[] = [];
  const rules: KeepResult[] = [];
  for (let run = 0; run < Math.max(1, runs); run++) {
    const swapped = run % 2 === 1;
    const candidate = sourceFromFile(candidatePath, "candidate");
    const best = sourceFromFile(bestPath, "best");
    const seed = run === 0 || o.seedSource !== "random" ? o.seed : freshSeed();
    const outs = await harness.benchmark(
      problem,
      swapped ? [best, candidate] : [candidate, best],
      { ...o, seed },
    );
    const c = outs[swapped ? 1 : 0].record;
    const b = outs[swapped ? 0 : 1]?.record ?? null;
    done.push({ candidate: c, best: b });
    const at = { candidate: c, best: b, runs: [...done] };

    const failure = judgeRecord(c);
    if (failure) {
      return { ...failure, ...at, reason: label(failure.reason, run), deltaPct: null };
    }
    if (c.source && b?.source && c.source.sha256 === b.source.sha256) {
      return {
        verdict: "rejected",
        reason: "the candidate is the current best, byte for byte",
        deltaPct: 0,
        ...at,
      };
    }
    const unusable = bestUnusable(b ?? undefined);
    if (unusable) {
      return {
        verdict: "rejected",
        reason: `${unusable}; nothing to compare against`,
        deltaPct: null,
        ...at,
      };
    }
    const rule = keepRule(c.kernelTiming!.wallNs, b!.kernelTiming!.wallNs, block);
    rules.push(rule);
    if (!rule.keep) {
      const all = combineRuns(rules);
      return {
        verdict: "slower",
        reason: run === 0
          ? `not faster beyond the noise: ${rule.detail}`
          : `not faster beyond the noise in both runs (the second with the best timed first): ${all.detail}`,
        deltaPct: rules.length > 1 ? all.deltaPct : rule.deltaPct,
        keep: rule,
        ...at,
      };
    }
  }
  const all = combineRuns(rules);
  const first = done[0];
  return {
    verdict: "kept",
    reason: `faster beyond the noise: ${all.detail}`,
    deltaPct: all.deltaPct,
    candidate: first.candidate,
    best: first.best,
    runs: done,
    keep: all,
  };
}

/** A reason from the second run says so (its order was swapped, its inputs fresh). */
function label(reason: string, run: number): string {
  return run === 0 ? reason : `${reason} (run ${run + 1}, best timed first)`;
}
