/**
 * Candidates are written to the staging folder, never over the kernel: the
 * kernel file only ever changes when a verified candidate replaces it (the
 * loop's concern). Each candidate gets a folder of its own,
 * <staging>/<kernel>/<attempt id>/<kernel>.metal, because the simulator's
 * compiler may read the kernel's folder: one candidate cannot `#include`
 * another.
 */
import { join, resolve } from "node:path";
import { lineageName } from "../attempts/paths.ts";
import { ATTEMPT_ID } from "../attempts/schema.ts";
import { atomicWrite } from "../../store/files.ts";

export class StagingError extends Error {
  override name = "StagingError";
}

/** Where stageCandidate puts a candidate (after checking the names). */
export function stagedPath(stagingDir: string, kernel: string, id: string): string {
  lineageName(kernel, "staging"); // the same identifier rule as the AttemptDB's file names
  if (!ATTEMPT_ID.test(id) || id === "." || id === "..") {
    throw new StagingError(
      `attempt id ${JSON.stringify(id)} cannot name a staging folder — fix: use newAttemptId()`,
    );
  }
  return join(resolve(stagingDir), kernel, id, `${kernel}.metal`);
}

/**
 * Write `source` atomically (temp file, fsync, rename) and return its path.
 * `avoid` lists files that must never be written (the kernel file): a
 * staging folder set up to alias one is refused.
 */
export async function stageCandidate(
  stagingDir: string,
  kernel: string,
  id: string,
  source: string,
  avoid: string[] = [],
): Promise<string> {
  const path = stagedPath(stagingDir, kernel, id);
  for (const file of avoid) {
    const a = await realOrSelf(file);
    const b = await realOrSelf(path);
    if (a === b) {
      throw new StagingError(
        `the staging path ${path} is the kernel file ${file} — fix: keep .agent-steel/staging outside kernels/`,
      );
    }
  }
  await atomicWrite(path, source);
  return path;
}

async function realOrSelf(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return resolve(path);
  }
}
