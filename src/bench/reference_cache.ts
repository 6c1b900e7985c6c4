/**
 * Reference outputs are a pure function of (reference source, problem at
 * its size, input set), so the last paired run's are cached on disk: a
 * `--metal` run then checks correctness without starting Python, using that
 * run's seed. Layout: <dir>/<problem key>/<input set>/<output>.bin, plus
 * <problem key>/last-seed. Only the last seed's outputs are kept, so the
 * cache does not grow with every run (seeds are fresh each time).
 *
 * A cache can always be rebuilt, so writes are rename-atomic but not synced;
 * a read checks each file's size, so a file cut short by a crash is a miss.
 */
import { join } from "node:path";
import type { SizedProblem } from "../registry/problem.ts";
import { sha256Hex } from "../util/hash.ts";

/** The key of a problem's cache folder: its reference source and its shapes. */
export async function referenceKey(
  referenceSource: string,
  problem: SizedProblem,
): Promise<string> {
  const shape = {
    sizes: problem.sizes,
    init: problem.init,
    inputs: problem.inputs.map((t) => [t.name, t.shape, t.dtype, t.init]),
    outputs: problem.outputs.map((t) => [t.name, t.shape, t.dtype]),
  };
  return await sha256Hex(JSON.stringify([referenceSource, shape]));
}

/** An input set's folder name: its seed, and its edge class when it has one ("12-large"). */
export const inputSetTag = (seed: number, edge?: string) => edge ? `${seed}-${edge}` : `${seed}`;

async function writeUnsynced(path: string, bytes: Uint8Array) {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeFile(tmp, bytes);
  await Deno.rename(tmp, path);
}

export class ReferenceCache {
  constructor(readonly dir: string) {}

  /** The cached outputs in order, or undefined when any is missing or cut short. */
  async get(
    key: string,
    tag: string,
    outputs: { name: string; bytes: number }[],
  ): Promise<Uint8Array<ArrayBuffer>[] | undefined> {
    try {
      const got = await Promise.all(
        outputs.map((o) => Deno.readFile(join(this.dir, key, tag, `${o.name}.bin`))),
      );
      return got.every((b, i) => b.length === outputs[i].bytes) ? got : undefined;
    } catch {
      return undefined;
    }
  }

  async put(key: string, tag: string, outputs: { name: string; bytes: Uint8Array }[]) {
    const dir = join(this.dir, key, tag);
    await Deno.mkdir(dir, { recursive: true });
    for (const o of outputs) await writeUnsynced(join(dir, `${o.name}.bin`), o.bytes);
  }

  /** The seed of the last paired run of this problem, whose outputs are cached. */
  async lastSeed(key: string): Promise<number | undefined> {
    const text = await Deno.readTextFile(join(this.dir, key, "last-seed")).catch(() => "");
    const seed = Number.parseInt(text, 10);
    return Number.isSafeInteger(seed) ? seed : undefined;
  }

  /** A paired run with `seed` begins: forget the outputs of other seeds. */
  async rememberSeed(key: string, seed: number): Promise<void> {
    const dir = join(this.dir, key);
    await Deno.mkdir(dir, { recursive: true });
    for await (const e of Deno.readDir(dir)) {
      const keep = e.name === "last-seed" || e.name === `${seed}` || e.name.startsWith(`${seed}-`);
      // Another run of the same reference (another process, or --parallel) may remove it first.
      if (e.isDirectory && !keep) {
        await Deno.remove(join(dir, e.name), { recursive: true }).catch((err) => {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
        });
      }
    }
    await writeUnsynced(join(dir, "last-seed"), new TextEncoder().encode(`${seed}`));
  }
}
