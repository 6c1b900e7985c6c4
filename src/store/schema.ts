/**
 * File formats the program writes: one run's result (results/<bucket>/
 * <name>.json keeps every run; `--json` prints the same records) and the
 * session.json leaderboard. Both are read back through these schemas, so a
 * hand-edited or corrupt file is refused rather than silently rewritten.
 */
import { z } from "zod";

export const SCHEMA_VERSION = 1;

export const Summary = z.object({
  n: z.number(),
  min: z.number(),
  median: z.number(),
  mean: z.number(),
  p10: z.number(),
  p90: z.number(),
  max: z.number(),
  stddev: z.number(),
});

export const Comparison = z.object({
  elements: z.number(),
  within: z.number(),
  nonFiniteMismatches: z.number(),
  maxAbsError: z.number(),
  maxRelError: z.number(),
  firstFailure: z.number(),
  /** JSON has no NaN or Infinity: those values are the strings "NaN", "Infinity", "-Infinity". */
  firstFailureValues: z.object({
    kernel: z.union([z.number(), z.enum(["NaN", "Infinity", "-Infinity"])]),
    reference: z.union([z.number(), z.enum(["NaN", "Infinity", "-Infinity"])]),
    /** The most the element could have been off by. */
    bound: z.number().optional(),
  }).optional(),
  /** The output's scale in the bound (its RMS, or the problem's scale expression). */
  scale: z.number().optional(),
  /** The absolute part of the bound: stol*scale + atol; each element adds rtol*|r|. */
  absTol: z.number().optional(),
  /** Largest |k - r| / bound over finite elements (above 1 fails). */
  maxErrorRatio: z.number().optional(),
});

export const CorrectnessStatus = z.enum([
  "correct",
  "incorrect",
  "fault",
  "compile-error",
  "unchecked",
]);
export type CorrectnessStatus = z.infer<typeof CorrectnessStatus>;

export const Trial = z.object({
  seed: z.number(),
  /**
   * "trial": fresh inputs, NaN-poisoned outputs; "edge": the same with
   * edge-value inputs (`edge` names the class); "unpoisoned": fresh inputs
   * into outputs that still hold the previous trial's answer;
   * "after-timing": each rotated output set as the timed launches left it.
   */
  phase: z.enum(["trial", "edge", "unpoisoned", "after-timing"]),
  edge: z.string().optional(),
  /** after-timing: which rotation output set was checked. */
  outputSet: z.number().optional(),
  outputs: z.array(z.object({ name: z.string(), comparison: Comparison })),
  /** Names of inputs the kernel modified. */
  inputsModified: z.array(z.string()),
  /** Names of outputs whose padding past the last element the kernel wrote. */
  paddingModified: z.array(z.string()).default([]),
});

export const Correctness = z.object({
  status: CorrectnessStatus,
  /** One line: why the status is what it is. */
  detail: z.string(),
  /** |k - r| <= rtol*|r| + stol*scale + atol; scale: the output's RMS unless an expression is given. */
  tolerance: z.object({
    rtol: z.number(),
    atol: z.number(),
    stol: z.number().optional(),
    scale: z.string().optional(),
  }),
  trials: z.array(Trial),
  maxAbsError: z.number(),
  maxRelError: z.number(),
  /** Smallest share of elements within tolerance over all trials and outputs. */
  withinFraction: z.number(),
  /** Edge classes not run, and why. */
  skipped: z.array(z.object({ edge: z.string(), reason: z.string() })).default([]),
});
export type Correctness = z.infer<typeof Correctness>;

export const Clock = z.object({
  mode: z.enum(["batched", "per-launch"]),
  /** Launches per synchronisation (1 for per-launch). */
  batch: z.number(),
  description: z.string(),
});
export type Clock = z.infer<typeof Clock>;

export const KernelTiming = z.object({
  /** Host wall clock per launch, as the clock says: the like-for-like figure. */
  wall: Summary,
  /** The device's own time per launch (GPU timestamps; CPU time on the simulator). */
  device: Summary,
  wallNs: z.array(z.number()),
  deviceNs: z.array(z.number()),
  /**
   * What `device` measures (DeviceTimeKind): gpu-pass-timestamps (GPU time
   * inside the launch's compute passes), gpu-command-buffer (the command
   * buffer's GPU span), runner-cpu-time (the simulator's CPU time). Absent in
   * older records.
   */
  deviceTime: z.string().optional(),
});

export const MlxTiming = z.object({
  wall: Summary,
  wallNs: z.array(z.number()),
  device: z.string(),
  /** The worker process: a --all run starts one for every problem. */
  workerPid: z.number(),
});

export const ColdStart = z.object({
  compileMs: z.number().nullable(),
  firstRunMs: z.number().nullable(),
  mlxFirstCallMs: z.number().nullable(),
});

export const Scores = z.object({
  speed: z.number().nullable(),
  compute: z.number().nullable(),
  memory: z.number().nullable(),
  stable: z.number().nullable(),
  balanced: z.number().nullable(),
});
export type Scores = z.infer<typeof Scores>;

export const TARGETS = ["speed", "compute", "memory", "stable", "balanced"] as const;
export const Target = z.enum(TARGETS);
export type Target = z.infer<typeof Target>;

export const PipelineInfo = z.object({
  function: z.string(),
  maxTotalThreadsPerThreadgroup: z.number(),
  threadExecutionWidth: z.number(),
  staticThreadgroupMemoryLength: z.number(),
});

/**
 * How a run checked and timed the kernel. Version 1 had fixed public seeds,
 * no edge trials and no rotating buffers; only runs with the default
 * protocol or a stricter one enter session.json.
 */
export const Protocol = z.object({
  version: z.number(),
  /** "random": drawn for this run; "user": --seed (reproducible, and known in advance). */
  seedSource: z.enum(["random", "user", "cached"]),
  edgeClasses: z.array(z.string()),
  rotationSets: z.number(),
  unpoisonedTrial: z.boolean(),
});
export type Protocol = z.infer<typeof Protocol>;

export const Settings = z.object({
  size: z.enum(["bench", "test", "large"]),
  seed: z.number(),
  trials: z.number(),
  warmup: z.number(),
  iters: z.number(),
  clock: Clock,
  /** Absent in records of protocol version 1. */
  protocol: Protocol.optional(),
  /** The kernel was compiled with fast math (absent: off, as MLX). */
  fastMath: z.boolean().optional(),
});
export type Settings = z.infer<typeof Settings>;

export const RunRecord = z.object({
  version: z.literal(SCHEMA_VERSION),
  id: z.string(),
  kernel: z.string(),
  set: z.string(),
  timestamp: z.string(),
  metalbench: z.string(),
  mode: z.enum(["paired", "metal", "mlx"]),
  backend: z.enum(["metal", "sim"]),
  bucket: z.string(),
  device: z.object({
    name: z.string(),
    timer: z.string(),
    gpuCores: z.number(),
    chip: z.string().nullable(),
    /** Metal layers on while timing (capture, api-validation, shader-validation): slower. */
    layers: z.array(z.string()).optional(),
  }),
  sizes: z.record(z.string(), z.number()),
  settings: Settings,
  source: z.object({
    path: z.string(),
    variant: z.string(),
    sha256: z.string(),
    /** The offline library that ran instead of compiling the source, if any. */
    metallib: z.string().nullable(),
  }).nullable(),
  pipelines: z.array(PipelineInfo),
  correctness: Correctness,
  kernelTiming: KernelTiming.nullable(),
  mlxTiming: MlxTiming.nullable(),
  coldStart: ColdStart.nullable(),
  metrics: z.object({
    speedup: z.number().nullable(),
    gflops: z.number().nullable(),
    gbps: z.number().nullable(),
    arithmeticIntensity: z.number(),
    flops: z.number(),
    bytes: z.number(),
    peakBandwidthPct: z.number().nullable(),
    peakComputePct: z.number().nullable(),
    roofline: z.enum(["memory-bound", "compute-bound"]).nullable(),
  }),
  scores: Scores,
  target: Target,
  /** --gputracer: the .gputrace of one run of the kernel (Metal only). */
  gputrace: z.object({ path: z.string(), written: z.boolean(), detail: z.string() }).nullable(),
  /** Times against the device's physical limits (roofline floor); null when not timed. */
  plausibility: z.object({ plausible: z.boolean(), detail: z.string() }).nullable().default(null),
  /** Notes on how the run went: a time budget that cut sampling short, … */
  notes: z.array(z.string()).default([]),
  error: z.object({ kind: z.string(), message: z.string() }).nullable(),
});
export type RunRecord = z.infer<typeof RunRecord>;

export const ResultsFile = z.object({
  version: z.literal(SCHEMA_VERSION),
  kernel: z.string(),
  bucket: z.string(),
  runs: z.array(RunRecord),
});
export type ResultsFile = z.infer<typeof ResultsFile>;

export const SessionEntry = z.object({
  kernel: z.string(),
  set: z.string(),
  runId: z.string(),
  timestamp: z.string(),
  backend: z.enum(["metal", "sim"]),
  device: z.string(),
  /** Runs are compared only when their settings key is equal. */
  settingsKey: z.string(),
  settings: Settings,
  variant: z.string(),
  sourcePath: z.string(),
  /** The whole Metal source, so the record is reproducible from this file alone. */
  source: z.string(),
  sourceSha256: z.string(),
  kernelMedianMs: z.number(),
  mlxMedianMs: z.number().nullable(),
  speedup: z.number().nullable(),
  gflops: z.number().nullable(),
  gbps: z.number().nullable(),
  scores: Scores,
});
export type SessionEntry = z.infer<typeof SessionEntry>;

export const Session = z.object({
  version: z.literal(SCHEMA_VERSION),
  buckets: z.record(z.string(), z.record(z.string(), SessionEntry)),
});
export type Session = z.infer<typeof Session>;
