/**
 * The machine-readable contract beyond the stored files: the events
 * `metalbench … --json` and `metalbench agent … --json` print (one JSON
 * object a line), and the report `--report` writes. Their zod schemas live
 * here, beside the version that a change to any of them must bump.
 */
import { z } from "zod";
import { RunRecord } from "../store/schema.ts";
import type { Summary } from "../bench/session_run.ts";
import type { LoopEvent } from "../agent/loop/events.ts";

/**
 * Version of the event streams and the report. Bump it when an event name,
 * a field or the report's shape changes (the stored files' version is
 * SCHEMA_VERSION in src/store/schema.ts; AttemptDB entries carry their own).
 */
export const EVENTS_VERSION = 1;

const Time = z.string().describe("ISO time the event was written");

/** A session's totals, as `metalbench` prints them at the end. */
export const RunSummary = z.object({
  problems: z.number(),
  correct: z.number(),
  incorrect: z.number(),
  faulted: z.number(),
  compileErrors: z.number(),
  unchecked: z.number(),
  fastP: z.record(z.string(), z.number()),
  geomeanSpeedup: z.number().nullable(),
});

/** `metalbench <kernels…> --json`: start, one run per problem as it finishes, then summary. */
export const BenchEvent = z.discriminatedUnion("event", [
  z.object({
    event: z.literal("start"),
    version: z.literal(EVENTS_VERSION),
    time: Time,
    problems: z.array(z.string()),
    mode: z.enum(["paired", "metal", "mlx"]),
    backend: z.enum(["metal", "sim"]),
    workspace: z.string(),
  }),
  z.object({
    event: z.literal("run"),
    time: Time,
    /** 0-based position of the problem in this run, of `total`. */
    index: z.number().int().nonnegative(),
    total: z.number().int().positive(),
    record: RunRecord,
  }),
  z.object({
    event: z.literal("summary"),
    version: z.literal(EVENTS_VERSION),
    time: Time,
    summary: RunSummary,
    /** The process's exit code (see the README's exit codes). */
    exitCode: z.number().int(),
  }),
]);
export type BenchEvent = z.infer<typeof BenchEvent>;

/** The report `--report` writes (the workspace's `nightly` task): the summary and every record. */
export const BenchReport = z.object({
  version: z.literal(EVENTS_VERSION),
  kind: z.literal("metalbench-report"),
  /** The local date the run started, YYYY-MM-DD (the file's name when --report names a folder). */
  date: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  startedAt: z.string(),
  finishedAt: z.string(),
  metalbench: z.string(),
  workspace: z.string(),
  mode: z.enum(["paired", "metal", "mlx"]),
  backend: z.enum(["metal", "sim"]),
  exitCode: z.number().int(),
  summary: RunSummary,
  records: z.array(RunRecord),
});
export type BenchReport = z.infer<typeof BenchReport>;

const StopReason = z.enum([
  "max-rounds",
  "patience",
  "budget",
  "interrupted",
  "usage",
  "kernel-file-changed",
  "incorrect-baseline",
  "provider",
  "error",
]);

const LoopPolicy = z.object({
  maxRounds: z.number(),
  patience: z.number(),
  candidates: z.number(),
  retries: z.number(),
  parallel: z.number(),
  diagnosis: z.boolean(),
  maxTokens: z.number(),
  maxTokensTotal: z.number().optional(),
});

const Ns = z.number().nullable();
const Kernel = { time: Time, kernel: z.string() };

/** `metalbench agent … --json`: the loop's events (src/agent/loop/events.ts names them). */
export const AgentEvent = z.discriminatedUnion("event", [
  z.object({
    event: z.literal("start"),
    time: Time,
    kernels: z.array(z.string()),
    provider: z.string(),
    model: z.string(),
    backend: z.string(),
    policy: LoopPolicy,
    log: z.string(),
  }),
  z.object({
    ...Kernel,
    event: z.literal("lineage"),
    bucket: z.string(),
    attempts: z.number(),
    lastRound: z.number(),
    resumed: z.boolean(),
  }),
  z.object({
    ...Kernel,
    event: z.literal("lock-wait"),
    bucket: z.string(),
    holderPid: z.number().nullable(),
  }),
  z.object({
    event: z.literal("warning"),
    time: Time,
    kernel: z.string().optional(),
    message: z.string(),
  }),
  z.object({
    ...Kernel,
    event: z.literal("baseline"),
    id: z.string(),
    medianNs: Ns,
    simulated: z.boolean(),
    correctness: z.string(),
  }),
  z.object({
    ...Kernel,
    event: z.literal("round-start"),
    round: z.number(),
    bestId: z.string(),
    bestMedianNs: Ns,
  }),
  z.object({
    ...Kernel,
    event: z.literal("profile"),
    round: z.number(),
    diagnosis: z.boolean(),
    facts: z.record(z.string(), z.unknown()).nullable(),
  }),
  z.object({
    ...Kernel,
    event: z.literal("attempt"),
    round: z.number(),
    candidate: z.number(),
    retry: z.number(),
    id: z.string(),
    verdict: z.string(),
    reason: z.string(),
    medianNs: Ns,
    deltaPct: z.number().nullable(),
    tokens: z.object({ input: z.number(), output: z.number() }),
  }),
  z.object({
    ...Kernel,
    event: z.literal("kept"),
    round: z.number(),
    id: z.string(),
    medianNs: Ns,
    deltaPct: z.number().nullable(),
    gainPct: z.number().nullable(),
    kernelPath: z.string(),
    session: z.string(),
  }),
  z.object({
    ...Kernel,
    event: z.literal("round-end"),
    round: z.number(),
    kept: z.boolean(),
    bestMedianNs: Ns,
    gainPct: z.number().nullable(),
    tokensSpent: z.number(),
  }),
  z.object({
    ...Kernel,
    event: z.literal("stop"),
    bucket: z.string().nullable(),
    reason: StopReason,
    message: z.string(),
  }),
  z.object({
    event: z.literal("done"),
    time: Time,
    exitCode: z.number(),
    kernels: z.array(z.object({
      kernel: z.string(),
      bucket: z.string().nullable(),
      stop: StopReason,
      message: z.string(),
      rounds: z.number(),
      baselineMedianNs: Ns,
      bestMedianNs: Ns,
      gainPct: z.number().nullable(),
    })),
    tokensSpent: z.number(),
  }),
]);
export type AgentEvent = z.infer<typeof AgentEvent>;

// The schemas above must describe what the program writes: these fail `deno check`
// when an event or the summary changes on one side only.
type WithoutTime<T> = T extends unknown ? Omit<T, "time"> : never;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _agentEventsInStep: Same<WithoutTime<AgentEvent>, LoopEvent> = true;
const _summaryInStep: Same<z.infer<typeof RunSummary>, Summary> = true;
void _agentEventsInStep;
void _summaryInStep;

/** What a `--json` stream held: every event, the records, and the summary if the run finished. */
export interface BenchStream {
  events: BenchEvent[];
  records: RunRecord[];
  /** Null when the run did not finish (killed, interrupted, the GPU lost). */
  summary: z.infer<typeof RunSummary> | null;
  exitCode: number | null;
}

/**
 * Parse the stdout of `metalbench … --json`. Every complete line must be a
 * valid event; an unterminated last line (a run killed mid-write) is ignored.
 */
export function parseBenchStream(text: string): BenchStream {
  const lines = text.split("\n");
  const torn = lines.pop(); // "" when the text ends with a newline
  const events = lines.filter((l) => l.trim()).map((l, i) => {
    try {
      return BenchEvent.parse(JSON.parse(l));
    } catch (e) {
      throw new Error(`line ${i + 1} of the --json stream is not a MetalBench event: ${e}`);
    }
  });
  if (torn?.trim()) {
    try {
      events.push(BenchEvent.parse(JSON.parse(torn)));
    } catch { /* a line cut short by a killed run */ }
  }
  const last = events.findLast((e) => e.event === "summary");
  return {
    events,
    records: events.flatMap((e) => e.event === "run" ? [e.record] : []),
    summary: last?.event === "summary" ? last.summary : null,
    exitCode: last?.event === "summary" ? last.exitCode : null,
  };
}
