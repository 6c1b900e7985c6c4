/**
 * The lineage lock: one process at a time optimizes a (kernel, bucket)
 * lineage; different kernels run side by side. It is a Deno.FsFile lock
 * (flock) on <root>/locks/<kernel>__<bucket>.lock, held by an open file, so
 * the OS drops it when the holder dies, kill -9 included: the pid written in
 * the file only names the holder for the error message and never blocks
 * anyone by itself. The file is never deleted (deleting a lock file while
 * another process waits on it would split the lock).
 */
import { dirname } from "node:path";
import { lineageLockPath } from "./paths.ts";

export interface LineageHolder {
  pid: number | null;
  /** ISO time the holder took the lock. */
  since: string | null;
}

export class LineageBusyError extends Error {
  override name = "LineageBusyError";
  readonly holderPid: number | null;
  readonly holderSince: string | null;

  constructor(readonly kernel: string, readonly bucket: string, holder: LineageHolder) {
    const who = holder.pid === null ? "another process" : `process ${holder.pid}`;
    const since = holder.since === null ? "" : ` (since ${holder.since})`;
    super(
      `kernel ${kernel} (${bucket}) is being optimized by ${who}${since} — fix: wait for it, stop it, or pass --wait`,
    );
    this.holderPid = holder.pid;
    this.holderSince = holder.since;
  }
}

export interface LineageLock extends AsyncDisposable {
  readonly path: string;
  /** Let the lineage go; safe to call twice. */
  release(): Promise<void>;
}

export interface AcquireOptions {
  /** Block until the lineage is free instead of failing at once. */
  wait: boolean;
  /** Stops a wait: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called once when a wait starts, with the holder (for a progress line). */
  onWait?: (holder: LineageHolder) => void;
}

const MAX_POLL_MS = 500;

/**
 * Take the lineage of (kernel, bucket). Without `wait`, a held lineage fails
 * at once with LineageBusyError naming the holder's pid; with `wait`, polls
 * until the holder lets go or exits (polling keeps the wait abortable).
 */
export async function acquireLineage(
  root: string,
  kernel: string,
  bucket: string,
  opts: AcquireOptions,
): Promise<LineageLock> {
  const path = lineageLockPath(root, kernel, bucket);
  await Deno.mkdir(dirname(path), { recursive: true });
  const file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o644 });
  try {
    let delay = 25;
    let waiting = false;
    while (!(await file.tryLock(true))) {
      if (!opts.wait) throw new LineageBusyError(kernel, bucket, await readHolder(path));
      opts.signal?.throwIfAborted();
      if (!waiting) {
        waiting = true;
        opts.onWait?.(await readHolder(path));
      }
      await sleep(delay, opts.signal);
      delay = Math.min(delay * 2, MAX_POLL_MS);
    }
    await writeHolder(file);
  } catch (e) {
    file.close();
    throw e;
  }
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    try {
      await file.truncate(0); // cleared before unlocking, so it never wipes a new holder's pid
      await file.unlock();
    } finally {
      file.close();
    }
  };
  return { path, release, [Symbol.asyncDispose]: release };
}

async function writeHolder(file: Deno.FsFile): Promise<void> {
  const text = JSON.stringify({ pid: Deno.pid, since: new Date().toISOString() }) + "\n";
  const bytes = new TextEncoder().encode(text);
  await file.truncate(0);
  await file.seek(0, Deno.SeekMode.Start);
  let written = 0;
  while (written < bytes.length) written += await file.write(bytes.subarray(written));
}

/**
 * Who holds the lock, from the file. The holder writes it just after it
 * locks, so an empty file is retried for a moment before giving up.
 */
export async function readHolder(path: string): Promise<LineageHolder> {
  for (let i = 0; i < 10; i++) {
    const holder = parseHolder(await Deno.readTextFile(path).catch(() => ""));
    if (holder.pid !== null) return holder;
    await sleep(20);
  }
  return { pid: null, since: null };
}

function parseHolder(text: string): LineageHolder {
  try {
    const raw = JSON.parse(text) as { pid?: unknown; since?: unknown };
    const pid = Number.isSafeInteger(raw.pid) && (raw.pid as number) > 0 ? raw.pid as number : null;
    const since = typeof raw.since === "string" && !Number.isNaN(Date.parse(raw.since))
      ? new Date(raw.since).toISOString()
      : null;
    return { pid, since };
  } catch {
    return { pid: null, since: null };
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
