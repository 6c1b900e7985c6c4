/**
 * One kernel's lineage, start to stop: read the AttemptDB (the lineage lock
 * is already held), check the kernel file against it, measure a baseline
 * when the lineage is new, then rounds — profile the current best, write
 * the policy's candidates in parallel, keep the best of those that beat it —
 * until the policy, the token budget or a signal says stop.
 *
 * The kernel file only ever changes in keep.ts: the kept entry is appended
 * first, then the file is replaced atomically (see kernel_file.ts).
 */
import { join } from "node:path";
import type { ChatProvider, TokenBudget } from "../providers/provider.ts";
import { ProviderError } from "../providers/provider.ts";
import { redactor } from "../providers/errors.ts";
import { AttemptDB } from "../attempts/db.ts";
import { bestOf, currentOf, lastRoundOf } from "../attempts/queries.ts";
import { type AttemptEntry, newAttemptId } from "../attempts/schema.ts";
import type { TranscriptCall } from "../attempts/transcripts.ts";
import { attemptEntry } from "../attempts/entry.ts";
import { gainCurve } from "../plot.ts";
import type { Workspace } from "../../registry/workspace.ts";
import type { RunRecord } from "../../store/schema.ts";
import { type CandidateResult, RoundShared, runCandidate } from "./candidate.ts";
import type { EventSink, KernelSummary } from "./events.ts";
import { reconcile, removeStaleTemps } from "./kernel_file.ts";
import { keepBest } from "./keep.ts";
import { type LoopPolicy, nextRoundAllowed, Stop } from "./policy.ts";
import type { CandidateVerdict, Measured, Profile, Steps } from "./steps.ts";

export interface LineageInit {
  kernel: string;
  bucket: string;
  /** The .agent-steel folder. */
  root: string;
  /** The kernel file this lineage improves (the variant the chip uses). */
  kernelPath: string;
  variant: string;
  workspace: Workspace;
  steps: Steps;
  provider: ChatProvider;
  budget: TokenBudget;
  policy: LoopPolicy;
  signal: AbortSignal;
  sink: EventSink;
  /** Key values that must never reach a file. */
  secrets: readonly string[];
  /** Continue a lineage that has entries. */
  resume: boolean;
  /** Start again from the kernel file as it is (a new baseline entry). */
  rebaseline: boolean;
}

export interface LineageResult extends KernelSummary {
  /** What ended a failed lineage, for the exit code. */
  error?: unknown;
}

interface EntryParts {
  id: string;
  parentId: string | null;
  round: number;
  candidate: number;
  retry: number;
  technique: string;
  source: string;
  profile: Record<string, unknown> | null;
  verdict: CandidateVerdict;
  tokens: { input: number; output: number };
  calls: TranscriptCall[];
}

export class Lineage {
  readonly db: AttemptDB;
  entries: AttemptEntry[] = [];
  /** Cuts held keys (whole, other spellings, long pieces) out of a text. */
  readonly scrub: (text: string) => string;

  constructor(readonly init: LineageInit) {
    this.db = new AttemptDB(init.root, init.kernel, init.bucket, { redact: init.secrets });
    this.scrub = redactor(init.secrets);
  }

  get kernel() {
    return this.init.kernel;
  }
  get steps() {
    return this.init.steps;
  }
  get provider() {
    return this.init.provider;
  }
  get policy() {
    return this.init.policy;
  }
  get signal() {
    return this.init.signal;
  }

  /** The entry of an attempt that ended; its transcript is written now. */
  async entryOf(a: EntryParts): Promise<AttemptEntry> {
    const { verdict, reason, bench, correctness, deltaPct, plausible } = a.verdict;
    return await attemptEntry(this.init, {
      ...a,
      verdict,
      reason,
      bench,
      correctness,
      deltaPct,
      plausible,
    });
  }

  /** Append an attempt to the AttemptDB (flushed) and say so. */
  async record(entry: AttemptEntry): Promise<void> {
    await this.db.append(entry);
    this.entries.push(entry);
    if (entry.verdict === "baseline") return;
    this.init.sink.emit({
      event: "attempt",
      kernel: this.kernel,
      round: entry.round,
      candidate: entry.candidate,
      retry: entry.retry,
      id: entry.id,
      verdict: entry.verdict,
      reason: entry.reason,
      medianNs: entry.bench?.medianNs ?? null,
      deltaPct: entry.deltaPct,
      tokens: entry.tokens,
    });
  }

  /** The entries since the latest baseline: what the kernel file's line is measured against. */
  sinceBaseline(): AttemptEntry[] {
    const i = this.entries.findLastIndex((e) => e.verdict === "baseline");
    return i < 0 ? this.entries : this.entries.slice(i);
  }

  /** Speed gain of the best over the latest baseline, %. */
  gainPct(): number | null {
    return gainCurve(this.kernel, this.sinceBaseline())?.finalPct ?? null;
  }

  bestMedianNs(): number | null {
    return bestOf(this.sinceBaseline())?.bench?.medianNs ?? null;
  }
}

export async function runLineage(init: LineageInit): Promise<LineageResult> {
  const l = new Lineage(init);
  let rounds = 0;
  let stop: Stop;
  try {
    const record = await open(l);
    stop = await runRounds(l, record, () => rounds++);
  } catch (e) {
    stop = e instanceof Stop
      ? e
      : init.signal.aborted
      ? new Stop("interrupted", "stopped by a signal")
      : new Stop("error", e instanceof Error ? e.message : String(e), e);
  }
  init.sink.emit({
    event: "stop",
    kernel: l.kernel,
    bucket: init.bucket,
    reason: stop.reason,
    message: stop.message,
  });
  return {
    kernel: l.kernel,
    bucket: init.bucket,
    stop: stop.reason,
    message: stop.message,
    rounds,
    baselineMedianNs: l.sinceBaseline()[0]?.bench?.medianNs ?? null,
    bestMedianNs: l.bestMedianNs(),
    gainPct: l.gainPct(),
    error: stop.error,
  };
}

/** Read the lineage and make the kernel file agree with it; a baseline when needed. */
async function open(l: Lineage): Promise<RunRecord | null> {
  const { init } = l;
  const read = await l.db.read();
  for (const message of read.warnings) {
    init.sink.emit({ event: "warning", kernel: l.kernel, message });
  }
  l.entries = read.entries;
  const lastRound = lastRoundOf(l.entries);
  init.sink.emit({
    event: "lineage",
    kernel: l.kernel,
    bucket: init.bucket,
    attempts: l.entries.length,
    lastRound,
    resumed: l.entries.length > 0 && init.resume,
  });
  await removeStaleTemps(init.kernelPath);
  // Candidates a killed run left staged (optimizer/staging.ts: <staging>/<kernel>/<id>/).
  await Deno.remove(join(init.root, "staging", l.kernel), { recursive: true }).catch(() => {});
  if (l.entries.length === 0) return await baseline(l, 0);
  if (!init.resume && !init.rebaseline) {
    throw new Stop(
      "usage",
      `${l.kernel} (${init.bucket}) already has ${l.entries.length} attempt(s) up to round ${lastRound} — fix: pass --resume to continue it, or --rebaseline to start again from the kernel file as it is`,
    );
  }
  if (init.rebaseline) return await baseline(l, lastRound + 1);
  const r = await reconcile(init.kernelPath, l.entries);
  if (r.kind === "finished-keep") {
    init.sink.emit({
      event: "warning",
      kernel: l.kernel,
      message: `the last keep (${r.entry.id}) was cut short; ${init.kernelPath} now holds it`,
    });
  } else if (r.kind === "differs") {
    const cur = currentOf(l.entries)!;
    throw new Stop(
      "kernel-file-changed",
      `${init.kernelPath} is not the lineage's current source (${cur.id}, round ${cur.round}) — fix: pass --rebaseline to continue from the file as it is, or restore that source (metalbench agent history ${l.kernel} --json)`,
    );
  }
  return null;
}

async function baseline(l: Lineage, round: number): Promise<RunRecord> {
  const m: Measured = await l.steps.measure();
  if (m.correctness.status !== "correct" || !m.bench) {
    throw new Stop(
      "incorrect-baseline",
      `${l.init.kernelPath} is not correct as it is (${m.correctness.status}: ${m.correctness.detail}) — fix: make \`metalbench ${l.kernel}\` pass first; Agent Steel improves a correct kernel`,
    );
  }
  const source = await Deno.readTextFile(l.init.kernelPath);
  const entry: AttemptEntry = {
    ...(await l.entryOf({
      id: newAttemptId(l.kernel, round, 0, 0),
      parentId: null,
      round,
      candidate: 0,
      retry: 0,
      technique: "baseline",
      source,
      profile: null,
      verdict: {
        verdict: "kept",
        reason: "",
        bench: m.bench,
        correctness: m.correctness,
        deltaPct: null,
        plausible: m.plausible,
        record: m.record,
      },
      tokens: { input: 0, output: 0 },
      calls: [],
    })),
    verdict: "baseline",
    reason: round === 0 ? "the kernel as it was" : "re-baselined: the kernel file as it is",
    provider: null,
    model: null,
  };
  await l.record(entry);
  l.init.sink.emit({
    event: "baseline",
    kernel: l.kernel,
    id: entry.id,
    medianNs: m.bench.medianNs,
    simulated: m.bench.simulated,
    correctness: `${m.correctness.status}: ${m.correctness.detail}`,
  });
  return m.record;
}

/** Rounds until the policy, the budget or a signal says stop. */
async function runRounds(l: Lineage, record: RunRecord | null, counted: () => void): Promise<Stop> {
  const { init } = l;
  let run = 0;
  let withoutGain = 0;
  let lastRecord = record;
  for (;;) {
    if (init.signal.aborted) return new Stop("interrupted", "stopped by a signal");
    if (init.budget.exhausted) {
      return new Stop(
        "budget",
        `the token budget is spent (${init.budget.spent} of ${init.budget.max}) — fix: continue later with --resume`,
      );
    }
    const why = nextRoundAllowed(init.policy, run, withoutGain);
    if (why) {
      return new Stop(
        why,
        why === "max-rounds"
          ? `${run} round(s) run`
          : `${withoutGain} round(s) in a row without a gain`,
      );
    }
    const round = lastRoundOf(l.entries) + 1;
    const best = currentOf(l.entries)!;
    init.sink.emit({
      event: "round-start",
      kernel: l.kernel,
      round,
      bestId: best.id,
      bestMedianNs: best.bench?.medianNs ?? null,
    });

    const profile = await profileOrStop(l, best, lastRecord);
    init.sink.emit({
      event: "profile",
      kernel: l.kernel,
      round,
      diagnosis: profile.diagnosis !== null,
      facts: profile.facts,
    });
    const shared = new RoundShared(profile);
    const results = await settleAll(
      Array.from(
        { length: init.policy.candidates },
        (_, c) => runCandidate(l, round, c, best, profile, shared),
      ),
    );
    const kept = await keepBest(l, best, results);
    if (kept) lastRecord = kept;
    run++;
    counted();
    withoutGain = kept ? 0 : withoutGain + 1;
    init.sink.emit({
      event: "round-end",
      kernel: l.kernel,
      round,
      kept: kept !== null,
      bestMedianNs: l.bestMedianNs(),
      gainPct: l.gainPct(),
      tokensSpent: init.budget.spent,
    });
    const stopped = results.find((r) => r.stop)?.stop;
    if (stopped?.reason === "budget") return new Stop("budget", stopped.message);
    if (stopped?.reason === "provider") {
      return new Stop("provider", stopped.error.message, stopped.error);
    }
  }
}

async function profileOrStop(
  l: Lineage,
  best: AttemptEntry,
  record: RunRecord | null,
): Promise<Profile> {
  try {
    return await l.steps.profile(best, record);
  } catch (e) {
    if (!(e instanceof ProviderError) || e.kind === "config" || e.kind === "auth") throw e;
    if (e.kind === "budget") throw new Stop("budget", e.message);
    throw new Stop("provider", e.message, e);
  }
}

/**
 * Wait for every candidate, even when one fails: none may still be writing
 * once the lineage lock is released. Then rethrow the first failure.
 */
async function settleAll(tasks: Promise<CandidateResult>[]): Promise<CandidateResult[]> {
  const settled = await Promise.allSettled(tasks);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<CandidateResult>).value);
}
