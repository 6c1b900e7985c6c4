/**
 * A benchmark session: several problems benchmarked with one backend and
 * one MLX worker (a `--all` run pays Python start-up and MLX import once),
 * each result stored as it completes, and a summary at the end.
 */
import type { Problem } from "../registry/load.ts";
import type { Workspace } from "../registry/workspace.ts";
import { appendRun, ResultsFileError } from "../store/results.ts";
import { describeUpdate, offerRun } from "../store/session.ts";
import { writeSessionDocs } from "../store/markdown.ts";
import type { RunRecord } from "../store/schema.ts";
import { type BenchContext, benchmark, type BenchOptions, DeviceLostError } from "./run.ts";

export { DeviceLostError };
import { fastP } from "./scores.ts";
import { geomean } from "./stats.ts";

export interface SessionOptions extends BenchOptions {
  /** Write results/ and offer runs to session.json. */
  save: boolean;
  /** Compile every kernel with fast math (--fast-math); otherwise each problem's own opt-in. */
  fastMath?: boolean;
}

/** The problem as this session compiles it: --fast-math turns its fast math on. */
function asCompiled(problem: Problem, opts: SessionOptions): Problem {
  if (!opts.fastMath || problem.entry.fastMath) return problem;
  return { ...problem, entry: { ...problem.entry, fastMath: true } };
}

/** Why a run does not enter session.json although it may be the best, or null. */
function notComparable(record: RunRecord): string | null {
  const layers = record.device.layers ?? [];
  if (!layers.length) return null;
  return `not offered to session.json [${record.bucket}/${record.kernel}]: timed with Metal's ${
    layers.join(", ")
  } layer(s) on (--gputracer needs MTL_CAPTURE_ENABLED=1), which slow every call`;
}

export interface Summary {
  problems: number;
  correct: number;
  incorrect: number;
  faulted: number;
  compileErrors: number;
  unchecked: number;
  fastP: Record<string, number>;
  geomeanSpeedup: number | null;
}

export function summarizeRuns(runs: RunRecord[]): Summary {
  const status = (s: string) => runs.filter((r) => r.correctness.status === s).length;
  const judged = runs.map((r) => ({
    correct: r.correctness.status === "correct",
    speedup: r.metrics.speedup,
  }));
  const speedups = runs
    .filter((r) => r.correctness.status === "correct" && r.metrics.speedup !== null)
    .map((r) => r.metrics.speedup!);
  const g = geomean(speedups);
  return {
    problems: runs.length,
    correct: status("correct"),
    incorrect: status("incorrect"),
    faulted: status("fault"),
    compileErrors: status("compile-error"),
    unchecked: status("unchecked"),
    fastP: Object.fromEntries([0, 1, 1.5, 2].map((p) => [`fast_${p}`, fastP(judged, p)])),
    geomeanSpeedup: Number.isFinite(g) ? g : null,
  };
}

/**
 * Append the record to results/. When that fails (a folder that cannot be
 * written, a full disk) the record is not lost: it goes to a file in the
 * temporary folder, and a note says where and why.
 */
async function saveRun(resultsDir: string, record: RunRecord, events: SessionEvents) {
  try {
    await appendRun(resultsDir, record);
    return true;
  } catch (e) {
    const fallback = await Deno.makeTempFile({
      prefix: `metalbench-${record.kernel}-`,
      suffix: ".json",
    });
    await Deno.writeTextFile(fallback, JSON.stringify(record, null, 1) + "\n");
    events.onUnsaved?.(fallback);
    // A corrupt results file still stops the run (exit 4), with the record kept.
    if (e instanceof ResultsFileError) {
      throw new ResultsFileError(`${e.message}; this run's record was saved to ${fallback}`);
    }
    events.onNote?.(
      `could not write the run to ${resultsDir}: ${
        (e as Error).message
      } — the record was saved to ${fallback}; fix: make the results folder writable, or pass --no-session`,
    );
    return false;
  }
}

export interface SessionEvents {
  /** A run record could not be written to results/ and went to this file instead. */
  onUnsaved?(path: string): void;
  onStart?(problem: Problem, index: number, total: number): void;
  onResult?(record: RunRecord, index: number, total: number, elapsedMs: number): void;
  /** A line for stderr: session.json updates, notes. */
  onNote?(line: string): void;
}

export async function runSession(
  ctx: BenchContext,
  workspace: Workspace,
  problems: Problem[],
  opts: SessionOptions,
  events: SessionEvents = {},
): Promise<RunRecord[]> {
  const records: RunRecord[] = [];
  for (const [i, given] of problems.entries()) {
    ctx.signal?.throwIfAborted();
    const problem = asCompiled(given, opts);
    events.onStart?.(problem, i, problems.length);
    const started = performance.now();
    const { record, sourceText } = await benchmark(ctx, problem, opts);
    if (i + 1 < problems.length) ctx.reference?.prewarm?.();
    if (record.error?.kind === "device_lost") {
      throw new DeviceLostError(
        record.error.message,
        problem.name,
        problems.slice(i).map((p) => p.name),
      );
    }
    records.push(record);
    events.onResult?.(record, i, problems.length, performance.now() - started);
    if (opts.save && record.mode !== "mlx") {
      if (!await saveRun(workspace.resultsDir, record, events)) continue;
      const unfit = notComparable(record);
      if (unfit) events.onNote?.(unfit);
      if (sourceText !== null && !unfit) {
        const update = await offerRun(
          workspace.sessionPath,
          record,
          sourceText,
          (session) => writeSessionDocs(session, workspace),
        );
        events.onNote?.(describeUpdate(record.bucket, record.kernel, update));
      }
    }
  }
  return records;
}
