/**
 * A whole agent run: one harness for every kernel, each kernel's lineage
 * lock taken (all at once, so a busy one stops the run before any work;
 * with --wait, each when its turn comes), lineages run `parallel` at a time,
 * and whatever happens the locks released and the harness closed.
 *
 * Benchmarks never overlap: the steps of every lineage share one
 * serializer (and the machine-wide timing lock serializes processes); only
 * the LLM calls run side by side.
 */
import { dirname } from "node:path";
import type { ChatProvider, TokenBudget } from "../providers/provider.ts";
import { acquireLineage, LineageBusyError, type LineageLock } from "../attempts/lineage_lock.ts";
import { Harness } from "../../bench/harness.ts";
import type { BackendKind } from "../../backend/select.ts";
import { type Problem, resolveKernelSource } from "../../registry/load.ts";
import type { Workspace } from "../../registry/workspace.ts";
import type { EventSink } from "./events.ts";
import { type LineageResult, runLineage } from "./lineage.ts";
import type { LoopPolicy } from "./policy.ts";
import type { Steps } from "./steps.ts";
import type { SizeName } from "../../registry/problem.ts";

/** How candidates and baselines are benchmarked; undefined fields take the verifier's defaults. */
export interface BenchSettings {
  size?: SizeName;
  warmup?: number;
  iters?: number;
  batch?: number;
  clock: "batched" | "per-launch";
  timeoutMs?: number;
  referenceTimeoutS?: number;
  fastMath: boolean;
}

/** What the steps of one lineage are bound to. */
export interface StepsContext {
  problem: Problem;
  harness: Harness;
  kernelPath: string;
  variant: string;
  bucket: string;
  backend: BackendKind;
  /** The .agent-steel folder. */
  root: string;
  workspace: Workspace;
  provider: ChatProvider;
  policy: LoopPolicy;
  bench: BenchSettings;
  signal: AbortSignal;
  /** Run a benchmark alone (one at a time across every lineage of this run). */
  serialize<T>(fn: () => Promise<T>): Promise<T>;
}

export interface AgentRun {
  problems: Problem[];
  workspace: Workspace;
  /** The .agent-steel folder. */
  root: string;
  backend: BackendKind;
  policy: LoopPolicy;
  /** Budget-wrapped (see withBudget). */
  provider: ChatProvider;
  budget: TokenBudget;
  bench: BenchSettings;
  resume: boolean;
  rebaseline: boolean;
  wait: boolean;
  signal: AbortSignal;
  sink: EventSink;
  secrets: readonly string[];
  makeSteps(ctx: StepsContext): Steps;
}

export type AgentOutcome =
  | { kind: "ran"; results: LineageResult[] }
  | { kind: "busy"; error: LineageBusyError }
  /** A signal came and a kernel call did not return in time: the harness was closed under it. */
  | { kind: "forced" };

/** How long a stop signal waits for the steps to notice before closing under them. */
const STOP_GRACE_MS = 3000;

export async function runAgent(o: AgentRun): Promise<AgentOutcome> {
  const harness = await Harness.open({
    mode: "paired",
    backend: o.backend,
    timeoutMs: o.bench.timeoutMs,
    referenceTimeoutS: o.bench.referenceTimeoutS,
    referenceDirs: o.problems.map((p) => dirname(p.referencePath)),
    signal: o.signal,
  });
  const locks: LineageLock[] = [];
  const releaseAll = async () => {
    for (const l of locks.splice(0)) await l.release().catch(() => {});
  };
  try {
    const bucket = harness.backend!.bucket;
    if (!o.wait) {
      try {
        for (const p of o.problems) {
          locks.push(await acquireLineage(o.root, p.name, bucket, { wait: false }));
        }
      } catch (e) {
        if (e instanceof LineageBusyError) return { kind: "busy", error: e };
        throw e;
      }
    }
    const work = runAll(o, harness, bucket, locks);
    const stopped = new Promise<"stopped">((resolve) => {
      if (o.signal.aborted) resolve("stopped");
      o.signal.addEventListener("abort", () => resolve("stopped"), { once: true });
    });
    const first = await Promise.race([work, stopped]);
    if (first !== "stopped") return { kind: "ran", results: first };
    // Stopped: the steps stop at their next check; a kernel call in progress is waited for a moment.
    const late = await Promise.race([work, sleep(STOP_GRACE_MS)]);
    if (late) return { kind: "ran", results: late };
    await Promise.race([harness.idle(), sleep(2000)]);
    return { kind: "forced" };
  } finally {
    await releaseAll();
    await harness.close();
  }
}

async function runAll(
  o: AgentRun,
  harness: Harness,
  bucket: string,
  locks: LineageLock[],
): Promise<LineageResult[]> {
  let chain: Promise<unknown> = Promise.resolve();
  const serialize = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(() => {
      o.signal.throwIfAborted();
      return fn();
    });
    chain = next.catch(() => {});
    return next;
  };
  return await pool(o.problems, o.policy.parallel, async (problem) => {
    let lock: LineageLock | undefined;
    if (o.wait) {
      lock = await acquireLineage(o.root, problem.name, bucket, {
        wait: true,
        signal: o.signal,
        onWait: (h) =>
          o.sink.emit({ event: "lock-wait", kernel: problem.name, bucket, holderPid: h.pid }),
      });
      locks.push(lock);
    }
    try {
      const source = resolveKernelSource(problem, harness.backend?.chip?.variant);
      const ctx: StepsContext = {
        problem,
        harness,
        kernelPath: source.path,
        variant: source.variant,
        bucket,
        backend: o.backend,
        root: o.root,
        workspace: o.workspace,
        provider: o.provider,
        policy: o.policy,
        bench: o.bench,
        signal: o.signal,
        serialize,
      };
      return await runLineage({
        kernel: problem.name,
        bucket,
        root: o.root,
        kernelPath: source.path,
        variant: source.variant,
        workspace: o.workspace,
        steps: o.makeSteps(ctx),
        provider: o.provider,
        budget: o.budget,
        policy: o.policy,
        signal: o.signal,
        sink: o.sink,
        secrets: o.secrets,
        resume: o.resume,
        rebaseline: o.rebaseline,
      });
    } finally {
      await lock?.release();
    }
  });
}

/** Run `fn` over `items`, at most `n` at a time, results in order. */
async function pool<T, R>(items: T[], n: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
  return out;
}

function sleep(ms: number): Promise<null> {
  return new Promise((resolve) => setTimeout(() => resolve(null), ms));
}
