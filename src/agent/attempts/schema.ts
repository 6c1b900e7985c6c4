/**
 * One line of the AttemptDB: one attempt at a kernel, kept whole so a
 * lineage can be audited, resumed and plotted from the file alone.
 * The first entry of a lineage is the baseline (round 0).
 */
import { z } from "zod";

export const VERDICTS = [
  "baseline",
  "kept",
  "slower",
  "incorrect",
  "compile-error",
  "fault",
  "rejected",
] as const;
export type Verdict = (typeof VERDICTS)[number];

/** Ids name transcript files, so they stay one safe path component. */
export const ATTEMPT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

const Count = z.number().int().nonnegative();

export const AttemptBench = z.object({
  medianNs: z.number(),
  p10Ns: z.number(),
  p90Ns: z.number(),
  n: z.number(),
  deviceMedianNs: z.number().nullable(),
  clock: z.string(),
  backend: z.string(),
  size: z.string(),
  /** Simulator (CPU) times, never to be read as GPU times. */
  simulated: z.boolean(),
});
export type AttemptBench = z.infer<typeof AttemptBench>;

export const AttemptEntry = z.object({
  version: z.literal(1),
  id: z.string().regex(ATTEMPT_ID, "must be letters, digits, '.', '_' or '-'"),
  parentId: z.string().nullable(),
  kernel: z.string(),
  bucket: z.string(),
  /** 0 = baseline. */
  round: z.number().int().nonnegative(),
  /** Index within the round. */
  candidate: z.number().int().nonnegative(),
  /** 0..4 within a candidate (accuracy/compile retries). */
  retry: z.number().int().nonnegative(),
  /** ISO time. */
  time: z.string(),
  provider: z.string().nullable(),
  model: z.string().nullable(),
  /** The model's 2–3 sentence summary ("baseline" for the first entry). */
  technique: z.string(),
  source: z.string(),
  sourceSha256: z.string().regex(/^[0-9a-f]{64}$/, "must be a lowercase hex SHA-256"),
  /** The profile facts the attempt was written from. */
  profile: z.record(z.string(), z.unknown()).nullable(),
  bench: AttemptBench.nullable(),
  correctness: z.object({ status: z.string(), detail: z.string() }).nullable(),
  verdict: z.enum(VERDICTS),
  reason: z.string(),
  /** Against the best at the time, in % of its time (negative = faster). */
  deltaPct: z.number().nullable(),
  plausible: z.boolean().nullable(),
  tokens: z.object({ input: Count, output: Count }),
  /** Relative to the .agent-steel folder, e.g. "transcripts/<id>.json". */
  transcript: z.string().nullable(),
});
export type AttemptEntry = z.infer<typeof AttemptEntry>;

/** A fresh unique id for an attempt: `${kernel}-r${round}-c${candidate}-t${retry}-${random}`. */
export function newAttemptId(
  kernel: string,
  round: number,
  candidate: number,
  retry = 0,
): string {
  const random = crypto.randomUUID().slice(0, 8);
  return `${kernel}-r${round}-c${candidate}-t${retry}-${random}`;
}
