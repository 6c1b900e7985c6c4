/**
 * The MLX worker protocol (version 2), as zod schemas: what client.ts sends
 * to worker.py and what it accepts back. worker.py's docstring describes the
 * same protocol; keep the two in step.
 *
 * JSON lines over the worker's stdin/stdout, one request → one response,
 * matched by `id`, handled one at a time:
 *
 *   request:  {"id": 7, "op": "<op>", ...fields}
 *   success:  {"id": 7, "ok": true, ...result}
 *   failure:  {"id": 7, "ok": false, "kind", "error": "<one line>", "traceback", "file"}
 *
 * Tensors are never in JSON: they are raw files (little-endian, C order, no
 * header; bfloat16 as raw 16-bit patterns) named by {path, dtype, shape}.
 *
 *   hello     {}                                     → Hello (with the sandbox in force)
 *   load      {problem, path, init?, seed?}          → Loaded
 *   unload    {problem}                              → {}
 *   run       {problem, inputs, outputs: [{path}]}   → {outputs: [{dtype, shape}]}
 *   runs      {problem, runs: [{inputs, outputs}]}   → {runs: [{outputs}]} (several runs, one request)
 *   time      {problem, inputs, warmup, samples, mode, batch?} → Timing
 *   cold      {problem, inputs}                      → Cold
 *   integrity {nonce}                                → Integrity (may it serve another problem?)
 *   shutdown  {}                                     → {} (then the worker exits)
 *
 * `time`, batched: a sample is `batch` calls then one mx.eval of all their
 * outputs, divided by `batch` (K launches in flight, like K dispatches per
 * command buffer on the Metal side). per-launch: a sample is one call then its
 * own mx.eval. `warmup` samples run first, like timed ones, and are dropped.
 * Before either, the model is called once untimed to check that it runs.
 * `cold` times the first call + eval of a freshly loaded problem.
 * The worker survives every failure; its stdout carries nothing but responses
 * (a model's print() goes to stderr).
 */
import { z } from "zod";
import { Dtype } from "../registry/schema.ts";

export const PROTOCOL_VERSION = 2;

/** A tensor file as the worker reads it. */
export const TensorRef = z.object({
  path: z.string(),
  dtype: Dtype,
  shape: z.array(z.number().int().nonnegative()),
});
export type TensorRef = z.infer<typeof TensorRef>;

export const FAILURE_KINDS = [
  "protocol",
  "setup",
  "load",
  "input",
  "model",
  "output",
  "state",
  "internal",
] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

export const Envelope = z.object({
  id: z.number().int().nullable(),
  ok: z.boolean(),
});

export const Failure = z.object({
  id: z.number().int().nullable(),
  ok: z.literal(false),
  kind: z.enum(FAILURE_KINDS),
  error: z.string(),
  traceback: z.string().default(""),
  file: z.string().default(""),
});
export type Failure = z.infer<typeof Failure>;

export const Clock = z.object({
  name: z.string(),
  implementation: z.string(),
  resolutionNs: z.number().nonnegative(),
  monotonic: z.boolean(),
});
export type Clock = z.infer<typeof Clock>;

/** The protections the worker applied to itself before any reference code ran. */
export const Sandbox = z.object({
  /** Landlock ABI in force; 0: none. */
  landlock: z.number().int().nonnegative(),
  /** Writes only under the worker's scratch folder. */
  writes: z.boolean(),
  /** Reads only Python, system libraries, the folders the client named, scratch. */
  reads: z.boolean(),
  /** The layers that cut the network: "namespace", "landlock-tcp", "no-sockets". */
  network: z.array(z.string()),
  /** No new processes or programs (seccomp). */
  processes: z.boolean(),
  /** Signals only to itself: "landlock", "seccomp", or "" (not limited). */
  signals: z.string(),
  /** Why a layer is missing. */
  notes: z.array(z.string()),
});
export type Sandbox = z.infer<typeof Sandbox>;

export const Hello = z.object({
  protocol: z.number().int(),
  python: z.string(),
  executable: z.string(),
  mlx: z.string(),
  numpy: z.string(),
  device: z.enum(["cpu", "gpu"]),
  metal: z.boolean(),
  platform: z.string(),
  sandbox: Sandbox,
  machine: z.string(),
  pid: z.number().int().positive(),
  clock: Clock,
});
export type Hello = z.infer<typeof Hello>;

export const Loaded = z.object({
  problem: z.string(),
  entry: z.enum(["__call__", "forward"]),
  module: z.string(),
  loadNs: z.number().nonnegative(),
});
export type Loaded = z.infer<typeof Loaded>;

/** An output as the model produced it: any MLX dtype name ("float32", "int64", "bool", …). */
export const ProducedTensor = z.object({
  dtype: z.string(),
  shape: z.array(z.number().int().nonnegative()),
});
export type ProducedTensor = z.infer<typeof ProducedTensor>;

export const Ran = z.object({ outputs: z.array(ProducedTensor) });

export const TIMING_MODES = ["batched", "per-launch"] as const;
export type TimingMode = (typeof TIMING_MODES)[number];

export const Timing = z.object({
  mode: z.enum(TIMING_MODES),
  batch: z.number().int().positive(),
  warmup: z.number().int().nonnegative(),
  /** Wall time per call of each timed sample, in nanoseconds, in the order taken. */
  samplesNs: z.array(z.number().nonnegative()),
  clock: Clock,
});
export type Timing = z.infer<typeof Timing>;

export const Cold = z.object({
  ns: z.number().positive(),
  /** No model had been called in this worker before: MLX's caches were empty too. */
  processCold: z.boolean(),
});
export type Cold = z.infer<typeof Cold>;

/**
 * Whether the references run so far left traces in the worker (rebound MLX
 * or clock attributes, threads, hooks, native code). The worker also writes
 * `metalbench-worker-sync: <nonce>` to stderr, after any trace line.
 */
export const Integrity = z.object({ clean: z.boolean(), why: z.array(z.string()) });
export type Integrity = z.infer<typeof Integrity>;

export const Runs = z.object({ runs: z.array(Ran) });

export const Empty = z.object({});
