/**
 * Transcripts: every prompt and reply of an attempt, kept whole beside the
 * AttemptDB (<root>/transcripts/<id>.json) so any attempt can be audited.
 * Written atomically: a transcript is either all there or absent.
 */
import { join } from "node:path";
import { z } from "zod";
import { atomicWrite, readJsonFile } from "../../store/files.ts";
import { redactStrings } from "./redact.ts";
import { ATTEMPT_ID } from "./schema.ts";

export const TranscriptCall = z.object({
  /** What the call was for: "diagnosis", "candidate", "retry", ... */
  purpose: z.string(),
  system: z.string(),
  messages: z.array(z.object({ role: z.string(), content: z.string() })),
  reply: z.string().nullable(),
  error: z.string().optional(),
  /** The provider's token counts, as it reports them. */
  usage: z.unknown().optional(),
  provider: z.string(),
  model: z.string(),
  latencyMs: z.number().optional(),
});
export type TranscriptCall = z.infer<typeof TranscriptCall>;

export const Transcript = z.object({
  version: z.literal(1),
  id: z.string(),
  calls: z.array(TranscriptCall),
});
export type Transcript = z.infer<typeof Transcript>;

export class TranscriptError extends Error {
  override name = "TranscriptError";
}

/** The transcript's path relative to the .agent-steel folder. */
export function transcriptRelPath(id: string): string {
  if (!ATTEMPT_ID.test(id)) {
    throw new TranscriptError(
      `attempt id ${JSON.stringify(id)} cannot name a transcript file — fix: use newAttemptId()`,
    );
  }
  return `transcripts/${id}.json`;
}

/**
 * Write the transcript of attempt `id` atomically; returns its path relative
 * to `root` (for AttemptEntry.transcript). `redact` strings never reach the file.
 */
export async function writeTranscript(
  root: string,
  id: string,
  t: { calls: TranscriptCall[] },
  opts: { redact?: readonly string[] } = {},
): Promise<string> {
  const rel = transcriptRelPath(id);
  const parsed = Transcript.safeParse(
    redactStrings({ version: 1, id, calls: t.calls }, opts.redact ?? []),
  );
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TranscriptError(
      `transcript of ${id} was not written: ${
        issue.path.join(".")
      }: ${issue.message} — fix: this is a bug in the caller; report it`,
    );
  }
  await atomicWrite(join(root, rel), JSON.stringify(parsed.data, null, 1) + "\n");
  return rel;
}

/** Read a transcript by the relative path an AttemptEntry holds. */
export async function readTranscript(root: string, rel: string): Promise<Transcript> {
  const m = /^transcripts\/([^/]+)\.json$/.exec(rel);
  if (!m || !ATTEMPT_ID.test(m[1])) {
    throw new TranscriptError(
      `${JSON.stringify(rel)} is not a transcript path — fix: pass AttemptEntry.transcript`,
    );
  }
  const t = await readJsonFile(
    join(root, rel),
    Transcript,
    "transcript",
    (msg) => new TranscriptError(msg),
  );
  if (!t) {
    throw new TranscriptError(
      `${join(root, rel)} does not exist — fix: check the .agent-steel folder`,
    );
  }
  return t;
}
