/**
 * The steps a round is made of, as the orchestrator sees them: measure,
 * profile, ask, parse, stage, verify. The orchestrator only sequences them;
 * what each does lives in profiler/, optimizer/ and verifier/ (wired in
 * agent_steps.ts). Steps are made per lineage, bound to its problem, kernel
 * file, harness and provider.
 */
import type { ChatRequest } from "../providers/provider.ts";
import type { AttemptBench, AttemptEntry, Verdict } from "../attempts/schema.ts";
import type { TranscriptCall } from "../attempts/transcripts.ts";
import type { RunRecord } from "../../store/schema.ts";

/** A benchmark of one source (the baseline, or the best when its record is not at hand). */
export interface Measured {
  bench: AttemptBench | null;
  correctness: { status: string; detail: string };
  plausible: boolean | null;
  record: RunRecord;
}

export interface Profile {
  /** The deterministic facts, as recorded with each attempt written from them. */
  facts: Record<string, unknown> | null;
  /** The model's 2–3 paragraph diagnosis; null with --no-diagnosis. */
  diagnosis: string | null;
  /** The diagnosis call, for a transcript. */
  calls: TranscriptCall[];
  tokens: { input: number; output: number };
}

/** A reply read: a candidate, or why it was refused (fed back to the model). */
export type Draft =
  | { ok: true; source: string; technique: string }
  | { ok: false; reason: string; technique: string };

export type CandidateVerdictKind = Exclude<Verdict, "baseline">;

export interface CandidateVerdict {
  verdict: CandidateVerdictKind;
  /** One line: why (the keep rule's numbers, the compile error, the first wrong element…). */
  reason: string;
  /** More than the line, for the model when it is fed back (a whole compile log, say). */
  feedback?: string;
  bench: AttemptBench | null;
  correctness: { status: string; detail: string } | null;
  /** Against the best measured in the same run, % (negative = faster). */
  deltaPct: number | null;
  plausible: boolean | null;
  /** The candidate's run (for session.json when kept). */
  record: RunRecord | null;
}

export interface RewriteContext {
  round: number;
  candidate: number;
  /** The kernel file's source now (the lineage's latest kept or baseline entry). */
  best: AttemptEntry;
  profile: Profile;
  /** The whole lineage so far (top kept, failed techniques and reasons come from it). */
  entries: AttemptEntry[];
}

export interface Steps {
  /** Benchmark the kernel file as it is. */
  measure(): Promise<Measured>;
  /** Facts about the current best (and one diagnosis call unless --no-diagnosis). */
  profile(best: AttemptEntry, record: RunRecord | null): Promise<Profile>;
  /** The first request of a candidate. */
  request(ctx: RewriteContext): Promise<ChatRequest>;
  /** The next request after a failed attempt: the reply and what went wrong, fed back. */
  retry(previous: ChatRequest, reply: string, failure: CandidateVerdict): ChatRequest;
  parse(reply: string): Draft;
  /** Write a candidate under .agent-steel/staging/ (never over the kernel); its path. */
  stage(source: string, attemptId: string): Promise<string>;
  /** Remove a staged candidate once verified (its source is in the AttemptDB). */
  discard(stagedPath: string): Promise<void>;
  /** Benchmark the staged candidate against the kernel file, interleaved, and judge it. */
  verify(candidatePath: string): Promise<CandidateVerdict>;
}
