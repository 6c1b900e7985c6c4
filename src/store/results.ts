/**
 * results/<bucket>/<name>.json keeps every run of a kernel in full,
 * appended under a lock and written atomically. A file that does not parse
 * is kept as it is and the error says so.
 */
import { join } from "node:path";
import { atomicWrite, lockPathFor, readJsonFile, withLock } from "./files.ts";
import { ResultsFile, type RunRecord, SCHEMA_VERSION } from "./schema.ts";

export class ResultsFileError extends Error {
  override name = "ResultsFileError";
}

export function resultsPath(resultsDir: string, bucket: string, kernel: string): string {
  return join(resultsDir, bucket, `${kernel}.json`);
}

export function readResults(path: string): Promise<ResultsFile | undefined> {
  return readJsonFile(path, ResultsFile, "results", (m) => new ResultsFileError(m));
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
