/**
 * Reference outputs are a pure function of (reference source, problem at
 * its size, seed), so they are cached on disk: a `--metal` run then checks
 * correctness without starting Python, when an earlier paired run left the
 * answer here.
 */
import { join } from "node:path";
import { atomicWriteBytes } from "../store/files.ts";
import type { SizedProblem } from "../registry/problem.ts";
import { sha256Hex } from "../util/hash.ts";

export async function referenceKey(
  referenceSource: string,
  problem: SizedProblem,
  /** The trial's seed, with its edge class when it has one ("12:large"). */
  seed: number | string,
): Promise<string> {
  const shape = {
    sizes: problem.sizes,
    init: problem.init,
    inputs: problem.inputs.map((t) => [t.name, t.shape, t.dtype, t.init]),
    outputs: problem.outputs.map((t) => [t.name, t.shape, t.dtype]),
  };
  return await sha256Hex(JSON.stringify([referenceSource, shape, seed]));
}

export class ReferenceCache {
  constructor(readonly dir: string) {}

  #path(key: string, output: string) {
    return join(this.dir, key.slice(0, 2), key, `${output}.bin`);
  }

  /** The cached outputs in order, or undefined when any is missing. */
  async get(key: string, outputs: string[]): Promise<Uint8Array<ArrayBuffer>[] | undefined> {
    try {
      return await Promise.all(outputs.map((o) => Deno.readFile(this.#path(key, o))));
    } catch {
      return undefined;
    }
  }

  async put(key: string, outputs: { name: string; bytes: Uint8Array }[]): Promise<void> {
    for (const o of outputs) await atomicWriteBytes(this.#path(key, o.name), o.bytes);
  }

  /**
   * The seed of the last run that cached outputs for this problem (key from
   * referenceKey with seed "seeds"), so a --metal run can check against them.
   */
  async lastSeed(problemKey: string): Promise<number | undefined> {
    const text = await Deno.readTextFile(this.#path(problemKey, "last-seed")).catch(() => "");
    const seed = Number.parseInt(text, 10);
    return Number.isSafeInteger(seed) ? seed : undefined;
  }

  async rememberSeed(problemKey: string, seed: number): Promise<void> {
    await atomicWriteBytes(
      this.#path(problemKey, "last-seed"),
      new TextEncoder().encode(`${seed}`),
    );
  }
}
