/**
 * What the benchmark needs of the MLX reference. The MLX worker client
 * provides it (src/reference/); keeping the port here lets the benchmark
 * run with no Python at all on a `--metal` run.
 */
import type { Dtype } from "../registry/schema.ts";

export interface TensorFile {
  path: string;
  dtype: Dtype;
  shape: number[];
}

export interface TimeOptions {
  warmup: number;
  samples: number;
  mode: "batched" | "per-launch";
  batch: number;
}

/**
 * How a reference failed: it raised or returned wrong outputs ("raised"),
 * did not return within the time limit ("hung"), or took its worker down
 * ("crashed": a segfault, os._exit, killed).
 */
export type ReferenceFailure = "raised" | "hung" | "crashed";

/**
 * A failure of the reference, never of the kernel. The message is one line
 * naming the reference file, what happened and the fix. The run records it
 * (error kind "reference") and goes on with the next problem, which gets a
 * fresh worker when this one died; the CLI then exits with code 5.
 */
export class ReferenceProblemError extends Error {
  override name = "ReferenceProblemError";
  constructor(message: string, readonly how: ReferenceFailure = "raised", readonly file = "") {
    super(message);
  }
}

export interface ReferenceSide {
  /** "MLX 0.32.4 (cpu)" */
  readonly device: string;
  /** The worker's process id (one worker serves a whole session). */
  readonly pid: number;
  load(
    problem: string,
    path: string,
    init: Record<string, number | string | boolean>,
  ): Promise<void>;
  /**
   * Run once, writing each output to its path. An output whose dtype or
   * shape differs from its spec is a ReferenceProblemError.
   */
  run(
    problem: string,
    inputs: TensorFile[],
    outputs: (TensorFile & { name: string })[],
  ): Promise<unknown>;
  /** Several runs in one request, each as `run` does. */
  runs(
    problem: string,
    sets: { inputs: TensorFile[]; outputs: (TensorFile & { name: string })[] }[],
  ): Promise<unknown>;
  /** Start what the next problem needs (a fresh worker) between problems; optional. */
  prewarm?(): void;
  /** Every sample's wall time per call, ns. */
  time(problem: string, inputs: TensorFile[], opts: TimeOptions): Promise<{ samplesNs: number[] }>;
  /** First call + eval after load, ns. */
  cold(problem: string, inputs: TensorFile[]): Promise<number>;
}
