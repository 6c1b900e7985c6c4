/** File-URL helpers that also accept the paths of a `deno compile`d binary. */
import { fileURLToPath } from "node:url";

export function fromFileUrl(url: URL | string): string {
  return fileURLToPath(url);
}

/** The directory of the per-user cache (compiled kernels, reference outputs). */
export function cacheHome(): string {
  const explicit = Deno.env.get("METALBENCH_CACHE");
  if (explicit) return explicit;
  const home = Deno.env.get("HOME") ?? "/tmp";
  if (Deno.build.os === "darwin") return `${home}/Library/Caches/metalbench`;
  return `${Deno.env.get("XDG_CACHE_HOME") ?? `${home}/.cache`}/metalbench`;
}
