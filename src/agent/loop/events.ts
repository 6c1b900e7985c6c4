/**
 * What the loop tells the world, as events: one progress line each on
 * stderr, one JSON object a line on stdout with --json, and every event in
 * the run's log (.agent-steel/logs/<time>-<pid>.jsonl, each with its
 * progress line as `text`). Every text goes through the redactor first, so
 * a key an error echoed never reaches a terminal or a file.
 *
 * Events (the `event` field; every one also has `time`, ISO):
 *   start       the run: kernels, provider, model, policy, backend, log path
 *   lineage     a kernel's lineage taken: bucket, attempts so far, last round, resumed
 *   lock-wait   --wait: the lineage is held by another process (holderPid)
 *   warning     a line to read (a torn AttemptDB line, a finished keep)
 *   baseline    the kernel as it is, measured: id, medianNs, correctness
 *   round-start a round begins from the current best (bestId, bestMedianNs)
 *   profile     the current best profiled (facts; whether a diagnosis was written)
 *   attempt     one attempt recorded: candidate, retry, verdict, reason, medianNs, deltaPct, tokens
 *   kept        a candidate replaced the kernel file: id, medianNs, deltaPct, gainPct, session
 *   round-end   kept or not, best time, gain over the baseline, tokens spent so far
 *   stop        a lineage ended: reason (max-rounds|patience|budget|interrupted|failed), message
 *   done        the run ended: exitCode, per kernel (status, baseline/best times, gain), tokens
 */
import { join } from "node:path";
import { plainText } from "../attempts/history_view.ts";
import type { LoopPolicy, StopReason } from "./policy.ts";

interface Base {
  kernel: string;
}

export interface KernelSummary {
  kernel: string;
  bucket: string | null;
  stop: StopReason;
  message: string;
  rounds: number;
  baselineMedianNs: number | null;
  bestMedianNs: number | null;
  /** Speed gain of the best over the baseline, %; null without both times. */
  gainPct: number | null;
}

export type LoopEvent =
  | {
    event: "start";
    kernels: string[];
    provider: string;
    model: string;
    backend: string;
    policy: LoopPolicy;
    log: string;
  }
  | Base & {
    event: "lineage";
    bucket: string;
    attempts: number;
    lastRound: number;
    resumed: boolean;
  }
  | Base & { event: "lock-wait"; bucket: string; holderPid: number | null }
  | { event: "warning"; kernel?: string; message: string }
  | Base & {
    event: "baseline";
    id: string;
    medianNs: number | null;
    simulated: boolean;
    correctness: string;
  }
  | Base & { event: "round-start"; round: number; bestId: string; bestMedianNs: number | null }
  | Base & {
    event: "profile";
    round: number;
    diagnosis: boolean;
    facts: Record<string, unknown> | null;
  }
  | Base & {
    event: "attempt";
    round: number;
    candidate: number;
    retry: number;
    id: string;
    verdict: string;
    reason: string;
    medianNs: number | null;
    deltaPct: number | null;
    tokens: { input: number; output: number };
  }
  | Base & {
    event: "kept";
    round: number;
    id: string;
    medianNs: number | null;
    deltaPct: number | null;
    gainPct: number | null;
    kernelPath: string;
    session: string;
  }
  | Base & {
    event: "round-end";
    round: number;
    kept: boolean;
    bestMedianNs: number | null;
    gainPct: number | null;
    tokensSpent: number;
  }
  | Base & { event: "stop"; bucket: string | null; reason: StopReason; message: string }
  | { event: "done"; exitCode: number; kernels: KernelSummary[]; tokensSpent: number };

const ms = (ns: number | null) => ns === null ? "—" : `${(ns / 1e6).toPrecision(4)} ms`;
const pct = (p: number | null) =>
  p === null ? "" : ` (${p > 0 ? "+" : p < 0 ? "−" : "±"}${Math.abs(p).toFixed(1)}%)`;
const gain = (p: number | null) =>
  p === null ? "—" : `${p >= 0 ? "+" : "−"}${Math.abs(p).toFixed(1)}%`;

/** The progress line of an event. LLM-written text is made printable and cut. */
export function progressLine(e: LoopEvent): string {
  switch (e.event) {
    case "start":
      return `agent: ${e.kernels.join(", ")} with ${e.provider}${
        e.model ? ` (${e.model})` : ""
      } on ${e.backend}: up to ${e.policy.maxRounds} round(s), ${e.policy.candidates} candidate(s) each; log ${e.log}`;
    case "lineage":
      return `[${e.kernel}] lineage ${e.bucket}: ${
        e.attempts === 0
          ? "new"
          : `${e.attempts} attempt(s) to round ${e.lastRound}${e.resumed ? ", resuming" : ""}`
      }`;
    case "lock-wait":
      return `[${e.kernel}] waiting: the lineage is held by ${
        e.holderPid === null ? "another process" : `process ${e.holderPid}`
      }`;
    case "warning":
      return `${e.kernel ? `[${e.kernel}] ` : ""}warning: ${e.message}`;
    case "baseline":
      return `[${e.kernel}] baseline ${ms(e.medianNs)}${
        e.simulated ? " (simulated CPU time)" : ""
      }, ${e.correctness}`;
    case "round-start":
      return `[${e.kernel}] round ${e.round}: from ${ms(e.bestMedianNs)}`;
    case "profile":
      return `[${e.kernel}] round ${e.round}: profiled${e.diagnosis ? ", diagnosis written" : ""}`;
    case "attempt":
      return `[${e.kernel}] round ${e.round} candidate ${e.candidate}${
        e.retry ? ` retry ${e.retry}` : ""
      }: ${e.verdict}${e.medianNs !== null ? ` ${ms(e.medianNs)}` : ""}${pct(e.deltaPct)} — ${
        plainText(e.reason, 160)
      }`;
    case "kept":
      return `[${e.kernel}] round ${e.round}: kept ${ms(e.medianNs)}${pct(e.deltaPct)}, ${
        gain(e.gainPct)
      } over the baseline; ${e.kernelPath} replaced; ${e.session}`;
    case "round-end":
      return `[${e.kernel}] round ${e.round} done: ${e.kept ? "improved" : "no gain"}, best ${
        ms(e.bestMedianNs)
      } (${gain(e.gainPct)} over the baseline), ${e.tokensSpent} tokens so far`;
    case "stop":
      return `[${e.kernel}] stopped (${e.reason}): ${plainText(e.message, 300)}`;
    case "done":
      return `agent: done (exit ${e.exitCode}): ` +
        (e.kernels.map((k) => `${k.kernel} ${gain(k.gainPct)} (${k.stop})`).join(", ") ||
          "no kernel") +
        `; ${e.tokensSpent} tokens`;
  }
}

export interface EventSinkOptions {
  /** Print events as JSON lines on stdout. */
  json: boolean;
  /** The run's log file (JSON lines); none when undefined. */
  logPath?: string;
  /** Cuts secrets out of every text written (see providers' redactor). */
  redact: (text: string) => string;
  /** Where lines go (tests capture them); default stdout/stderr. */
  out?: (line: string) => void;
  err?: (line: string) => void;
}

export class EventSink {
  readonly #o: EventSinkOptions;
  readonly #enc = new TextEncoder();

  constructor(o: EventSinkOptions) {
    this.#o = o;
  }

  emit(e: LoopEvent): void {
    const time = new Date().toISOString();
    const text = this.#o.redact(progressLine(e));
    const json = this.#o.redact(JSON.stringify({ time, ...e }));
    (this.#o.err ?? ((l) => Deno.stderr.writeSync(this.#enc.encode(l + "\n"))))(text);
    if (this.#o.json) {
      (this.#o.out ?? ((l) => Deno.stdout.writeSync(this.#enc.encode(l + "\n"))))(json);
    }
    if (this.#o.logPath) {
      const line = this.#o.redact(JSON.stringify({ time, ...e, text })) + "\n";
      try {
        Deno.writeTextFileSync(this.#o.logPath, line, { append: true, create: true });
      } catch {
        // A log that cannot be written must not stop the run; the events still reach the terminal.
      }
    }
  }
}

/** A fresh log path under <root>/logs/ for this run. */
export async function newLogPath(root: string): Promise<string> {
  const dir = join(root, "logs");
  await Deno.mkdir(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  return join(dir, `${stamp}-${Deno.pid}.jsonl`);
}
