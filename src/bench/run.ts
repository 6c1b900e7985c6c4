/**
 * One benchmark, end to end: seeded inputs fed to both sides; correctness
 * over several trials with fresh inputs and NaN-poisoned outputs, and once
 * more after the timed runs; timing of the kernel and of MLX by the same
 * clock; figures and scores. Returns the full run record.
 */
import { join } from "node:path";
import { BridgeError } from "../backend/bridge.ts";
import type { Backend } from "../backend/select.ts";
import { type KernelSource, type Problem, resolveKernelSource, sized } from "../registry/load.ts";
import type { ResolvedTensor, SizedProblem, SizeName } from "../registry/problem.ts";
import type { Clock, Correctness, CorrectnessStatus, RunRecord, Target } from "../store/schema.ts";
import { SCHEMA_VERSION } from "../store/schema.ts";
import { compare, passes } from "./compare.ts";
import { decodeTensor } from "../reference/tensor_io.ts";
import { makeTensor } from "./inputs.ts";
import { KernelSetupError, poison, type PreparedKernel, prepareKernel } from "./kernel_side.ts";
import { type ReferenceCache, referenceKey } from "./reference_cache.ts";
import { scores } from "./scores.ts";
import { stability, summarize } from "./stats.ts";
import { ReferenceProblemError, type ReferenceSide, type TensorFile } from "./reference_side.ts";
import { VERSION } from "../version.ts";
import { sha256Hex } from "../util/hash.ts";

export type RunMode = "paired" | "metal" | "mlx";

export interface BenchOptions {
  mode: RunMode;
  size: SizeName;
  seed: number;
  trials: number;
  warmup: number;
  iters: number;
  clock: Clock;
  coldStart: boolean;
  target: Target;
  /** Kernel variant to use instead of the chip's (e.g. "m4"). */
  variant?: string;
  /** Capture one run of the kernel into this .gputrace, or into <folder>/<name>.gputrace (Metal only). */
  gputrace?: string;
}

export interface BenchContext {
  backend: Backend | null;
  reference: ReferenceSide | null;
  referenceCache: ReferenceCache;
  /** Scratch folder for tensor files; removed by the caller. */
  workDir: string;
  /** Run `fn` holding the machine-wide timing lock. */
  withTimingLock<T>(fn: () => Promise<T>): Promise<T>;
  /** Aborted on Ctrl-C: the benchmark stops at its next step. */
  signal?: AbortSignal;
}

export interface BenchOutcome {
  record: RunRecord;
  /** The Metal source that ran (for session.json), if any. */
  sourceText: string | null;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

interface TrialInputs {
  seed: number;
  bytes: Map<string, Uint8Array<ArrayBuffer>>;
  files: TensorFile[];
}

async function makeInputs(problem: SizedProblem, seed: number, dir: string): Promise<TrialInputs> {
  const bytes = new Map<string, Uint8Array<ArrayBuffer>>();
  const files: TensorFile[] = [];
  for (const t of problem.inputs) {
    const data = makeTensor(t, seed);
    bytes.set(t.name, data);
    const path = join(dir, `in_${seed}_${t.name}.bin`);
    await Deno.writeFile(path, data);
    files.push({ path, dtype: t.dtype, shape: t.shape });
  }
  return { seed, bytes, files };
}

function compareOutputs(
  problem: SizedProblem,
  kernelOut: Map<string, Uint8Array>,
  refOut: Uint8Array[],
) {
  return problem.outputs.map((t, i) => ({
    name: t.name,
    comparison: compare(
      decodeTensor(kernelOut.get(t.name)!, t.dtype),
      decodeTensor(refOut[i], t.dtype),
      problem.tolerance,
    ),
  }));
}

/** The reference's outputs for one trial: from MLX, else from the cache, else none. */
async function referenceOutputs(
  ctx: BenchContext,
  problem: SizedProblem,
  key: string,
  inputs: TrialInputs,
): Promise<Uint8Array<ArrayBuffer>[] | undefined> {
  const names = problem.outputs.map((t) => t.name);
  if (!ctx.reference) return await ctx.referenceCache.get(key, names);
  const files = problem.outputs.map((t) => ({
    path: join(ctx.workDir, `ref_${inputs.seed}_${t.name}.bin`),
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
  }));
  // The reference side checks each output's dtype and shape against these specs.
  await ctx.reference.run(problem.name, inputs.files, files);
  const outs = await Promise.all(files.map((f) => Deno.readFile(f.path)));
  await ctx.referenceCache.put(key, outs.map((bytes, i) => ({ name: names[i], bytes })));
  return outs;
}

async function runKernelOnce(k: PreparedKernel, problem: SizedProblem, inputs: TrialInputs) {
  for (const t of problem.inputs) k.buffers.get(t.name)!.write(inputs.bytes.get(t.name)!);
  for (const t of [...problem.outputs, ...problem.intermediates]) {
    k.buffers.get(t.name)!.write(poison(Math.max(t.bytes, 16)));
  }
  const times = await k.command.run(1, 1);
  return times.wallNs[0];
}

function readTensors(k: PreparedKernel, tensors: ResolvedTensor[]) {
  return new Map(tensors.map((t) => [t.name, k.buffers.get(t.name)!.read(t.bytes)]));
}

function modifiedInputs(k: PreparedKernel, problem: SizedProblem, inputs: TrialInputs): string[] {
  const now = readTensors(k, problem.inputs);
  return problem.inputs.filter((t) => !sameBytes(now.get(t.name)!, inputs.bytes.get(t.name)!)).map((
    t,
  ) => t.name);
}

function summarizeCorrectness(
  status: CorrectnessStatus,
  detail: string,
  problem: SizedProblem,
  trials: Correctness["trials"],
): Correctness {
  const comps = trials.flatMap((t) => t.outputs.map((o) => o.comparison));
  return {
    status,
    detail,
    tolerance: problem.tolerance,
    trials,
    maxAbsError: comps.reduce((m, c) => Math.max(m, c.maxAbsError), 0),
    maxRelError: comps.reduce((m, c) => Math.max(m, c.maxRelError), 0),
    withinFraction: comps.length ? Math.min(...comps.map((c) => c.within / c.elements)) : 0,
  };
}

function judgeTrials(trials: Correctness["trials"]): { status: CorrectnessStatus; detail: string } {
  for (const t of trials) {
    const when = t.phase === "after-timing" ? "after the timed runs" : `trial seed ${t.seed}`;
    if (t.inputsModified.length) {
      return {
        status: "incorrect",
        detail: `the kernel modified its input(s) ${t.inputsModified.join(", ")} (${when})`,
      };
    }
    for (const o of t.outputs) {
      if (!passes(o.comparison)) {
        const c = o.comparison;
        const pct = ((100 * c.within) / c.elements).toFixed(2);
        const at = c.firstFailureValues
          ? `; first at [${c.firstFailure}]: kernel ${c.firstFailureValues.kernel}, reference ${c.firstFailureValues.reference}`
          : "";
        return {
          status: "incorrect",
          detail:
            `output '${o.name}': ${pct}% of ${c.elements} elements within tolerance (${when})${
              c.nonFiniteMismatches
                ? `, ${c.nonFiniteMismatches} NaN/Inf where the reference has none`
                : ""
            }${at}`,
        };
      }
    }
  }
  return { status: "correct", detail: `${trials.length} checks passed` };
}

/** Capture one run of the kernel; a backend without capture says why. */
async function capture(
  kernel: PreparedKernel,
  path: string,
): Promise<NonNullable<RunRecord["gputrace"]>> {
  try {
    await kernel.command.capture(path);
    return { path, written: true, detail: "one run of the command" };
  } catch (e) {
    if (e instanceof BridgeError && e.status !== "execution" && e.status !== "timeout") {
      return { path, written: false, detail: e.message };
    }
    throw e;
  }
}

/**
 * One line out of a multi-line error: a compiler's first "file:line[:col]:
 * error:" diagnostic when there is one, else the first line.
 */
export function firstLine(message: string): string {
  const lines = message.split("\n").map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /^[^\s:]+:\d+(:\d+)?: (fatal )?error: /.test(l));
  if (errors.length > 1) return `${errors[0]} (and ${errors.length - 1} more error(s))`;
  return errors[0] ?? lines[0] ?? message;
}

/** Benchmark one problem. Never throws for a kernel's fault: it is recorded. */
export async function benchmark(
  ctx: BenchContext,
  problem: Problem,
  opts: BenchOptions,
): Promise<BenchOutcome> {
  const sp = sized(problem, opts.size);
  const backend = opts.mode === "mlx" ? null : ctx.backend;
  const reference = opts.mode === "metal" ? null : ctx.reference;
  const local: BenchContext = { ...ctx, reference };

  let source: KernelSource | null = null;
  let kernel: PreparedKernel | null = null;
  const trials: Correctness["trials"] = [];
  let verdict: { status: CorrectnessStatus; detail: string } = {
    status: "unchecked",
    detail: "not run",
  };
  let error: RunRecord["error"] = null;
  let kernelTiming: RunRecord["kernelTiming"] = null;
  let mlxTiming: RunRecord["mlxTiming"] = null;
  let coldStart: RunRecord["coldStart"] = null;
  let firstRunMs: number | null = null;
  let mlxFirstCallMs: number | null = null;
  let pipelines: RunRecord["pipelines"] = [];
  let gputrace: RunRecord["gputrace"] = null;

  // The verdict's detail is one line; the error keeps the whole text
  // (a compiler's diagnostics, a fault report).
  const fail = (status: CorrectnessStatus, kind: string, message: string) => {
    verdict = { status, detail: firstLine(message) };
    error = { kind, message };
  };

  try {
    const referenceText = await Deno.readTextFile(problem.referencePath).catch(() => {
      throw new ReferenceProblemError(`no reference at ${problem.referencePath}`);
    });
    const step = () => ctx.signal?.throwIfAborted();
    if (reference) await reference.load(problem.name, problem.referencePath, sp.init);
    const trialInputs = [] as TrialInputs[];
    for (let t = 0; t < opts.trials; t++) {
      trialInputs.push(await makeInputs(sp, opts.seed + t, ctx.workDir));
    }

    if (reference && opts.coldStart) {
      mlxFirstCallMs = (await reference.cold(problem.name, trialInputs[0].files)) / 1e6;
    }

    if (backend) {
      step();
      source = resolveKernelSource(problem, opts.variant ?? backend.chip?.variant);
      try {
        kernel = await prepareKernel(backend, sp, source);
        pipelines = [...kernel.pipelines].map(([fn, p]) => ({ function: fn, ...p.facts() }));
      } catch (e) {
        if (e instanceof KernelSetupError) fail("compile-error", e.kind, e.message);
        else throw e;
      }
    }

    // Correctness trials: the kernel against the reference's outputs.
    if (kernel) {
      const refs: (Uint8Array<ArrayBuffer>[] | undefined)[] = [];
      for (const inputs of trialInputs) {
        const key = await referenceKey(referenceText, sp, inputs.seed);
        refs.push(await referenceOutputs(local, sp, key, inputs));
      }
      const haveRefs = refs.every((r) => r !== undefined);
      try {
        for (const [i, inputs] of trialInputs.entries()) {
          step();
          const wall = await runKernelOnce(kernel, sp, inputs);
          if (i === 0) firstRunMs = wall / 1e6;
          if (!haveRefs) continue;
          trials.push({
            seed: inputs.seed,
            phase: "trial",
            outputs: compareOutputs(sp, readTensors(kernel, sp.outputs), refs[i]!),
            inputsModified: modifiedInputs(kernel, sp, inputs),
          });
        }
        verdict = haveRefs ? judgeTrials(trials) : {
          status: "unchecked",
          detail: "no reference outputs: run once without --metal to cache them",
        };

        // Timing, with trial 0's inputs; then check the outputs the timed runs left.
        const inputs = trialInputs[0];
        await runKernelOnce(kernel, sp, inputs);
        const k = kernel;
        const batch = opts.clock.batch;
        const times = await ctx.withTimingLock(async () => {
          step();
          if (opts.warmup > 0) await k.command.run(opts.warmup, batch);
          step();
          return await k.command.run(opts.iters, batch);
        });
        kernelTiming = {
          wall: summarize(times.wallNs),
          device: summarize(times.deviceNs),
          wallNs: [...times.wallNs],
          deviceNs: [...times.deviceNs],
        };
        if (opts.gputrace) {
          const path = opts.gputrace.endsWith(".gputrace")
            ? opts.gputrace
            : join(opts.gputrace, `${problem.name}.gputrace`);
          gputrace = await capture(kernel, path);
        }
        if (haveRefs) {
          trials.push({
            seed: inputs.seed,
            phase: "after-timing",
            outputs: compareOutputs(sp, readTensors(kernel, sp.outputs), refs[0]!),
            inputsModified: modifiedInputs(kernel, sp, inputs),
          });
          verdict = judgeTrials(trials);
        }
      } catch (e) {
        if (e instanceof BridgeError && (e.status === "execution" || e.status === "timeout")) {
          fail("fault", e.status, e.message);
          kernelTiming = null;
        } else throw e;
      }
    }

    if (reference) {
      step();
      const r = reference;
      const t = await ctx.withTimingLock(() =>
        r.time(problem.name, trialInputs[0].files, {
          warmup: opts.warmup,
          samples: opts.iters,
          mode: opts.clock.mode,
          batch: opts.clock.batch,
        })
      );
      mlxTiming = {
        wall: summarize(t.samplesNs),
        wallNs: t.samplesNs,
        device: r.device,
        workerPid: r.pid,
      };
    }
  } catch (e) {
    if (e instanceof ReferenceProblemError) {
      fail("unchecked", "reference", e.message);
    } else if (e instanceof BridgeError) {
      fail("fault", e.status, e.message);
    } else {
      throw e;
    }
  } finally {
    kernel?.free();
  }

  if (opts.coldStart) {
    coldStart = { compileMs: kernel?.compileMs ?? null, firstRunMs, mlxFirstCallMs };
  }

  const devSeconds = kernelTiming ? kernelTiming.device.median / 1e9 : null;
  const gflops = devSeconds ? sp.flops / devSeconds / 1e9 : null;
  const gbps = devSeconds ? sp.bytes / devSeconds / 1e9 : null;
  const speedup = kernelTiming && mlxTiming
    ? mlxTiming.wall.median / kernelTiming.wall.median
    : null;
  const chip = backend?.chip ?? null;
  const intensity = sp.bytes > 0 ? sp.flops / sp.bytes : 0;
  const stab = kernelTiming ? stability(kernelTiming.wall) : null;

  const record: RunRecord = {
    version: SCHEMA_VERSION,
    id: crypto.randomUUID(),
    kernel: problem.name,
    set: problem.set,
    timestamp: new Date().toISOString(),
    metalbench: VERSION,
    mode: opts.mode,
    backend: ctx.backend?.kind ?? "sim",
    bucket: ctx.backend?.bucket ?? "mlx-only",
    device: {
      name: ctx.backend?.info.name ?? "none",
      timer: ctx.backend?.info.timer ?? "none",
      gpuCores: ctx.backend?.info.gpu_cores ?? 0,
      chip: chip?.name ?? null,
    },
    sizes: sp.sizes,
    settings: {
      size: opts.size,
      seed: opts.seed,
      trials: opts.trials,
      warmup: opts.warmup,
      iters: opts.iters,
      clock: opts.clock,
    },
    source: source
      ? {
        path: source.path,
        variant: source.variant,
        sha256: await sha256Hex(source.text),
        metallib: backend?.kind === "metal" ? source.metallib : null,
      }
      : null,
    pipelines,
    correctness: summarizeCorrectness(verdict.status, verdict.detail, sp, trials),
    kernelTiming,
    mlxTiming,
    coldStart,
    metrics: {
      speedup,
      gflops,
      gbps,
      arithmeticIntensity: intensity,
      flops: sp.flops,
      bytes: sp.bytes,
      peakBandwidthPct: chip && gbps !== null ? (100 * gbps) / chip.peakGBps : null,
      peakComputePct: chip && gflops !== null ? (100 * gflops) / chip.peakGflops : null,
      roofline: chip
        ? (intensity < chip.peakGflops / chip.peakGBps ? "memory-bound" : "compute-bound")
        : null,
    },
    scores: scores({ speedup, gflops, gbps, stability: stab }),
    target: opts.target,
    gputrace,
    error,
  };
  return { record, sourceText: source?.text ?? null };
}
