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

/** A problem-level failure of the reference (load error, model raised): the run goes on. */
export class ReferenceProblemError extends Error {
  override name = "ReferenceProblemError";
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
  /** Every sample's wall time per call, ns. */
  time(problem: string, inputs: TensorFile[], opts: TimeOptions): Promise<{ samplesNs: number[] }>;
  /** First call + eval after load, ns. */
  cold(problem: string, inputs: TensorFile[]): Promise<number>;
}
