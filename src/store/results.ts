/**
 * results/<bucket>/<name>.json keeps every run of a kernel in full,
 * appended under a lock and written atomically. A file that does not parse
 * is kept as it is and the error says so.
 */
import { join } from "node:path";
import { atomicWrite, lockPathFor, readIfExists, withLock } from "./files.ts";
import { ResultsFile, type RunRecord, SCHEMA_VERSION } from "./schema.ts";

export class ResultsFileError extends Error {
  override name = "ResultsFileError";
}

export function resultsPath(resultsDir: string, bucket: string, kernel: string): string {
  return join(resultsDir, bucket, `${kernel}.json`);
}

export async function readResults(path: string): Promise<ResultsFile | undefined> {
  const text = await readIfExists(path);
  if (text === undefined) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ResultsFileError(
      `${path} is not valid JSON (${
        (e as Error).message
      }); it was left as it is: move it away to start a new one`,
    );
  }
  const parsed = ResultsFile.safeParse(raw);
  if (!parsed.success) {
    throw new ResultsFileError(
      `${path} does not match the results format; it was left as it is: move it away to start a new one`,
    );
  }
  return parsed.data;
}

/** Append `run` to its kernel's results file; returns the file's path. */
export async function appendRun(resultsDir: string, run: RunRecord): Promise<string> {
  const path = resultsPath(resultsDir, run.bucket, run.kernel);
  await withLock(lockPathFor(path), async () => {
    const file = await readResults(path) ??
      { version: SCHEMA_VERSION, kernel: run.kernel, bucket: run.bucket, runs: [] };
    file.runs.push(run);
    await atomicWrite(path, JSON.stringify(file, null, 1) + "\n");
  });
  return path;
}
