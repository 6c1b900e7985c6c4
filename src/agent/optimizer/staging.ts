/**
 * Candidates are written to the staging folder, never over the kernel: the
 * kernel file only ever changes when a verified candidate replaces it (the
 * loop's concern). Each candidate gets a folder of its own,
 * <staging>/<kernel>/<attempt id>/<kernel>.metal, because the simulator's
 * compiler may read the kernel's folder: one candidate cannot `#include`
 * another.
 */
import { basename, dirname, join, resolve } from "node:path";
import { lineageName } from "../attempts/paths.ts";
import { ATTEMPT_ID } from "../attempts/schema.ts";

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
 * Write `source` and return its path. The candidate's folder appears
 * whole or not at all: the file is written and synced in a hidden
 * `.partial-*` folder beside it, which is then renamed into place (a reader
 * of the staging folder never sees a half-written file or a temp name
 * under the candidate's id). `avoid` lists files that must never be
 * written (the kernel file): a staging folder set up to alias one is refused.
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
    if (await realOrSelf(file) === await realOrSelf(path)) {
      throw new StagingError(
        `the staging path ${path} is the kernel file ${file} — fix: keep .agent-steel/staging outside kernels/`,
      );
    }
  }
  const folder = dirname(path);
  const parent = dirname(folder);
  await Deno.mkdir(parent, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir: parent, prefix: ".partial-" });
  try {
    {
      using file = await Deno.open(join(tmp, basename(path)), { write: true, createNew: true });
      const bytes = new TextEncoder().encode(source);
      for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
      await file.sync();
    }
    // The same id staged again replaces its folder (a link there is removed, not followed).
    await Deno.remove(folder, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, folder);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  return path;
}

async function realOrSelf(path: string): Promise<string> {
  try {
    return await Deno.realPath(path);
  } catch {
    return resolve(path);
  }
}
