/**
 * session.json: per chip bucket, the best correct run of each kernel with
 * its full Metal source. Updated under a lock and written atomically; a run
 * only competes with an entry measured the same way (same backend, size and
 * clock), so a best is never "won" by changing the settings.
 */
import { atomicWrite, lockPathFor, readJsonFile, withLock } from "./files.ts";
import { leaderboardBlockers, PROTOCOL_VERSION } from "./protocol.ts";
import {
  type RunRecord,
  SCHEMA_VERSION,
  Session,
  type SessionEntry,
  type Settings,
} from "./schema.ts";

export class SessionFileError extends Error {
  override name = "SessionFileError";
}

export const emptySession = (): Session => ({ version: SCHEMA_VERSION, buckets: {} });

/** What decides whether two runs measured the same thing (fast math is another kernel). */
export function settingsKey(backend: string, s: Settings): string {
  return `${backend}|size=${s.size}|clock=${s.clock.mode}x${s.clock.batch}${
    s.fastMath ? "|fast-math" : ""
  }`;
}

export async function readSession(path: string): Promise<Session> {
  return await readJsonFile(path, Session, "session", (m) => new SessionFileError(m)) ??
    emptySession();
}

export type SessionUpdate =
  | { kind: "new-best"; entry: SessionEntry; previous?: SessionEntry }
  | { kind: "kept"; entry: SessionEntry; reason: string }
  | { kind: "not-eligible"; reason: string };

export function entryFromRun(run: RunRecord, source: string): SessionEntry | undefined {
  if (run.correctness.status !== "correct" || !run.kernelTiming || !run.source) return undefined;
  return {
    kernel: run.kernel,
    set: run.set,
    runId: run.id,
    timestamp: run.timestamp,
    backend: run.backend,
    device: run.device.name,
    settingsKey: settingsKey(run.backend, run.settings),
    settings: run.settings,
    variant: run.source.variant,
    sourcePath: run.source.path,
    source,
    sourceSha256: run.source.sha256,
    kernelMedianMs: run.kernelTiming.wall.median / 1e6,
    mlxMedianMs: run.mlxTiming ? run.mlxTiming.wall.median / 1e6 : null,
    speedup: run.metrics.speedup,
    gflops: run.metrics.gflops,
    gbps: run.metrics.gbps,
    scores: run.scores,
  };
}

/** Decide what a run does to the leaderboard (pure). */
export function judge(session: Session, run: RunRecord, source: string): SessionUpdate {
  const entry = entryFromRun(run, source);
  if (!entry) {
    return {
      kind: "not-eligible",
      reason: run.correctness.status !== "correct"
        ? `the kernel is not correct (${run.correctness.status})`
        : "the kernel was not timed",
    };
  }
  const blockers = leaderboardBlockers(run);
  if (blockers.length) return { kind: "not-eligible", reason: blockers.join("; ") };
  const previous = session.buckets[run.bucket]?.[run.kernel];
  if (!previous) return { kind: "new-best", entry };
  // An entry measured under an older, weaker protocol gives way to any valid run.
  if ((previous.settings.protocol?.version ?? 1) < PROTOCOL_VERSION) {
    return { kind: "new-best", entry, previous };
  }
  if (previous.settingsKey !== entry.settingsKey) {
    return {
      kind: "kept",
      entry: previous,
      reason:
        `the recorded best was measured as ${previous.settingsKey}, this run as ${entry.settingsKey}; not compared`,
    };
  }
  if (entry.kernelMedianMs < previous.kernelMedianMs) return { kind: "new-best", entry, previous };
  return {
    kind: "kept",
    entry: previous,
    reason: `${entry.kernelMedianMs.toFixed(4)} ms is not faster than the recorded ${
      previous.kernelMedianMs.toFixed(4)
    } ms`,
  };
}

/**
 * Offer `run` to the leaderboard at `path`. `onChange` runs under the same
 * lock with the new session (to regenerate files derived from it).
 */
export async function offerRun(
  path: string,
  run: RunRecord,
  source: string,
  onChange?: (session: Session) => Promise<void>,
): Promise<SessionUpdate> {
  return await withLock(lockPathFor(path), async () => {
    const session = await readSession(path);
    const update = judge(session, run, source);
    if (update.kind === "new-best") {
      (session.buckets[run.bucket] ??= {})[run.kernel] = update.entry;
      await atomicWrite(path, JSON.stringify(session, null, 2) + "\n");
      await onChange?.(session);
    }
    return update;
  });
}

/** The stderr line the seed prints when a run wins. */
export function describeUpdate(bucket: string, kernel: string, u: SessionUpdate): string {
  const where = `[${bucket}/${kernel}]`;
  switch (u.kind) {
    case "new-best": {
      const now = u.entry.kernelMedianMs;
      if (!u.previous) return `updated session.json ${where}: first entry ${fmtMs(now)}`;
      const was = u.previous.kernelMedianMs;
      return `updated session.json ${where}: new best ${fmtMs(now)} (was ${fmtMs(was)}, Δ +${
        (was - now).toFixed(3)
      })`;
    }
    case "kept":
      return `session.json ${where} unchanged: ${u.reason}`;
    case "not-eligible":
      return `session.json ${where} unchanged: ${u.reason}`;
  }
}

const fmtMs = (ms: number) => `${ms < 0.1 ? ms.toFixed(4) : ms.toFixed(3)} ms`;
