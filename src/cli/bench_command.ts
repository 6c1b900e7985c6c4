/**
 * `metalbench <kernel...>`: pick the problems, open the backend and the MLX
 * worker once, run the session, print reports (or JSON) and the summary.
 */
import { dirname } from "node:path";
import { closest } from "fastest-levenshtein";
import { type BackendKind, defaultBackend } from "../backend/select.ts";
import { loadRegistry, type Problem, problemsInOrder } from "../registry/load.ts";
import { chooseWorkspace } from "../registry/workspace.ts";
import { clockOf, Harness, RUN_DEFAULTS } from "../bench/harness.ts";
import { DeviceLostError, runSession, summarizeRuns, type Summary } from "../bench/session_run.ts";
import type { RunMode } from "../bench/run.ts";
import { freshSeed } from "../bench/inputs.ts";
import { renderReport, renderTable } from "../bench/report.ts";
import { readSession } from "../store/session.ts";
import type { RunRecord, Target } from "../store/schema.ts";
import { CliError, EXIT } from "./exit_codes.ts";
import type { ProblemSet } from "../registry/schema.ts";
import type { SizeName } from "../registry/problem.ts";
import { problemsAtSize } from "./sizes.ts";
import { EVENTS_VERSION } from "../api/events.ts";
import { writeReport } from "../api/report.ts";

export interface BenchFlags {
  all?: true;
  set?: ProblemSet;
  mlx?: true;
  metal?: true;
  session: boolean;
  target: Target;
  backend?: BackendKind;
  size?: SizeName;
  iters?: number;
  warmup?: number;
  batch?: number;
  clock: "batched" | "per-launch";
  trials: number;
  seed?: number;
  timeBudget?: number;
  coldStart?: true;
  variant?: string;
  timeout?: number;
  /** A fresh MLX worker for every problem. */
  isolateReferences?: true;
  /** Seconds one load, run or time of an MLX reference may take. */
  referenceTimeout?: number;
  /** Compile every kernel with fast math (default off, as MLX). */
  fastMath?: true;
  gputracer?: string;
  /** One JSON event a line on stdout as each problem finishes (src/api/events.ts). */
  json?: true;
  /** Write the report (summary + records) here at the end; a folder gets <YYYY-MM-DD>.json. */
  report?: string;
  workspace?: string;
}

function selectProblems(all: Problem[], names: string[], flags: BenchFlags): Problem[] {
  if (flags.all) return all;
  if (flags.set) return all.filter((p) => p.set === flags.set);
  if (!names.length) {
    throw new CliError(
      "name a kernel to benchmark, or use --all (list them with: metalbench list)",
      EXIT.USAGE,
    );
  }
  const byName = new Map(all.map((p) => [p.name, p]));
  return names.map((n) => {
    const p = byName.get(n);
    if (p) return p;
    const known = [...byName.keys()];
    const near = known.filter((k) => k.includes(n) || n.includes(k));
    const suggestions = [...new Set([closest(n, known), ...near])].slice(0, 3);
    throw new CliError(
      `unknown kernel '${n}'; did you mean ${
        suggestions.map((s) => `'${s}'`).join(" or ")
      }? (metalbench list shows all)`,
      EXIT.USAGE,
    );
  });
}

const stderrWrite = (text: string) => Deno.stderr.writeSync(new TextEncoder().encode(text));

/** One --json event: a whole line in one write, so a run killed later leaves it intact. */
function emitEvent(event: Record<string, unknown>) {
  const line = new TextEncoder().encode(
    JSON.stringify({ time: new Date().toISOString(), ...event }) + "\n",
  );
  let written = 0;
  while (written < line.length) written += Deno.stdout.writeSync(line.subarray(written));
}

/** The end of a problem's progress line (onStart wrote its beginning). */
function progressResult(r: RunRecord, ms: number): string {
  const c = r.correctness.status;
  const mark = c === "correct" ? "✓" : c === "unchecked" ? "?" : "✗";
  const speed = r.metrics.speedup !== null ? ` ${r.metrics.speedup.toFixed(2)}×` : "";
  const why = r.error?.kind === "reference"
    ? " the reference failed (see below)"
    : c === "correct" || c === "unchecked"
    ? ""
    : ` ${c}: ${r.correctness.detail}`;
  return `${mark}${speed}${why} (${(ms / 1000).toFixed(1)} s)`;
}

export function renderSummary(s: Summary, sim: boolean): string {
  const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
  return [
    "",
    `summary: ${s.correct}/${s.problems} correct` +
    (s.incorrect ? `, ${s.incorrect} incorrect` : "") +
    (s.faulted ? `, ${s.faulted} faulted` : "") +
    (s.compileErrors ? `, ${s.compileErrors} did not compile` : "") +
    (s.unchecked ? `, ${s.unchecked} unchecked` : ""),
    `fast_p  : ${Object.entries(s.fastP).map(([k, v]) => `${k}=${pct(v)}`).join("  ")}`,
    `speedup : geometric mean ${
      s.geomeanSpeedup === null ? "—" : `${s.geomeanSpeedup.toFixed(2)}×`
    } over correct kernels${sim ? " (simulator: CPU timings, not GPU)" : ""}`,
  ].join("\n");
}

/**
 * The exit code of a run: a failed reference (5), else a failed kernel (1),
 * win over a problem too big for this machine (2) and over a record that
 * could not be written (3).
 */
function exitCodeFor(records: RunRecord[], unsaved: boolean): number {
  const failed = records.some((r) =>
    ["incorrect", "fault", "compile-error"].includes(r.correctness.status)
  );
  // A failed reference wins over a failed kernel: the run could not judge every kernel.
  if (records.some((r) => r.error?.kind === "reference")) return EXIT.REFERENCE_FAILED;
  if (failed) return EXIT.KERNEL_FAILED;
  if (records.some((r) => r.error?.kind === "resource")) return EXIT.USAGE;
  if (unsaved) return EXIT.ENVIRONMENT;
  return EXIT.OK;
}

export async function benchCommand(names: string[], flags: BenchFlags): Promise<number> {
  if (flags.mlx && flags.metal) {
    throw new CliError("--mlx and --metal exclude each other", EXIT.USAGE);
  }
  const workspace = chooseWorkspace(flags.workspace);
  const registry = loadRegistry(workspace);
  const selected = selectProblems(problemsInOrder(registry), names, flags);
  const mode: RunMode = flags.mlx ? "mlx" : flags.metal ? "metal" : "paired";
  if (flags.gputracer?.endsWith(".gputrace") && selected.length > 1) {
    throw new CliError(
      "--gputracer names one .gputrace file; give a folder when benchmarking several kernels",
      EXIT.USAGE,
    );
  }
  const kind = flags.backend ?? defaultBackend();
  const d = RUN_DEFAULTS[kind];
  const size = flags.size ?? d.size;
  const problems = problemsAtSize(
    selected,
    size,
    !flags.all && !flags.set,
    (line) => console.error(line),
  );
  const batch = flags.batch ?? d.batch;
  // Refuse a corrupt session.json before spending any time on benchmarks.
  if (flags.session && mode !== "mlx") await readSession(workspace.sessionPath);

  let harness: Harness | null = null;
  const cleanup = async () => {
    await harness?.close();
    harness = null;
  };
  // Ctrl-C: stop at the next step, letting a kernel call in progress return
  // first (unloading a bridge under a running call would crash), but wait no
  // more than a moment for it; a second Ctrl-C quits at once.
  const interrupt = new AbortController();
  const onSigint = async () => {
    if (interrupt.signal.aborted) Deno.exit(EXIT.INTERRUPTED);
    interrupt.abort();
    console.error("\nmetalbench: interrupted; stopping (Ctrl-C again to quit at once)");
    if (harness) await Promise.race([harness.idle(), new Promise((r) => setTimeout(r, 2000))]);
    await cleanup();
    Deno.exit(EXIT.INTERRUPTED);
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    harness = await Harness.open({
      mode,
      backend: kind,
      timeoutMs: flags.timeout,
      referenceTimeoutS: flags.referenceTimeout,
      referenceDirs: problems.map((p) => dirname(p.referencePath)),
      isolateReferences: flags.isolateReferences,
      signal: interrupt.signal,
    });
    const ctx = harness.ctx;
    const many = problems.length > 1;
    const startedAt = new Date();
    if (flags.json) {
      emitEvent({
        event: "start",
        version: EVENTS_VERSION,
        problems: problems.map((p) => p.name),
        mode,
        backend: kind,
        workspace: workspace.root,
      });
    }
    const unsaved: string[] = [];
    const records = await runSession(ctx, workspace, problems, {
      mode,
      size,
      seed: flags.seed ?? freshSeed(),
      seedSource: flags.seed === undefined ? "random" : "user",
      trials: flags.trials,
      timeBudgetS: flags.timeBudget,
      warmup: flags.warmup ?? d.warmup,
      iters: flags.iters ?? d.iters,
      clock: clockOf(flags.clock, batch, mode === "mlx" ? null : kind),
      coldStart: flags.coldStart ?? false,
      target: flags.target,
      variant: flags.variant,
      gputrace: flags.gputracer,
      save: flags.session,
      fastMath: flags.fastMath ?? false,
    }, {
      onStart: (p, i, n) => {
        if (many && !flags.json) stderrWrite(`[${i + 1}/${n}] ${p.name.padEnd(24)} … `);
      },
      onResult: (r, i, n, ms) => {
        if (flags.json) return emitEvent({ event: "run", index: i, total: n, record: r });
        if (many) console.error(progressResult(r, ms));
        else console.log(renderReport(r));
      },
      onNote: (line) => console.error(line),
      onUnsaved: (path) => unsaved.push(path),
    });
    // Ctrl-C during the last problem can end it as a recorded failure (its
    // worker killed): that is the interruption, not the reference's fault.
    if (interrupt.signal.aborted) return EXIT.INTERRUPTED;
    const summary = summarizeRuns(records);
    const exitCode = exitCodeFor(records, unsaved.length > 0);
    if (flags.report) {
      const report = { startedAt, workspace: workspace.root, mode, backend: kind, exitCode };
      const path = await writeReport(flags.report, { ...report, summary, records }).catch((e) => {
        throw new CliError(
          `could not write the report to ${flags.report}: ${(e as Error).message}`,
          EXIT.ENVIRONMENT,
          "give --report a folder you can write (the records are in results/ all the same)",
        );
      });
      console.error(`metalbench: wrote the report ${path}`);
    }
    if (flags.json) {
      emitEvent({ event: "summary", version: EVENTS_VERSION, summary, exitCode });
    } else if (many) {
      console.log(renderTable(records));
      console.log(renderSummary(summary, kind === "sim" && mode !== "mlx"));
    }
    // Each failed reference, one line: its file, what happened, the fix.
    for (const r of records) {
      if (r.error?.kind === "reference") console.error(`metalbench: ${r.error.message}`);
    }
    return exitCode;
  } catch (e) {
    // After Ctrl-C, whatever broke on the way out (the worker killed, the
    // abort itself) is the interruption, not an error of its own.
    if (interrupt.signal.aborted) return EXIT.INTERRUPTED;
    if (e instanceof DeviceLostError) {
      throw new CliError(
        e.message,
        EXIT.DEVICE_LOST,
        `the runs before ${e.kernel} were saved; run the rest in a new process: metalbench ${
          e.notRun.join(" ")
        }`,
      );
    }
    throw e;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
    await cleanup();
  }
}
