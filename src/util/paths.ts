/** File-URL helpers that also accept the paths of a `deno compile`d binary. */
import { fileURLToPath } from "node:url";

export function fromFileUrl(url: URL | string): string {
  return fileURLToPath(url);
}

type Env = Record<string, string | undefined>;

/**
 * The per-user data folder: the managed Python environment, and the results
 * of runs of the built-in suite. METALBENCH_HOME, else the platform's place.
 */
export function dataHome(env: Env = Deno.env.toObject(), os = Deno.build.os): string {
  if (env.METALBENCH_HOME) return env.METALBENCH_HOME;
  const home = env.HOME ?? "";
  if (os === "darwin") return `${home}/Library/Application Support/metalbench`;
  return `${env.XDG_DATA_HOME || `${home}/.local/share`}/metalbench`;
}

/** The directory of the per-user cache (compiled kernels, reference outputs). */
export function cacheHome(): string {
  const explicit = Deno.env.get("METALBENCH_CACHE");
  if (explicit) return explicit;
  const home = Deno.env.get("HOME") ?? "/tmp";
  if (Deno.build.os === "darwin") return `${home}/Library/Caches/metalbench`;
  return `${Deno.env.get("XDG_CACHE_HOME") ?? `${home}/.cache`}/metalbench`;
}
