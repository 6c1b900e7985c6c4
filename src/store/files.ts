/**
 * Nothing is lost: files are replaced atomically (write a sibling temp file,
 * fsync, rename) and read-modify-write cycles run under an exclusive lock
 * on a sidecar `.<file>.lock` (the data file itself is replaced by rename, so
 * it cannot carry the lock). Locks are Deno.FsFile.lock: advisory, held
 * between processes, released when the holder exits, even by a crash.
 * The sidecar is hidden (.name.lock) and never deleted (deleting a lock
 * file while another process waits on it would split the lock).
 */
import { basename, dirname, join } from "node:path";
import type { z } from "zod";

export async function atomicWrite(path: string, text: string): Promise<void> {
  await atomicWriteBytes(path, new TextEncoder().encode(text));
}

export async function atomicWriteBytes(
  path: string,
  bytes: Uint8Array,
  opts: { mode?: number; syncFolder?: boolean } = {},
): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  // Named after the file, so a crash's leftover can be found (and removed) by it.
  const tmp = join(dir, `.${basename(path)}.${crypto.randomUUID().slice(0, 8)}.tmp`);
  try {
    using file = await Deno.open(tmp, { write: true, createNew: true, mode: opts.mode ?? 0o644 });
    let written = 0;
    while (written < bytes.length) written += await file.write(bytes.subarray(written));
    await file.sync();
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  await Deno.rename(tmp, path);
  if (!opts.syncFolder) return;
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync(); // the rename survives a power cut
  } catch {
    // Not every platform syncs a folder; the file itself is on disk.
  }
}

/** The hidden sidecar lock of a data file: dir/.name.lock. */
export function lockPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.lock`);
}

/** Run `fn` holding an exclusive lock on `lockPath` (created if missing). */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  await Deno.mkdir(dirname(lockPath), { recursive: true });
  using file = await Deno.open(lockPath, { read: true, write: true, create: true, mode: 0o666 });
  await file.lock(true);
  try {
    return await fn();
  } finally {
    await file.unlock();
  }
}

/** The text of `path`, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/**
 * Read `path` as JSON matching `schema`; undefined when it does not exist.
 * A file that does not parse or match is never "repaired": `fail` makes the
 * error (the caller's class), saying the file was left as it is.
 */
export async function readJsonFile<T>(
  path: string,
  schema: z.ZodType<T>,
  what: string,
  fail: (message: string) => Error,
): Promise<T | undefined> {
  const text = await readIfExists(path);
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw fail(
      `${path} is not valid JSON (${
        (e as Error).message
      }); it was left as it is: fix or move it away, then run again`,
    );
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw fail(
      `${path} does not match the ${what} format (${
        issue.path.join(".")
      }: ${issue.message}); it was left as it is: fix or move it away, then run again`,
    );
  }
  return parsed.data;
}
