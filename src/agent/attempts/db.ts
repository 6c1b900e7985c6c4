/**
 * The AttemptDB: one JSONL file per (kernel, bucket) lineage under
 * <root>/history/, append-only. Each entry is one line written by one
 * O_APPEND write under a sidecar lock, then flushed (fdatasync), so lines
 * from concurrent writers never interleave and a written line survives a
 * crash. A crash mid-write can leave a torn last line: reading skips it with
 * a warning naming the line (it stays in the file, never silently dropped),
 * and the next append starts on a fresh line so nothing after it is lost.
 */
import { dirname } from "node:path";
import { sha256Hex } from "../../util/hash.ts";
import { lockPathFor, withLock } from "../../store/files.ts";
import { historyPath } from "./paths.ts";
import {
  baselineOf,
  bestOf,
  currentOf,
  type FailedTechnique,
  failedTechniquesOf,
  lastRoundOf,
  techniquesOf,
  type TechniqueTried,
  topNOf,
} from "./queries.ts";
import { redactStrings } from "./redact.ts";
import { AttemptEntry } from "./schema.ts";

export class AttemptDBError extends Error {
  override name = "AttemptDBError";
}

export interface AttemptRead {
  entries: AttemptEntry[];
  /** One line each: a torn or invalid line, skipped and left in the file. */
  warnings: string[];
}

export class AttemptDB {
  /** <root>/history/<kernel>__<bucket>.jsonl */
  readonly path: string;
  readonly #secrets: readonly string[];

  /** `root` is the .agent-steel folder; `redact` strings never reach the file. */
  constructor(
    readonly root: string,
    readonly kernel: string,
    readonly bucket: string,
    opts: { redact?: readonly string[] } = {},
  ) {
    this.path = historyPath(root, kernel, bucket);
    this.#secrets = opts.redact ?? [];
  }

  /** Validate `entry`, then append it as one line and flush it to disk. */
  async append(entry: AttemptEntry): Promise<void> {
    const line = new TextEncoder().encode(JSON.stringify(await this.#checked(entry)) + "\n");
    await Deno.mkdir(dirname(this.path), { recursive: true });
    await withLock(lockPathFor(this.path), async () => {
      using file = await Deno.open(this.path, {
        read: true,
        append: true,
        create: true,
        mode: 0o644,
      });
      const { size } = await file.stat();
      // A torn last line (crash mid-write) must not swallow this entry.
      const bytes = (await endsMidLine(file, size)) ? withNewlineFirst(line) : line;
      let written = 0;
      while (written < bytes.length) written += await file.write(bytes.subarray(written));
      await file.syncData();
      if (size === 0) await syncDir(dirname(this.path)); // the new file's name survives a power cut
    });
  }

  /** Every valid entry in file order; torn or invalid lines become warnings. */
  async read(): Promise<AttemptRead> {
    const text = await this.#readWhole();
    if (text === undefined) return { entries: [], warnings: [] };
    return parseLines(text, this.path, this.kernel, this.bucket);
  }

  async #entries(): Promise<AttemptEntry[]> {
    return (await this.read()).entries;
  }

  /** The lineage's baseline (its first baseline entry). */
  async baseline(): Promise<AttemptEntry | undefined> {
    return baselineOf(await this.#entries());
  }

  /** The fastest kept-or-baseline entry by bench.medianNs (like with like). */
  async best(): Promise<AttemptEntry | undefined> {
    return bestOf(await this.#entries());
  }

  /** The latest kept-or-baseline entry: what the kernel file holds. */
  async current(): Promise<AttemptEntry | undefined> {
    return currentOf(await this.#entries());
  }

  /** The n fastest kept attempts, fastest first. */
  async topN(n: number): Promise<AttemptEntry[]> {
    return topNOf(await this.#entries(), n);
  }

  async techniques(): Promise<TechniqueTried[]> {
    return techniquesOf(await this.#entries());
  }

  async failedTechniques(): Promise<FailedTechnique[]> {
    return failedTechniquesOf(await this.#entries());
  }

  /** The highest round recorded, -1 when the lineage is empty (for --resume). */
  async lastRound(): Promise<number> {
    return lastRoundOf(await this.#entries());
  }

  async #checked(entry: AttemptEntry): Promise<AttemptEntry> {
    const parsed = AttemptEntry.safeParse(redactStrings(entry, this.#secrets));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new AttemptDBError(
        `attempt ${JSON.stringify(entry?.id)} was not recorded: ${
          issue.path.join(".")
        }: ${issue.message} — fix: this is a bug in the caller; report it`,
      );
    }
    const e = parsed.data;
    if (e.kernel !== this.kernel || e.bucket !== this.bucket) {
      throw new AttemptDBError(
        `attempt ${e.id} is for ${e.kernel} (${e.bucket}), not this lineage ${this.kernel} (${this.bucket}) — fix: append it to its own AttemptDB`,
      );
    }
    // Redaction may have touched the source; the hash must describe what is stored.
    if (e.source !== entry.source) e.sourceSha256 = await sha256Hex(e.source);
    else if (e.sourceSha256 !== await sha256Hex(e.source)) {
      throw new AttemptDBError(
        `attempt ${e.id} was not recorded: sourceSha256 is not the SHA-256 of its source — fix: hash the source that is stored`,
      );
    }
    return e;
  }

  /** The whole file read under the append lock (so no line is half there), or undefined. */
  async #readWhole(): Promise<string | undefined> {
    try {
      await Deno.stat(this.path);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return undefined;
      throw e;
    }
    try {
      return await withLock(lockPathFor(this.path), () => Deno.readTextFile(this.path));
    } catch (e) {
      // A read-only copy of a workspace can still be read (no writer can be mid-line there).
      if (e instanceof Deno.errors.PermissionDenied || (e as { code?: string }).code === "EROFS") {
        return await Deno.readTextFile(this.path);
      }
      throw e;
    }
  }
}

async function endsMidLine(file: Deno.FsFile, size: number): Promise<boolean> {
  if (size === 0) return false;
  await file.seek(-1, Deno.SeekMode.End);
  const last = new Uint8Array(1);
  return (await file.read(last)) === 1 && last[0] !== 0x0a;
}

async function syncDir(dir: string): Promise<void> {
  try {
    using d = await Deno.open(dir, { read: true });
    await d.sync();
  } catch {
    // Not every platform syncs a directory; the entry itself is already on disk.
  }
}

function withNewlineFirst(line: Uint8Array): Uint8Array {
  const out = new Uint8Array(line.length + 1);
  out[0] = 0x0a;
  out.set(line, 1);
  return out;
}

/** Parse JSONL text; each bad line is skipped with a warning naming its line number. */
export function parseLines(
  text: string,
  path: string,
  kernel: string,
  bucket: string,
): AttemptRead {
  const entries: AttemptEntry[] = [];
  const warnings: string[] = [];
  const lines = text.split("\n");
  const endsClean = text.endsWith("\n");
  lines.forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${path} line ${i + 1}`;
    const isLast = i === lines.length - 1 && !endsClean;
    const skip = (why: string) =>
      warnings.push(`${where} ${why}; skipped (the line is left in the file as it is)`);
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return skip(isLast ? "is torn (cut short, as by a crash mid-write)" : "is not JSON");
    }
    const parsed = AttemptEntry.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return skip(
        `does not match the attempt format (${issue.path.join(".")}: ${issue.message})`,
      );
    }
    if (parsed.data.kernel !== kernel || parsed.data.bucket !== bucket) {
      return skip(`belongs to ${parsed.data.kernel} (${parsed.data.bucket})`);
    }
    entries.push(parsed.data);
  });
  return { entries, warnings };
}
