/**
 * The PyTorch side of a weld: a KernelBench-format reference (class Model,
 * get_inputs, get_init_inputs) loaded, probed and run in the MLX worker's
 * sandbox. The ops are src/reference/torch_worker.py, run by worker.py as an
 * extension, so the untrusted reference gets exactly the sandbox an MLX
 * reference gets: writes only to scratch, reads only Python, libraries and
 * the folders named here, no network, no processes, no API keys.
 */
import { join } from "node:path";
import { z } from "zod";
import { MlxError, MlxWorker } from "../reference/client.ts";
import { torchMissing } from "../reference/python_env.ts";
import { producedBytes, readWorkerFile } from "../reference/tensor_io.ts";
import type { TensorRef } from "../reference/protocol.ts";

const Shape = z.array(z.number().int().nonnegative());

export const ArgSpec = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("tensor"), dtype: z.string(), shape: Shape }),
  z.object({ kind: z.literal("value"), value: z.unknown() }),
]);
export type ArgSpec = z.infer<typeof ArgSpec>;

/** What stage 0 learns from loading the reference and running it once. */
export const TorchFacts = z.object({
  /** get_init_inputs(), as JSON (other values as their repr). */
  init: z.array(z.unknown()),
  /** Parameters and buffers of the model, in named_parameters() then named_buffers() order. */
  params: z.array(z.object({ name: z.string(), dtype: z.string(), shape: Shape })),
  doc: z.string(),
  /** get_inputs(), one spec per forward argument. */
  inputs: z.array(ArgSpec),
  outputs: z.array(z.object({ dtype: z.string(), shape: Shape })),
});
export type TorchFacts = z.infer<typeof TorchFacts>;

export const Probe = z.object({
  constant: z.boolean(),
  /** Indices of forward arguments the output does not depend on. */
  independent: z.array(z.number().int()),
  nonfinite: z.boolean(),
});
export type Probe = z.infer<typeof Probe>;

const Ran = z.object({ outputs: z.array(z.object({ dtype: z.string(), shape: Shape })) });

/** A forward argument of torch_run: a tensor file (with the dtype torch wants), or a value. */
export type TorchArg = (TensorRef & { torchDtype?: string }) | { value: unknown };

async function workerSource(): Promise<string> {
  const url = new URL("../reference/torch_worker.py", import.meta.url);
  if (url.protocol === "file:") return await Deno.readTextFile(url);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot fetch the PyTorch worker script ${url}: ${res.status}`);
  return await res.text();
}

export class TorchReference {
  #runs = 0;
  private constructor(private worker: MlxWorker, readonly id: string) {}

  /** A fresh sandboxed worker that may read `readable` (the reference's folder, the inputs). */
  static async start(readable: string[], timeoutMs: number): Promise<TorchReference> {
    const worker = await MlxWorker.start({
      extensions: [await workerSource()],
      readable,
      timeoutMs,
      startTimeoutMs: Math.max(60_000, timeoutMs),
    });
    return new TorchReference(worker, "torch");
  }

  /** Load the reference, seeded, and run get_inputs() once: the facts stage 0 records. */
  load(path: string, seed: number): Promise<TorchFacts> {
    return this.#ask("torch_load", { problem: this.id, path, seed }, TorchFacts);
  }

  /** Degeneracy: the output over `seeds`, and with each input redrawn alone. */
  probe(seeds: number[]): Promise<Probe> {
    return this.#ask("torch_probe", { problem: this.id, seeds }, Probe);
  }

  /**
   * Run on `args` with `params` set from files; output i is copied to
   * outPaths[i]. Returns each output's dtype as written (float32 or int32) and shape.
   */
  async run(
    args: TorchArg[],
    params: Record<string, TensorRef>,
    outPaths: string[],
  ): Promise<{ dtype: string; shape: number[] }[]> {
    const n = ++this.#runs;
    const inScratch = outPaths.map((_, i) => join(this.worker.scratch, "out", `t${n}_${i}.bin`));
    const ran = await this.#ask("torch_run", {
      problem: this.id,
      args,
      params,
      outputs: inScratch.map((path) => ({ path })),
    }, Ran);
    for (const [i, got] of ran.outputs.entries()) {
      const bytes = await readWorkerFile(inScratch[i], producedBytes(got.dtype, got.shape));
      await Deno.remove(inScratch[i]).catch(() => {});
      await Deno.writeFile(outPaths[i], bytes);
    }
    return ran.outputs;
  }

  async #ask<T>(op: string, body: Record<string, unknown>, schema: z.ZodType<T>): Promise<T> {
    try {
      return await this.worker.ask(op, body, schema);
    } catch (e) {
      if (e instanceof MlxError && e.kind === "setup") {
        throw torchMissing(this.worker.python, e.message.replace(/^.*?cannot be imported /, ""));
      }
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.worker.close({ now: true });
  }
}
