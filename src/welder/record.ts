/**
 * Every attempt of a weld, passed or failed, as one AttemptDB line of the
 * problem's lineage, with its transcript. Stage 1 and 2 attempts are round
 * 0 (candidate = the stage); the kernel that passes stage 2 is the
 * lineage's baseline, so Agent Steel continues from it (`--resume`). A
 * passing stage-1 attempt is "kept" without a time (it is not a kernel);
 * a polish is a new baseline after the lineage's last round.
 */
import { AttemptDB } from "../agent/attempts/db.ts";
import { attemptEntry } from "../agent/attempts/entry.ts";
import {
  type AttemptBench,
  type AttemptEntry,
  newAttemptId,
  type Verdict,
} from "../agent/attempts/schema.ts";
import type { TranscriptCall } from "../agent/attempts/transcripts.ts";

export interface AttemptParts {
  round: number;
  /** 1 or 2 for a weld's stages; 0 for a polish. */
  candidate: number;
  retry: number;
  technique: string;
  source: string;
  verdict: Verdict;
  reason: string;
  profile?: Record<string, unknown> | null;
  bench?: AttemptBench | null;
  correctness?: { status: string; detail: string } | null;
  plausible?: boolean | null;
  tokens: { input: number; output: number };
  calls: TranscriptCall[];
}

export class WeldRecorder {
  readonly db: AttemptDB;
  #last: AttemptEntry | null = null;

  constructor(
    readonly root: string,
    readonly kernel: string,
    readonly bucket: string,
    readonly provider: { name: string; model: string },
    readonly secrets: readonly string[],
  ) {
    this.db = new AttemptDB(root, kernel, bucket, { redact: secrets });
  }

  async record(a: AttemptParts): Promise<AttemptEntry> {
    const entry = await attemptEntry(this, {
      ...a,
      id: newAttemptId(this.kernel, a.round, a.candidate, a.retry),
      parentId: this.#last?.id ?? null,
    });
    await this.db.append(entry);
    this.#last = entry;
    return entry;
  }
}
