/**
 * The native files a backend needs at run time — the bridge library, and
 * for the simulator its runner executable and the metal_stdlib shim — are
 * copied from where the program keeps them (the source tree, or the files
 * embedded in a `deno compile`d binary) into a folder of the user cache
 * named by their content hash. Both ways of running take this one path, so
 * `deno run` tests exactly what the binary does; a copy is made once per
 * version and reused after.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { sha256Hex } from "../util/hash.ts";
import { cacheHome } from "../util/paths.ts";
import type { BackendKind } from "./select.ts";

export interface BridgeFiles {
  library: string;
  /** Simulator only: the runner executable and the folder holding metal_stdlib. */
  runner?: string;
  shimDir?: string;
}

/** Paths relative to the repository root, as `deno compile --include` embeds them. */
export const BRIDGE_ASSETS = {
  metal: { library: "ffi/build/libmetal_bridge.dylib" },
  sim: {
    library: "ffi/build/libsim_bridge.so",
    runner: "ffi/build/mb_sim_runner",
    shimDir: "ffi/sim/include",
  },
} as const;

const ROOT = new URL("../../", import.meta.url);

/** Where the program keeps a file: the source tree, or the binary's embedded files. */
export function assetPath(relative: string): string {
  return decodeURIComponent(new URL(relative, ROOT).pathname);
}

async function listFiles(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.isFile) names.push(e.name);
  return names.sort();
}

interface Item {
  /** Path under the materialized folder. */
  to: string;
  bytes: Uint8Array<ArrayBuffer>;
  executable: boolean;
}

async function collect(kind: BackendKind): Promise<Item[]> {
  const spec = BRIDGE_ASSETS[kind];
  const items: Item[] = [];
  const add = async (rel: string, to: string, executable = false) =>
    items.push({ to, bytes: await Deno.readFile(assetPath(rel)), executable });
  await add(spec.library, "lib/" + spec.library.split("/").pop());
  if ("runner" in spec) {
    await add(spec.runner, "bin/mb_sim_runner", true);
    for (const name of await listFiles(assetPath(spec.shimDir))) {
      await add(`${spec.shimDir}/${name}`, `include/${name}`);
    }
  }
  return items;
}

/** Is the bridge of `kind` present where the program keeps it? */
export function bridgeAvailable(kind: BackendKind): boolean {
  return existsSync(assetPath(BRIDGE_ASSETS[kind].library));
}

/**
 * Copy the bridge of `kind` (with its runner and shim) into
 * <cache>/runtime/<kind>-<hash>/ and return the paths there.
 */
export async function materializeBridge(
  kind: BackendKind,
  cacheDir = join(cacheHome(), "runtime"),
): Promise<BridgeFiles> {
  const items = await collect(kind);
  const parts = items.map((i) => `${i.to}\0${i.executable}\0`).join("") +
    (await Promise.all(items.map((i) => sha256Hex(i.bytes)))).join("");
  const dir = join(cacheDir, `${kind}-${(await sha256Hex(parts)).slice(0, 16)}`);
  if (!existsSync(dir)) {
    // Fill a private folder, then rename it into place: a concurrent run
    // either sees the whole folder or none of it.
    await Deno.mkdir(cacheDir, { recursive: true });
    const tmp = await Deno.makeTempDir({ dir: cacheDir, prefix: ".partial-" });
    for (const item of items) {
      const path = join(tmp, item.to);
      await Deno.mkdir(join(path, ".."), { recursive: true });
      await Deno.writeFile(path, item.bytes, { mode: item.executable ? 0o755 : 0o644 });
    }
    try {
      await Deno.rename(tmp, dir);
    } catch (e) {
      await Deno.remove(tmp, { recursive: true });
      if (!existsSync(dir)) throw e; // another process won the race: use its copy
    }
  }
  const spec = BRIDGE_ASSETS[kind];
  const files: BridgeFiles = { library: join(dir, "lib", spec.library.split("/").pop()!) };
  if ("runner" in spec) {
    files.runner = join(dir, "bin", "mb_sim_runner");
    files.shimDir = join(dir, "include");
  }
  return files;
}
