/**
 * Every attempt of a weld, passed or failed, as one AttemptDB line of the
 * problem's lineage, with its transcript. Stage 1 and 2 attempts are round
 * 0 (candidate = the stage); the kernel that passes stage 2 is the
 * lineage's baseline, so Agent Steel continues from it (`--resume`). A
 * passing stage-1 attempt is "kept" without a time (it is not a kernel);
 * a polish is a new baseline after the lineage's last round.
 */
import { AttemptDB } from "../agent/attempts/db.ts";
import {
  type AttemptBench,
  type AttemptEntry,
  newAttemptId,
  type Verdict,
} from "../agent/attempts/schema.ts";
import { type TranscriptCall, writeTranscript } from "../agent/attempts/transcripts.ts";
import { sha256Hex } from "../util/hash.ts";

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
    const id = newAttemptId(this.kernel, a.round, a.candidate, a.retry);
    const transcript = a.calls.length
      ? await writeTranscript(this.root, id, { calls: a.calls }, { redact: this.secrets })
      : null;
    const entry: AttemptEntry = {
      version: 1,
      id,
      parentId: this.#last?.id ?? null,
      kernel: this.kernel,
      bucket: this.bucket,
      round: a.round,
      candidate: a.candidate,
      retry: a.retry,
      time: new Date().toISOString(),
      provider: this.provider.name,
      model: this.provider.model,
      technique: a.technique,
      source: a.source,
      sourceSha256: await sha256Hex(a.source),
      profile: a.profile ?? null,
      bench: a.bench ?? null,
      correctness: a.correctness ?? null,
      verdict: a.verdict,
      reason: a.reason,
      deltaPct: null,
      plausible: a.plausible ?? null,
      tokens: a.tokens,
      transcript,
    };
    await this.db.append(entry);
    this.#last = entry;
    return entry;
  }
}
