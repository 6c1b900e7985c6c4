/**
 * The benchmark's reference side over the MLX worker: problem-level
 * failures (a model that raises, a file that does not load) become
 * ReferenceProblemError so the run records them and goes on; a dead worker
 * stays a WorkerError and ends the session.
 */
import { MlxError, MlxWorker } from "../reference/client.ts";
import {
  ReferenceProblemError,
  type ReferenceSide,
  type TensorFile,
  type TimeOptions,
} from "./reference_side.ts";

async function problemLevel<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof MlxError) {
      // The worker's messages already name the problem and the operation.
      throw new ReferenceProblemError(e.message);
    }
    throw e;
  }
}

export class MlxReference implements ReferenceSide {
  private constructor(readonly worker: MlxWorker) {}

  static async start(): Promise<MlxReference> {
    return new MlxReference(await MlxWorker.start());
  }

  get device(): string {
    const h = this.worker.hello;
    return `MLX ${h.mlx} (${h.device})`;
  }

  get pid(): number {
    return this.worker.hello.pid;
  }

  async load(problem: string, path: string, init: Record<string, number | string | boolean>) {
    await problemLevel(() => this.worker.load(problem, path, init));
  }

  run(problem: string, inputs: TensorFile[], outputs: (TensorFile & { name: string })[]) {
    return problemLevel(() => this.worker.run(problem, inputs, outputs));
  }

  async time(problem: string, inputs: TensorFile[], opts: TimeOptions) {
    const t = await problemLevel(
      () =>
        this.worker.time(
          problem,
          inputs,
          opts.mode === "batched"
            ? { mode: "batched", batch: opts.batch, warmup: opts.warmup, samples: opts.samples }
            : { mode: "per-launch", warmup: opts.warmup, samples: opts.samples },
        ),
    );
    return { samplesNs: t.samplesNs };
  }

  async cold(problem: string, inputs: TensorFile[]) {
    return (await problemLevel(() => this.worker.cold(problem, inputs)))
      .ns;
  }

  /** Stop the worker; `now` kills it without waiting (Ctrl-C). */
  close(now = false) {
    return this.worker.close({ now });
  }
}
