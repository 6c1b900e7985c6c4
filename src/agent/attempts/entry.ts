/**
 * The AttemptDB line of an attempt that ended, for Agent Steel's lineages
 * and the Welder's alike: stamped now, its source hashed, its calls (if any)
 * written first as its transcript with the held keys cut out.
 */
import { sha256Hex } from "../../util/hash.ts";
import type { AttemptEntry } from "./schema.ts";
import { type TranscriptCall, writeTranscript } from "./transcripts.ts";

/** Whose lineage the attempt is in. */
export interface EntryOwner {
  /** The .agent-steel folder. */
  root: string;
  kernel: string;
  bucket: string;
  provider: { name: string; model: string };
  /** Key values that must never reach a file. */
  secrets: readonly string[];
}

/** Null when not given. */
type Optional = "profile" | "bench" | "correctness" | "deltaPct" | "plausible";

/** The attempt's own fields; the rest come from its owner and the moment it is written. */
export type EndedAttempt =
  & Omit<
    AttemptEntry,
    | "version"
    | "kernel"
    | "bucket"
    | "time"
    | "provider"
    | "model"
    | "sourceSha256"
    | "transcript"
    | Optional
  >
  & Partial<Pick<AttemptEntry, Optional>>
  & { calls: TranscriptCall[] };

export async function attemptEntry(owner: EntryOwner, a: EndedAttempt): Promise<AttemptEntry> {
  const transcript = a.calls.length
    ? await writeTranscript(owner.root, a.id, { calls: a.calls }, { redact: owner.secrets })
    : null;
  // Field by field: whatever else the caller's object holds stays out of the line.
  return {
    version: 1,
    id: a.id,
    parentId: a.parentId,
    kernel: owner.kernel,
    bucket: owner.bucket,
    round: a.round,
    candidate: a.candidate,
    retry: a.retry,
    time: new Date().toISOString(),
    provider: owner.provider.name,
    model: owner.provider.model,
    technique: a.technique,
    source: a.source,
    sourceSha256: await sha256Hex(a.source),
    profile: a.profile ?? null,
    bench: a.bench ?? null,
    correctness: a.correctness ?? null,
    verdict: a.verdict,
    reason: a.reason,
    deltaPct: a.deltaPct ?? null,
    plausible: a.plausible ?? null,
    tokens: a.tokens,
    transcript,
  };
}
