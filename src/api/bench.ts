/**
 * Benchmark from a script: the same harness and session the CLI opens
 * (src/bench/harness.ts, src/bench/session_run.ts), with the CLI's defaults
 * per backend, returning the records and the summary instead of printing.
 */
import { dirname } from "node:path";
import { type BackendKind, defaultBackend } from "../backend/select.ts";
import { clockOf, Harness, RUN_DEFAULTS } from "../bench/harness.ts";
import { freshSeed } from "../bench/inputs.ts";
import type { RunMode } from "../bench/run.ts";
import { runSession, summarizeRuns, type Summary } from "../bench/session_run.ts";
import { loadRegistry, type Problem, problemsInOrder } from "../registry/load.ts";
import type { SizeName } from "../registry/problem.ts";
import type { ProblemSet } from "../registry/schema.ts";
import { chooseWorkspace } from "../registry/workspace.ts";
import { DEFAULT_TRIALS } from "../store/protocol.ts";
import type { RunRecord, Target } from "../store/schema.ts";

export interface ProblemInfo {
  name: string;
  set: string;
  template: string;
  description: string;
  /** Per-chip kernel variants (e.g. "m4"); empty when the kernel is one flat file. */
  variants: string[];
  dispatches: number;
}

/** The problems of a workspace (default: the one around the current folder), in run order. */
export function listProblems(opts: { workspace?: string; set?: ProblemSet } = {}): ProblemInfo[] {
  const registry = loadRegistry(chooseWorkspace(opts.workspace));
  return problemsInOrder(registry, opts.set).map((p) => ({
    name: p.name,
    set: p.set,
    template: p.template,
    description: p.description,
    variants: p.variants,
    dispatches: p.entry.dispatches.length,
  }));
}

export interface BenchmarkOptions {
  /** Problem names, or "all"; default: every problem of `set`, else all. */
  problems?: string[] | "all";
  set?: ProblemSet;
  /** The workspace folder (default: METALBENCH_WORKSPACE, the one around the cwd, the built-in suite). */
  workspace?: string;
  /** "paired" (default): kernel and MLX; "metal": kernel only; "mlx": reference only. */
  mode?: RunMode;
  backend?: BackendKind;
  size?: SizeName;
  iters?: number;
  warmup?: number;
  batch?: number;
  clock?: "batched" | "per-launch";
  trials?: number;
  /** Fixed seed (reproducible; such a run stays off the leaderboard). Default: drawn fresh. */
  seed?: number;
  timeBudgetS?: number;
  target?: Target;
  fastMath?: boolean;
  /** Write results/ and offer runs to session.json (default true, as the CLI). */
  save?: boolean;
  /** Per-dispatch time limit, ms. */
  timeoutMs?: number;
  referenceTimeoutS?: number;
  /** Called as each problem finishes. */
  onRun?: (record: RunRecord, index: number, total: number) => void;
  /** Lines the CLI prints on stderr (session.json updates, notes); default: dropped. */
  onNote?: (line: string) => void;
  /** Abort to stop at the next step. */
  signal?: AbortSignal;
}

export interface BenchmarkResult {
  workspace: string;
  records: RunRecord[];
  summary: Summary;
}

function pick(all: Problem[], opts: BenchmarkOptions): Problem[] {
  if (opts.problems === undefined || opts.problems === "all") {
    return opts.set ? all.filter((p) => p.set === opts.set) : all;
  }
  const byName = new Map(all.map((p) => [p.name, p]));
  return opts.problems.map((n) => {
    const p = byName.get(n);
    if (!p) {
      throw new Error(`unknown problem '${n}' — fix: one of ${[...byName.keys()].join(", ")}`);
    }
    return p;
  });
}

/** Benchmark problems as `metalbench <names…>` does. Throws DeviceLostError when the GPU is lost. */
export async function benchmark(opts: BenchmarkOptions = {}): Promise<BenchmarkResult> {
  const workspace = chooseWorkspace(opts.workspace);
  const problems = pick(problemsInOrder(loadRegistry(workspace)), opts);
  const mode = opts.mode ?? "paired";
  const kind = opts.backend ?? defaultBackend();
  const d = RUN_DEFAULTS[kind];
  const harness = await Harness.open({
    mode,
    backend: kind,
    timeoutMs: opts.timeoutMs,
    referenceTimeoutS: opts.referenceTimeoutS,
    referenceDirs: problems.map((p) => dirname(p.referencePath)),
    signal: opts.signal,
  });
  try {
    const records = await runSession(harness.ctx, workspace, problems, {
      mode,
      size: opts.size ?? d.size,
      seed: opts.seed ?? freshSeed(),
      seedSource: opts.seed === undefined ? "random" : "user",
      trials: opts.trials ?? DEFAULT_TRIALS,
      timeBudgetS: opts.timeBudgetS,
      warmup: opts.warmup ?? d.warmup,
      iters: opts.iters ?? d.iters,
      clock: clockOf(opts.clock ?? "batched", opts.batch ?? d.batch, mode === "mlx" ? null : kind),
      coldStart: false,
      target: opts.target ?? "speed",
      save: opts.save ?? true,
      fastMath: opts.fastMath ?? false,
    }, {
      onResult: (r, i, n) => opts.onRun?.(r, i, n),
      onNote: (line) => opts.onNote?.(line),
    });
    return { workspace: workspace.root, records, summary: summarizeRuns(records) };
  } finally {
    await harness.close();
  }
}
