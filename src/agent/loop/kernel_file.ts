/**
 * The kernel file is the user's: it only ever holds the source it had or a
 * verified, kept candidate. A kept source replaces it atomically (a temp
 * file in the same folder, flushed, then renamed over it, keeping its mode),
 * so a crash at any moment leaves the old file or the new one, never a mix.
 *
 * Order of a keep: the kept entry is appended to the AttemptDB first, then
 * the file is replaced. A kill between the two leaves the file one kept
 * step behind the lineage; `reconcile` finishes that step on --resume.
 */
import { basename, dirname, join } from "node:path";
import type { AttemptEntry } from "../attempts/schema.ts";
import { atomicWriteBytes } from "../../store/files.ts";

export async function replaceKernelFile(given: string, text: string): Promise<void> {
  // Through a symlink to the file it points at: the link stays a link.
  const path = await Deno.realPath(given).catch(() => given);
  const mode = (await Deno.stat(path).catch(() => null))?.mode ?? 0o644;
  await atomicWriteBytes(path, new TextEncoder().encode(text), {
    mode: mode & 0o777,
    syncFolder: true,
  });
}

export type Reconciled =
  | { kind: "matches" }
  /** The file held the previous kept source: the last keep was cut short; it is now finished. */
  | { kind: "finished-keep"; entry: AttemptEntry }
  | { kind: "differs" };

/**
 * Does the kernel file hold what the lineage says it should (its latest
 * kept or baseline source)? If it holds the one before, the last keep was
 * interrupted between its AttemptDB line and the rename: finish it.
 */
export async function reconcile(path: string, entries: AttemptEntry[]): Promise<Reconciled> {
  const text = await Deno.readTextFile(path);
  const held = entries.filter((e) => e.verdict === "kept" || e.verdict === "baseline");
  const current = held.at(-1);
  if (!current || current.source === text) return { kind: "matches" };
  const previous = held.at(-2);
  if (current.verdict === "kept" && previous?.source === text) {
    await replaceKernelFile(path, current.source);
    return { kind: "finished-keep", entry: current };
  }
  return { kind: "differs" };
}

/** Leftover temp files of a keep cut short by a crash (they never replaced anything). */
export async function removeStaleTemps(given: string): Promise<void> {
  const path = await Deno.realPath(given).catch(() => given);
  const prefix = `.${basename(path)}.`;
  for await (const e of Deno.readDir(dirname(path))) {
    if (e.isFile && e.name.startsWith(prefix) && e.name.endsWith(".tmp")) {
      await Deno.remove(join(dirname(path), e.name)).catch(() => {});
    }
  }
}
