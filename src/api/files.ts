/**
 * Read and merge what MetalBench writes: results files, session.json and
 * the AttemptDB, each validated by the same zod schema the program reads it
 * with (a corrupt file throws, naming it).
 */
import { join } from "node:path";
import { readResults } from "../store/results.ts";
import { readSession as readSessionFile } from "../store/session.ts";
import { type ResultsFile, SCHEMA_VERSION, Session, type SessionEntry } from "../store/schema.ts";
import { AttemptDB, type AttemptRead } from "../agent/attempts/db.ts";
import { chooseWorkspace } from "../registry/workspace.ts";

/** One results file (results/<bucket>/<kernel>.json); undefined when it does not exist. */
export function readResultsFile(path: string): Promise<ResultsFile | undefined> {
  return readResults(path);
}

/** Every results file under a results/ folder (default: the workspace's). */
export async function readAllResults(
  opts: { workspace?: string; resultsDir?: string } = {},
): Promise<ResultsFile[]> {
  const dir = opts.resultsDir ?? chooseWorkspace(opts.workspace).resultsDir;
  const files: ResultsFile[] = [];
  const entries = async (d: string) => {
    try {
      return await Array.fromAsync(Deno.readDir(d));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
  };
  for (const bucket of (await entries(dir)).filter((e) => e.isDirectory)) {
    for (const f of await entries(join(dir, bucket.name))) {
      if (!f.isFile || !f.name.endsWith(".json")) continue;
      const file = await readResults(join(dir, bucket.name, f.name));
      if (file) files.push(file);
    }
  }
  return files.sort((a, b) => `${a.bucket}/${a.kernel}`.localeCompare(`${b.bucket}/${b.kernel}`));
}

/**
 * Results from several machines or folders as one set: one file per
 * (bucket, kernel), runs by id without duplicates, oldest first.
 */
export function mergeResults(...sets: ResultsFile[][]): ResultsFile[] {
  const merged = new Map<string, ResultsFile>();
  for (const file of sets.flat()) {
    const key = `${file.bucket}/${file.kernel}`;
    const into = merged.get(key) ??
      { version: SCHEMA_VERSION, kernel: file.kernel, bucket: file.bucket, runs: [] };
    const seen = new Set(into.runs.map((r) => r.id));
    into.runs.push(...file.runs.filter((r) => !seen.has(r.id)));
    merged.set(key, into);
  }
  for (const f of merged.values()) f.runs.sort((a, b) => a.timestamp.localeCompare(b.timestamp));
  return [...merged.values()].sort((a, b) =>
    `${a.bucket}/${a.kernel}`.localeCompare(`${b.bucket}/${b.kernel}`)
  );
}

/** A session.json (default: the workspace's); an empty session when it does not exist. */
export function readSession(opts: { workspace?: string; path?: string } = {}): Promise<Session> {
  return readSessionFile(opts.path ?? chooseWorkspace(opts.workspace).sessionPath);
}

/** The entry that stays when two sessions disagree, by the leaderboard's rule. */
function better(a: SessionEntry, b: SessionEntry): SessionEntry {
  const protocol = (e: SessionEntry) => e.settings.protocol?.version ?? 1;
  if (protocol(a) !== protocol(b)) return protocol(a) > protocol(b) ? a : b;
  // Runs measured differently are not compared: the first session's entry stays.
  if (a.settingsKey !== b.settingsKey) return a;
  return b.kernelMedianMs < a.kernelMedianMs ? b : a;
}

/**
 * Leaderboards merged: per bucket and kernel, the newer protocol wins, then
 * the faster of two entries measured the same way (same settings key); of
 * entries measured differently, the earlier session's stays.
 */
export function mergeSessions(...sessions: Session[]): Session {
  const out: Session = { version: SCHEMA_VERSION, buckets: {} };
  for (const s of sessions) {
    for (const [bucket, kernels] of Object.entries(s.buckets)) {
      const into = out.buckets[bucket] ??= {};
      for (const [kernel, entry] of Object.entries(kernels)) {
        into[kernel] = into[kernel] ? better(into[kernel], entry) : entry;
      }
    }
  }
  return Session.parse(out);
}

/**
 * A kernel's AttemptDB lineage (.agent-steel/history/<kernel>__<bucket>.jsonl
 * beside the workspace's session.json): valid entries in order, and a
 * warning for each torn or invalid line (skipped, left in the file).
 */
export function readAttempts(
  kernel: string,
  bucket: string,
  opts: { workspace?: string; agentRoot?: string } = {},
): Promise<AttemptRead> {
  const root = opts.agentRoot ?? join(chooseWorkspace(opts.workspace).outputRoot, ".agent-steel");
  return new AttemptDB(root, kernel, bucket).read();
}
