/**
 * Where a lineage's files live under the .agent-steel folder. Kernel and
 * bucket names become file names, so they are checked here, once: a name
 * from a registry the Welder (an LLM) wrote must not walk out of the folder.
 */
import { join } from "node:path";

const KERNEL = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** No "__" in a bucket, so `<kernel>__<bucket>` splits one way only. */
const BUCKET = /^[A-Za-z0-9](?:[A-Za-z0-9.-]|_(?!_))*$/;

export class LineageNameError extends Error {
  override name = "LineageNameError";
}

/** `<kernel>__<bucket>`, after checking both are safe file-name parts. */
export function lineageName(kernel: string, bucket: string): string {
  if (!KERNEL.test(kernel)) {
    throw new LineageNameError(
      `kernel name ${JSON.stringify(kernel)} is not an identifier — fix: use the registry's name`,
    );
  }
  if (!BUCKET.test(bucket) || bucket.length > 100) {
    throw new LineageNameError(
      `chip bucket ${
        JSON.stringify(bucket)
      } is not a plain name (letters, digits, '.', '-', single '_') — fix: use the detected bucket`,
    );
  }
  return `${kernel}__${bucket}`;
}

export function historyPath(root: string, kernel: string, bucket: string): string {
  return join(root, "history", `${lineageName(kernel, bucket)}.jsonl`);
}

export function lineageLockPath(root: string, kernel: string, bucket: string): string {
  return join(root, "locks", `${lineageName(kernel, bucket)}.lock`);
}
