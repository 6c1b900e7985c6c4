/**
 * One benchmark, end to end, as a short sequence of named steps:
 *
 *   inputs      trial sets (seed, seed+1, …), edge-value sets, timing sets
 *   references  the MLX outputs of every set (or the cache's, for --metal)
 *   kernel      compiled once, with two rotating buffer sets
 *   check       each trial on NaN-poisoned outputs, then one on outputs that
 *               still hold the previous answer
 *   time        the kernel, launches rotating over the buffer sets, within a
 *               time budget; then every output set checked as it was left
 *   time MLX    by the same clock
 *   record      figures, scores, plausibility against the device's limits
 *
 * The seed is drawn fresh for every run (unless --seed gives one), so no
 * kernel can know its inputs in advance. Returns the full run record.
 */
import { join } from "node:path";
import { totalmem } from "node:os";
import { BridgeError } from "../backend/bridge.ts";
import type { Backend } from "../backend/select.ts";
import { deviceTimeKind } from "../backend/bridge.ts";
import { type KernelSource, type Problem, resolveKernelSource, sized } from "../registry/load.ts";
import type { ResolvedTensor, SizedProblem, SizeName } from "../registry/problem.ts";
import type {
  Clock,
  Correctness,
  CorrectnessStatus,
  Protocol,
  RunRecord,
  Target,
} from "../store/schema.ts";
import { SCHEMA_VERSION } from "../store/schema.ts";
import { compare, passes, toleranceFor } from "./compare.ts";
import { decodeTensor } from "../reference/tensor_io.ts";
import { makeTensor } from "./inputs.ts";
import {
  EDGE_CLASSES,
  EDGE_DESCRIPTIONS,
  type EdgeClass,
  edgeClasses,
  makeEdgeTensor,
} from "./edge_values.ts";
import {
  bufferBytes,
  type BufferSet,
  deviceBytes,
  KernelSetupError,
  poison,
  type PreparedKernel,
  prepareKernel,
} from "./kernel_side.ts";
import { inputSetTag, type ReferenceCache, referenceKey } from "./reference_cache.ts";
import { ceilingsFor, judgePlausibility } from "./plausibility.ts";
import { PROTOCOL_VERSION } from "../store/protocol.ts";
import { ROTATION_SETS, RotationState, sampleQuantum, wholeRotations } from "./rotation.ts";
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
  /**
   * "random": drawn for this run; "user": given with --seed; "cached": the
   * seed of the last paired run, whose reference outputs are cached (--metal).
   */
  seedSource: "random" | "user" | "cached";
  trials: number;
  warmup: number;
  iters: number;
  clock: Clock;
  coldStart: boolean;
  target: Target;
  /** Wall-clock budget for timing the kernel, in seconds: sampling stops early past it. */
  timeBudgetS?: number;
  /** Kernel variant to use instead of the chip's (e.g. "m4"). */
  variant?: string;
  /** Capture one run of the kernel into this .gputrace, or into <folder>/<name>.gputrace (Metal only). */
  gputrace?: string;
  /**
   * Timed samples per chunk, fixed (whole rotations): the kernels alternate
   * this finely, for a paired comparison (Agent Steel's verifier). Default:
   * chunks that grow, to spend less on calls.
   */
  chunkSamples?: number;
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

export const DEFAULT_TIME_BUDGET_S = 120;

/**
 * The GPU is gone for this process (Metal revoked its access after GPU
 * faults or time-outs): nothing more can be measured, so the session stops
 * rather than record every later kernel as faulting. The kernel that met it
 * is not recorded: the bridge's message names the failures that caused it.
 */
export class DeviceLostError extends Error {
  override name = "DeviceLostError";
  constructor(message: string, readonly kernel: string, readonly notRun: string[]) {
    super(message);
  }
}

/**
 * What the record says about how the kernel was measured, beyond what the
 * benchmark fills in: fast math on or off, the kind of device time, and
 * Metal layers that were on while timing.
 */
function describeMeasurement(record: RunRecord, problem: Problem, backend: Backend | null) {
  if (record.mode === "mlx" || !backend) return;
  record.settings.fastMath = problem.entry.fastMath;
  if (record.kernelTiming) record.kernelTiming.deviceTime = deviceTimeKind(backend.info);
  if (backend.info.layers?.length) record.device.layers = [...backend.info.layers];
}

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/** One set of inputs, fed to both sides, with the reference's outputs for it. */
interface InputSet {
  seed: number;
  edge?: EdgeClass;
  bytes: Map<string, Uint8Array<ArrayBuffer>>;
  files: TensorFile[];
  /** The reference's outputs, in problem.outputs order; undefined when unknown. */
  ref?: Uint8Array<ArrayBuffer>[];
}

async function makeInputSet(
  problem: SizedProblem,
  seed: number,
  dir: string,
  edge?: EdgeClass,
): Promise<InputSet> {
  const bytes = new Map<string, Uint8Array<ArrayBuffer>>();
  const files: TensorFile[] = [];
  const tag = edge ? `${seed}_${edge}` : `${seed}`;
  for (const t of problem.inputs) {
    const data = edge ? makeEdgeTensor(t, seed, edge) : makeTensor(t, seed);
    bytes.set(t.name, data);
    const path = join(dir, `in_${tag}_${t.name}.bin`);
    await Deno.writeFile(path, data);
    files.push({ path, dtype: t.dtype, shape: t.shape });
  }
  return { seed, edge, bytes, files };
}

/**
 * The reference's outputs for each set (in place, as `set.ref`): from MLX in
 * one request, else from the cache, else left undefined.
 */
async function referenceOutputs(
  ctx: BenchContext,
  reference: ReferenceSide | null,
  problem: SizedProblem,
  cacheKey: string,
  sets: InputSet[],
) {
  const tag = (set: InputSet) => inputSetTag(set.seed, set.edge);
  if (!reference) {
    for (const set of sets) {
      set.ref = await ctx.referenceCache.get(cacheKey, tag(set), problem.outputs);
    }
    return;
  }
  const files = sets.map((set) =>
    problem.outputs.map((t) => ({
      path: join(ctx.workDir, `ref_${tag(set)}_${t.name}.bin`),
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
    }))
  );
  // The reference side checks each output's dtype and shape against these specs.
  await reference.runs(
    problem.name,
    sets.map((set, k) => ({ inputs: set.files, outputs: files[k] })),
  );
  for (const [k, set] of sets.entries()) {
    set.ref = await Promise.all(files[k].map((f) => Deno.readFile(f.path)));
    await ctx.referenceCache.put(
      cacheKey,
      tag(set),
      set.ref.map((bytes, i) => ({ name: files[k][i].name, bytes })),
    );
  }
}

// ---- buffers ------------------------------------------------------------

function writeInputs(buffers: BufferSet, problem: SizedProblem, set: InputSet) {
  for (const t of problem.inputs) buffers.get(t.name)!.write(set.bytes.get(t.name)!);
}

/** Poison every output and intermediate, padding included. */
function poisonOutputs(buffers: BufferSet) {
  for (const b of buffers.values()) b.write(poison(b.length));
}

function readOutputs(buffers: BufferSet, tensors: ResolvedTensor[]) {
  return new Map(tensors.map((t) => [t.name, buffers.get(t.name)!.read(t.bytes)]));
}

function modifiedInputs(buffers: BufferSet, problem: SizedProblem, set: InputSet): string[] {
  return problem.inputs
    .filter((t) => !sameBytes(buffers.get(t.name)!.read(t.bytes), set.bytes.get(t.name)!))
    .map((t) => t.name);
}

/** Outputs whose bytes past the last element are no longer the poison written there. */
function modifiedPadding(buffers: BufferSet, problem: SizedProblem): string[] {
  return problem.outputs.filter((t) => {
    const pad = bufferBytes(t) - t.bytes;
    return pad > 0 && buffers.get(t.name)!.read(pad, t.bytes).some((b) => b !== 0xff);
  }).map((t) => t.name);
}

type Trial = Correctness["trials"][number];

/** Compare one output set with the reference of `set`. */
function checkOutputs(
  problem: SizedProblem,
  outputs: BufferSet,
  inputs: BufferSet,
  set: InputSet,
  phase: Trial["phase"],
  outputSet?: number,
): Trial {
  const got = readOutputs(outputs, problem.outputs);
  return {
    seed: set.seed,
    phase,
    edge: set.edge,
    outputSet,
    outputs: problem.outputs.map((t, i) => ({
      name: t.name,
      comparison: compare(
        decodeTensor(got.get(t.name)!, t.dtype),
        decodeTensor(set.ref![i], t.dtype),
        toleranceFor(problem, t, set.bytes),
      ),
    })),
    inputsModified: modifiedInputs(inputs, problem, set),
    paddingModified: modifiedPadding(outputs, problem),
  };
}

// ---- verdicts -----------------------------------------------------------

function summarizeCorrectness(
  status: CorrectnessStatus,
  detail: string,
  problem: SizedProblem,
  trials: Trial[],
  skipped: Correctness["skipped"],
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
    skipped,
  };
}

function trialLabel(t: Trial): string {
  switch (t.phase) {
    case "after-timing":
      return `output set ${t.outputSet ?? 0} after the timed runs`;
    case "edge":
      return `edge trial '${t.edge}' (${EDGE_DESCRIPTIONS[t.edge as EdgeClass] ?? t.edge})`;
    case "unpoisoned":
      return `trial seed ${t.seed} on outputs left from the previous trial`;
    default:
      return `trial seed ${t.seed}`;
  }
}

function judgeTrials(trials: Trial[]): { status: CorrectnessStatus; detail: string } {
  for (const t of trials) {
    const when = trialLabel(t);
    if (t.inputsModified.length) {
      return {
        status: "incorrect",
        detail: `the kernel modified its input(s) ${t.inputsModified.join(", ")} (${when})`,
      };
    }
    if (t.paddingModified.length) {
      return {
        status: "incorrect",
        detail: `the kernel wrote past the last element of ${
          t.paddingModified.join(", ")
        } (${when})`,
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
                ? `, ${c.nonFiniteMismatches} NaN/Inf mismatch(es) with the reference`
                : ""
            }${at}`,
        };
      }
    }
  }
  return { status: "correct", detail: `${trials.length} checks passed` };
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

// ---- steps --------------------------------------------------------------

/** Everything a run learns on its way; the record is made from it at the end. */
class RunState {
  source: KernelSource | null = null;
  trials: Trial[] = [];
  skipped: Correctness["skipped"] = [];
  verdict: { status: CorrectnessStatus; detail: string } = {
    status: "unchecked",
    detail: "not run",
  };
  error: RunRecord["error"] = null;
  kernelTiming: RunRecord["kernelTiming"] = null;
  mlxTiming: RunRecord["mlxTiming"] = null;
  firstRunMs: number | null = null;
  mlxFirstCallMs: number | null = null;
  compileMs: number | null = null;
  pipelines: RunRecord["pipelines"] = [];
  gputrace: RunRecord["gputrace"] = null;
  notes: string[] = [];
  edgeRun: EdgeClass[] = [];
  unpoisoned = false;

  // The verdict's detail is one line; the error keeps the whole text
  // (a compiler's diagnostics, a fault report).
  fail(status: CorrectnessStatus, kind: string, message: string) {
    this.verdict = { status, detail: firstLine(message) };
    this.error = { kind, message };
  }
}

/** Refuse, before allocating anything, a size this machine cannot hold. */
function checkMemory(problem: SizedProblem, backend: Backend | null, kernels: number) {
  const device = backend ? kernels * deviceBytes(problem) : 0;
  // Inputs are made as float64 values and kept as bytes per trial set on the host.
  const host = [...problem.inputs, ...problem.outputs].reduce((a, t) => a + t.numel * 8, 0);
  const workingSet = backend?.info.recommended_working_set ?? 0;
  const deviceLimit = workingSet > 0 ? workingSet : totalmem() / 2;
  const hostLimit = totalmem() / 2;
  const gb = (b: number) => `${(b / 1e9).toFixed(2)} GB`;
  if (device > deviceLimit) {
    throw new ResourceError(
      `${problem.name} at size ${problem.size} needs ${
        gb(device)
      } of device buffers; this device allows ${gb(deviceLimit)} — fix: use a smaller --size`,
    );
  }
  if (host > hostLimit) {
    throw new ResourceError(
      `${problem.name} at size ${problem.size} needs ${
        gb(host)
      } of host memory for its inputs; this machine allows ${
        gb(hostLimit)
      } — fix: use a smaller --size`,
    );
  }
}

export class ResourceError extends Error {
  override name = "ResourceError";
}

/** Trial sets, edge sets and the two timing sets (the first two trial seeds). */
async function makeInputSets(problem: SizedProblem, opts: BenchOptions, dir: string) {
  const trials: InputSet[] = [];
  for (let t = 0; t < Math.max(opts.trials, ROTATION_SETS); t++) {
    trials.push(await makeInputSet(problem, opts.seed + t, dir));
  }
  const edges: InputSet[] = [];
  for (const cls of edgeClasses(problem)) {
    edges.push(await makeInputSet(problem, opts.seed, dir, cls));
  }
  return { checked: trials.slice(0, opts.trials), timing: trials.slice(0, ROTATION_SETS), edges };
}

/** Run launch 0 (input set 0 → output set 0) once. */
async function runOnce(
  kernel: PreparedKernel,
  problem: SizedProblem,
  set: InputSet,
  fresh: boolean,
) {
  writeInputs(kernel.inputSets[0], problem, set);
  if (fresh) poisonOutputs(kernel.outputSets[0]);
  const times = await kernel.command.run(1, 1);
  return times.wallNs[0];
}

/**
 * The correctness trials: each set on poisoned outputs, then one on outputs
 * that still hold the previous answer (a kernel that skips work when its
 * output looks written fails there).
 */
async function checkTrials(
  st: RunState,
  kernel: PreparedKernel,
  problem: SizedProblem,
  sets: { checked: InputSet[]; edges: InputSet[]; timing: InputSet[] },
  step: () => void,
) {
  const haveRefs = [...sets.checked, ...sets.timing].every((s) => s.ref);
  for (const [i, set] of sets.checked.entries()) {
    step();
    const wall = await runOnce(kernel, problem, set, true);
    if (i === 0) st.firstRunMs = wall / 1e6;
    if (set.ref) {
      st.trials.push(
        checkOutputs(problem, kernel.outputSets[0], kernel.inputSets[0], set, "trial"),
      );
    }
  }
  for (const set of sets.edges) {
    step();
    if (!set.ref) continue;
    await runOnce(kernel, problem, set, true);
    st.trials.push(checkOutputs(problem, kernel.outputSets[0], kernel.inputSets[0], set, "edge"));
    st.edgeRun.push(set.edge!);
  }
  // The last run left another set's answer in output set 0.
  const last = st.trials.at(-1);
  const next = sets.timing.find((s) => s.seed !== last?.seed || last?.edge !== undefined) ??
    sets.timing[0];
  if (next.ref) {
    step();
    await runOnce(kernel, problem, next, false);
    st.trials.push(
      checkOutputs(problem, kernel.outputSets[0], kernel.inputSets[0], next, "unpoisoned"),
    );
    st.unpoisoned = true;
  }
  st.verdict = haveRefs ? judgeTrials(st.trials) : {
    status: "unchecked",
    detail: "no reference outputs: run once without --metal to cache them",
  };
}

/** A kernel under test with its own record of the run. */
interface Unit {
  st: RunState;
  kernel: PreparedKernel;
}

/**
 * Time the kernels: each warmed up, then whole rotations of launches in
 * growing chunks, the kernels taking turns chunk by chunk (so two designs
 * compared in one run see the same machine conditions), until `iters`
 * samples or the time budget; then every output set of each kernel is
 * checked against the reference of the input it last received.
 */
async function timeKernels(
  ctx: BenchContext,
  units: Unit[],
  problem: SizedProblem,
  timing: InputSet[],
  opts: BenchOptions,
  step: () => void,
) {
  for (const { kernel } of units) {
    for (const [s, set] of timing.entries()) {
      writeInputs(kernel.inputSets[s], problem, set);
      poisonOutputs(kernel.outputSets[s]);
    }
  }
  const batch = opts.clock.batch;
  const target = wholeRotations(opts.iters, batch);
  const quantum = sampleQuantum(batch);
  const budgetMs = (opts.timeBudgetS ?? DEFAULT_TIME_BUDGET_S) * 1000 * units.length;
  const timers = units.map((u) => ({
    ...u,
    rotation: new RotationState(),
    wallNs: [] as number[],
    deviceNs: [] as number[],
  }));
  // A kernel that faults is recorded as such and leaves the others to go on.
  const faulted = new Set<Unit>();
  const run = async (t: (typeof timers)[number], samples: number) => {
    try {
      return await t.kernel.command.run(samples, batch);
    } catch (e) {
      if (!(e instanceof BridgeError && (e.status === "execution" || e.status === "timeout"))) {
        throw e;
      }
      t.st.fail("fault", e.status, e.message);
      faulted.add(t);
      return null;
    }
  };
  await ctx.withTimingLock(async () => {
    const started = performance.now();
    for (const t of timers) {
      step();
      if (opts.warmup > 0 && await run(t, opts.warmup)) t.rotation.ran(opts.warmup * batch);
    }
    const fixed = opts.chunkSamples ? wholeRotations(opts.chunkSamples, batch) : 0;
    let chunk = fixed || quantum;
    const pending = () => timers.filter((t) => !faulted.has(t) && t.wallNs.length < target);
    while (pending().length) {
      for (const t of pending()) {
        step();
        const n = Math.min(chunk, target - t.wallNs.length);
        const times = await run(t, n);
        if (!times) continue;
        t.rotation.ran(n * batch);
        t.wallNs.push(...times.wallNs);
        t.deviceNs.push(...times.deviceNs);
      }
      chunk = fixed || Math.min(chunk * 2, quantum * Math.ceil(1024 / quantum));
      if (performance.now() - started > budgetMs && pending().length) {
        for (const t of pending()) {
          t.st.notes.push(
            `timing stopped after ${t.wallNs.length} of ${target} samples: the ${
              budgetMs / 1000
            } s time budget was spent`,
          );
        }
        break;
      }
    }
  });
  for (const t of timers.filter((t) => !faulted.has(t))) {
    const { st, kernel, rotation, wallNs, deviceNs } = t;
    if (wallNs.length !== opts.iters && wallNs.length === target) {
      st.notes.push(`${target} samples (whole rotations of the buffer sets), not ${opts.iters}`);
    }
    st.kernelTiming = { wall: summarize(wallNs), device: summarize(deviceNs), wallNs, deviceNs };
    if (!timing.every((s) => s.ref)) continue;
    for (let s = 0; s < ROTATION_SETS; s++) {
      const last = rotation.lastInput[s];
      if (last === null) continue;
      const trial = checkOutputs(
        problem,
        kernel.outputSets[s],
        kernel.inputSets[last],
        timing[last],
        "after-timing",
        s,
      );
      // The other input set must be untouched too.
      trial.inputsModified.push(
        ...modifiedInputs(kernel.inputSets[1 - last], problem, timing[1 - last]),
      );
      st.trials.push(trial);
    }
    st.verdict = judgeTrials(st.trials);
  }
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

/** Leave out edge trials whose reference is not finite where large magnitudes overflow it. */
function dropUndefinedEdges(problem: SizedProblem, edges: InputSet[]) {
  const kept: InputSet[] = [];
  const skipped: Correctness["skipped"] = [];
  for (const set of edges) {
    const nonFinite = set.ref?.some((bytes, i) =>
      decodeTensor(bytes, problem.outputs[i].dtype).some((v) => !Number.isFinite(v))
    );
    if (set.edge === "large" && nonFinite) {
      skipped.push({ edge: "large", reason: "the reference itself overflows at this magnitude" });
    } else kept.push(set);
  }
  return { kept, skipped };
}

/**
 * A --metal run can only check against cached reference outputs, which exist
 * for the seeds of an earlier paired run: it takes the last one (recorded as
 * "cached", so the run stays off the leaderboard). A paired run remembers its
 * seed for that.
 */
async function seedFor(
  ctx: BenchContext,
  cacheKey: string,
  opts: BenchOptions,
): Promise<BenchOptions> {
  if (opts.mode === "paired") {
    await ctx.referenceCache.rememberSeed(cacheKey, opts.seed);
    return opts;
  }
  if (opts.mode !== "metal" || opts.seedSource !== "random") return opts;
  const seed = await ctx.referenceCache.lastSeed(cacheKey);
  return seed === undefined ? opts : { ...opts, seed, seedSource: "cached" };
}

/** Benchmark one problem. Never throws for a kernel's fault: it is recorded. */
export async function benchmark(
  ctx: BenchContext,
  problem: Problem,
  opts: BenchOptions,
): Promise<BenchOutcome> {
  const source = opts.mode === "mlx" || !ctx.backend
    ? null
    : () => resolveKernelSource(problem, opts.variant ?? ctx.backend?.chip?.variant);
  return (await benchmarkSources(ctx, problem, source ? [source] : [], opts))[0];
}

/**
 * Benchmark several sources of one problem in one run: the same inputs,
 * references and MLX timing for all, each kernel checked by the whole
 * protocol, their timed chunks interleaved. A source is given as a function
 * so that reading it fails inside the run (recorded), not before it. With no
 * source (--mlx) there is one record, of the reference alone.
 */
export async function benchmarkSources(
  ctx: BenchContext,
  problem: Problem,
  sources: (() => KernelSource)[],
  opts: BenchOptions,
): Promise<BenchOutcome[]> {
  const sp = sized(problem, opts.size);
  const backend = opts.mode === "mlx" ? null : ctx.backend;
  const reference = opts.mode === "metal" ? null : ctx.reference;
  const states = (backend && sources.length ? sources : [null]).map(() => new RunState());
  for (const st of states) {
    for (const cls of EDGE_CLASSES) {
      const reason = sp.edgeSkips[cls] ??
        (edgeClasses(sp).length === 0 && !(cls in sp.edgeSkips) ? "no float input" : undefined);
      if (reason) st.skipped.push({ edge: cls, reason });
    }
  }
  const units: Unit[] = [];
  const step = () => ctx.signal?.throwIfAborted();
  const failAll = (status: CorrectnessStatus, kind: string, message: string) => {
    for (const st of states) st.fail(status, kind, message);
  };

  try {
    checkMemory(sp, backend, Math.max(1, sources.length));
    const referenceText = await Deno.readTextFile(problem.referencePath).catch(() => {
      throw new ReferenceProblemError(`no reference at ${problem.referencePath}`);
    });
    if (reference) await reference.load(problem.name, problem.referencePath, sp.init);
    const cacheKey = await referenceKey(referenceText, sp);
    opts = await seedFor(ctx, cacheKey, opts);
    const sets = await makeInputSets(sp, opts, ctx.workDir);

    if (reference && opts.coldStart) {
      const ms = (await reference.cold(problem.name, sets.checked[0].files)) / 1e6;
      for (const st of states) st.mlxFirstCallMs = ms;
    }

    if (backend) {
      for (const [i, source] of sources.entries()) {
        step();
        const st = states[i];
        try {
          st.source = source();
          const kernel = await prepareKernel(backend, sp, st.source);
          st.compileMs = kernel.compileMs;
          st.pipelines = [...kernel.pipelines].map(([fn, p]) => ({ function: fn, ...p.facts() }));
          units.push({ st, kernel });
        } catch (e) {
          if (e instanceof KernelSetupError) st.fail("compile-error", e.kind, e.message);
          else if (e instanceof Deno.errors.NotFound && !st.source) {
            st.fail("compile-error", "source", `no kernel source: ${(e as Error).message}`);
          } else throw e;
        }
      }
    }

    if (units.length) {
      step();
      await referenceOutputs(ctx, reference, sp, cacheKey, [
        ...new Set([...sets.checked, ...sets.timing, ...sets.edges]),
      ]);
      const edges = dropUndefinedEdges(sp, sets.edges);
      for (const st of states) st.skipped.push(...edges.skipped);
      const checked = { ...sets, edges: edges.kept };
      // A kernel that faults is recorded and leaves the others to go on.
      const faulted = async (u: Unit, fn: () => Promise<void>) => {
        try {
          await fn();
          return false;
        } catch (e) {
          if (e instanceof BridgeError && (e.status === "execution" || e.status === "timeout")) {
            u.st.fail("fault", e.status, e.message);
            return true;
          }
          throw e;
        }
      };
      const live: Unit[] = [];
      for (const u of units) {
        if (!await faulted(u, () => checkTrials(u.st, u.kernel, sp, checked, step))) live.push(u);
      }
      if (live.length) await timeKernels(ctx, live, sp, sets.timing, opts, step);
      if (opts.gputrace && units.length === 1 && units[0].st.kernelTiming) {
        const path = opts.gputrace.endsWith(".gputrace")
          ? opts.gputrace
          : join(opts.gputrace, `${problem.name}.gputrace`);
        units[0].st.gputrace = await capture(units[0].kernel, path);
      }
    }

    if (reference) {
      step();
      const r = reference;
      // As many samples as the kernels got (a time budget may have cut them short).
      const timed = states.flatMap((st) => st.kernelTiming ? [st.kernelTiming.wall.n] : []);
      const t = await ctx.withTimingLock(() =>
        r.time(problem.name, sets.checked[0].files, {
          warmup: opts.warmup,
          samples: timed.length ? Math.min(...timed) : opts.iters,
          mode: opts.clock.mode,
          batch: opts.clock.batch,
        })
      );
      const mlxTiming = {
        wall: summarize(t.samplesNs),
        wallNs: t.samplesNs,
        device: r.device,
        workerPid: r.pid,
      };
      for (const st of states) st.mlxTiming = mlxTiming;
    }
  } catch (e) {
    if (e instanceof ReferenceProblemError) {
      failAll("unchecked", "reference", e.message);
    } else if (e instanceof ResourceError) {
      failAll("unchecked", "resource", e.message);
    } else if (e instanceof BridgeError) {
      failAll("fault", e.status, e.message);
    } else {
      throw e;
    }
  } finally {
    for (const u of units) u.kernel.free();
  }

  const out: BenchOutcome[] = [];
  for (const st of states) {
    const record = await makeRecord(ctx, problem, sp, opts, st);
    describeMeasurement(record, problem, backend);
    out.push({ record, sourceText: st.source?.text ?? null });
  }
  return out;
}

async function makeRecord(
  ctx: BenchContext,
  problem: Problem,
  sp: SizedProblem,
  opts: BenchOptions,
  st: RunState,
): Promise<RunRecord> {
  const backend = opts.mode === "mlx" ? null : ctx.backend;
  const kt = st.kernelTiming;
  const devSeconds = kt ? kt.device.median / 1e9 : null;
  const gflops = devSeconds ? sp.flops / devSeconds / 1e9 : null;
  const gbps = devSeconds ? sp.bytes / devSeconds / 1e9 : null;
  const speedup = kt && st.mlxTiming ? st.mlxTiming.wall.median / kt.wall.median : null;
  const chip = backend?.chip ?? null;
  const intensity = sp.bytes > 0 ? sp.flops / sp.bytes : 0;
  const lowPrecision = sp.outputs.some((t) => t.dtype === "float16" || t.dtype === "bfloat16");
  const plausibility = kt
    ? judgePlausibility(
      [
        { label: "kernel time (device)", ns: kt.device.median },
        { label: "kernel time (wall)", ns: kt.wall.median },
      ],
      sp.bytes,
      sp.flops,
      ceilingsFor(chip, lowPrecision),
    )
    : null;
  const protocol: Protocol = {
    version: PROTOCOL_VERSION,
    seedSource: opts.seedSource,
    edgeClasses: st.edgeRun,
    rotationSets: kt ? ROTATION_SETS : 0,
    unpoisonedTrial: st.unpoisoned,
  };
  return {
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
      protocol,
    },
    source: st.source
      ? {
        path: st.source.path,
        variant: st.source.variant,
        sha256: await sha256Hex(st.source.text),
        metallib: backend?.kind === "metal" ? st.source.metallib : null,
      }
      : null,
    pipelines: st.pipelines,
    correctness: summarizeCorrectness(
      st.verdict.status,
      st.verdict.detail,
      sp,
      st.trials,
      st.skipped,
    ),
    kernelTiming: kt,
    mlxTiming: st.mlxTiming,
    coldStart: opts.coldStart
      ? { compileMs: st.compileMs, firstRunMs: st.firstRunMs, mlxFirstCallMs: st.mlxFirstCallMs }
      : null,
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
    scores: scores({ speedup, gflops, gbps, stability: kt ? stability(kt.wall) : null }),
    target: opts.target,
    gputrace: st.gputrace,
    plausibility,
    notes: st.notes,
    error: st.error,
  };
}
