/**
 * The one way in to the benchmark for anything that is not `run.ts` itself:
 * the CLI and Agent Steel open a harness (the backend, one MLX worker, a
 * scratch folder, the machine-wide timing lock), benchmark sources with it,
 * and close it. Defaults and clocks per backend live here too, so the CLI
 * and the agent measure the same way.
 */
import { join } from "node:path";
import { type Backend, type BackendKind, openBackend } from "../backend/select.ts";
import type { KernelSource, Problem } from "../registry/load.ts";
import type { SizeName } from "../registry/problem.ts";
import { withLock } from "../store/files.ts";
import type { Clock } from "../store/schema.ts";
import { cacheHome } from "../util/paths.ts";
import { DEFAULT_REFERENCE_TIMEOUT_S, MlxReference } from "./reference_mlx.ts";
import { ReferenceCache } from "./reference_cache.ts";
import {
  type BenchContext,
  benchmarkSources,
  type BenchOptions,
  type BenchOutcome,
  DeviceLostError,
  type RunMode,
} from "./run.ts";

/** Defaults per backend: the simulator is a CPU, so it runs the small size, fewer times. */
export const RUN_DEFAULTS = {
  metal: { size: "bench", warmup: 10, iters: 100, batch: 10 },
  sim: { size: "test", warmup: 2, iters: 20, batch: 5 },
} as const satisfies Record<
  BackendKind,
  { size: SizeName; warmup: number; iters: number; batch: number }
>;

/** The machine-wide lock that keeps two runs from timing at once. */
export const TIMING_LOCK = Deno.env.get("METALBENCH_TIMING_LOCK") ?? "/tmp/metalbench-timing.lock";

/** The clock both sides are timed by, described for the report. */
export function clockOf(
  mode: "batched" | "per-launch",
  batch: number,
  backend: BackendKind | null,
): Clock {
  if (backend === null) {
    return mode === "per-launch"
      ? { mode, batch: 1, description: "per-launch wall: one call + mx.eval per sample" }
      : { mode, batch, description: `batched wall: ${batch} calls then one mx.eval, ÷${batch}` };
  }
  const side = backend === "sim" ? "simulator run (CPU)" : "command buffer";
  if (mode === "per-launch") {
    return {
      mode,
      batch: 1,
      description:
        `per-launch wall: one launch then one wait, both sides (kernel: ${side}; MLX: call + mx.eval)`,
    };
  }
  return {
    mode,
    batch,
    description:
      `batched wall: ${batch} launches then one wait, ÷${batch}, both sides (kernel: ${side}; MLX: ${batch} calls + one mx.eval)`,
  };
}

export interface HarnessOptions {
  mode: RunMode;
  backend: BackendKind;
  /** Per-dispatch time limit (simulator; Metal waits this long). */
  timeoutMs?: number;
  /** Seconds one load, run or time of an MLX reference may take. */
  referenceTimeoutS?: number;
  /** Folders the MLX worker may read: the references' folders. */
  referenceDirs: string[];
  /** A fresh MLX worker for every problem (--isolate-references). */
  isolateReferences?: boolean;
  signal?: AbortSignal;
}

export class Harness {
  private constructor(
    readonly ctx: BenchContext,
    private backendHandle: Backend | null,
    private reference: MlxReference | null,
  ) {}

  static async open(o: HarnessOptions): Promise<Harness> {
    const workDir = await Deno.makeTempDir({ prefix: "metalbench-" });
    // The device and the worker start side by side (each takes about 0.1 s).
    const [b, r] = await Promise.allSettled([
      o.mode !== "mlx" ? openBackend({ kind: o.backend, timeoutMs: o.timeoutMs }) : null,
      // The worker may read the references and the input files, and write only its own scratch.
      o.mode !== "metal"
        ? MlxReference.start({
          timeoutMs: (o.referenceTimeoutS ?? DEFAULT_REFERENCE_TIMEOUT_S) * 1000,
          readable: [workDir, ...new Set(o.referenceDirs)],
          isolate: o.isolateReferences,
        })
        : null,
    ]);
    const backend = b.status === "fulfilled" ? b.value : null;
    const reference = r.status === "fulfilled" ? r.value : null;
    const failed = [b, r].find((x) => x.status === "rejected");
    if (failed) {
      backend?.close();
      await reference?.close(true);
      await Deno.remove(workDir, { recursive: true }).catch(() => {});
      throw failed.reason;
    }
    const ctx: BenchContext = {
      backend,
      reference,
      referenceCache: new ReferenceCache(join(cacheHome(), "reference")),
      workDir,
      withTimingLock: (fn) => withLock(TIMING_LOCK, fn),
      signal: o.signal,
    };
    return new Harness(ctx, backend, reference);
  }

  get backend(): Backend | null {
    return this.backendHandle;
  }

  /**
   * Benchmark sources of one problem in one run (see benchmarkSources).
   * Throws DeviceLostError when the GPU is gone for this process.
   */
  async benchmark(
    problem: Problem,
    sources: (() => KernelSource)[],
    opts: BenchOptions,
  ): Promise<BenchOutcome[]> {
    const outcomes = await benchmarkSources(this.ctx, problem, sources, opts);
    const lost = outcomes.find((o) => o.record.error?.kind === "device_lost");
    if (lost) throw new DeviceLostError(lost.record.error!.message, problem.name, [problem.name]);
    return outcomes;
  }

  /** Start what the next benchmark needs (a fresh MLX worker) while the caller does other work. */
  prewarm(): void {
    this.ctx.reference?.prewarm?.();
  }

  /** Resolves when no kernel call is executing (a call in flight must return before closing). */
  async idle(): Promise<void> {
    await this.backendHandle?.bridge.idle();
  }

  /** Close everything; the worker is stopped at once (it holds nothing worth a graceful exit). */
  async close(): Promise<void> {
    this.backendHandle?.close();
    this.backendHandle = null;
    await this.reference?.close(true).catch(() => {});
    this.reference = null;
    await Deno.remove(this.ctx.workDir, { recursive: true }).catch(() => {});
  }
}

/** A kernel source read from a file that is not the problem's own (a candidate). */
export function sourceFromFile(path: string, variant = "candidate"): () => KernelSource {
  return () => ({ path, variant, text: Deno.readTextFileSync(path), metallib: null });
}
