/**
 * The loop's steps wired to the modules that do them: the profiler
 * (facts, launch overhead, diagnosis), the optimizer (prompts, reply,
 * staging) and the verifier (candidate against the best, the keep rule).
 * Anything that runs a benchmark goes through ctx.serialize, so benchmarks
 * never overlap while LLM calls do.
 */
import { dirname, join } from "node:path";
import { clockOf, type Harness, RUN_DEFAULTS, sourceFromFile } from "../../bench/harness.ts";
import { type Problem, sized } from "../../registry/load.ts";
import type { RunRecord } from "../../store/schema.ts";
import { ProviderError } from "../providers/provider.ts";
import type { AttemptBench, AttemptEntry } from "../attempts/schema.ts";
import type { TranscriptCall } from "../attempts/transcripts.ts";
import { loadPrompts, type PromptSet } from "../prompts.ts";
import { diagnose } from "../profiler/diagnose.ts";
import { measureLaunchOverhead } from "../profiler/launch_overhead.ts";
import { type ProfileFacts, profileFacts } from "../profiler/profile.ts";
import {
  buildRetryRequest,
  buildRewriteRequest,
  chipFactsText,
  functionNamesOf,
  historyOf,
  parseRewriteReply,
  registryEntryText,
  stageCandidate,
} from "../optimizer/optimizer.ts";
import { verify, verifyOptions } from "../verifier/verifier.ts";
import type { StepsContext } from "./run.ts";
import type { CandidateVerdict, Measured, Profile, Steps } from "./steps.ts";

/** The harness's options for one benchmark (its own type, not run.ts's). */
type BenchOptions = Parameters<Harness["benchmark"]>[2];

/** The problem as this run compiles it: --fast-math turns its fast math on. */
function asCompiled(problem: Problem, fastMath: boolean): Problem {
  if (!fastMath || problem.entry.fastMath) return problem;
  return { ...problem, entry: { ...problem.entry, fastMath: true } };
}

/** The AttemptDB's summary of a run's kernel timing. */
export function benchOf(record: RunRecord): AttemptBench | null {
  const kt = record.kernelTiming;
  if (!kt) return null;
  const c = record.settings.clock;
  return {
    medianNs: kt.wall.median,
    p10Ns: kt.wall.p10,
    p90Ns: kt.wall.p90,
    n: kt.wall.n,
    deviceMedianNs: kt.device.median,
    clock: `${c.mode} x${c.batch}`,
    backend: record.backend,
    size: record.settings.size,
    simulated: record.backend === "sim",
  };
}

export function agentSteps(ctx: StepsContext): Steps {
  const problem = asCompiled(ctx.problem, ctx.bench.fastMath);
  const kind = ctx.backend;
  const size = ctx.bench.size ?? RUN_DEFAULTS[kind].size;
  const clock = clockOf(ctx.bench.clock, ctx.bench.batch ?? RUN_DEFAULTS[kind].batch, kind);
  const names = functionNamesOf(problem);
  const stagingDir = join(ctx.root, "staging");
  let prompts: Promise<PromptSet> | null = null;
  let loadedPrompts: PromptSet | null = null;
  const promptSet = () =>
    prompts ??= loadPrompts(ctx.workspace.root).then((p) => (loadedPrompts = p));
  let reference: Promise<string> | null = null;
  const referenceText = () => (reference ??= Deno.readTextFile(problem.referencePath));

  // The baseline and every candidate are measured alike: the verifier's defaults, then the flags.
  const benchOptions = (): BenchOptions =>
    verifyOptions(kind, {
      size,
      clock,
      ...(ctx.bench.warmup !== undefined ? { warmup: ctx.bench.warmup } : {}),
      ...(ctx.bench.iters !== undefined ? { iters: ctx.bench.iters } : {}),
    });

  const measure = async (): Promise<Measured> => {
    const [out] = await ctx.serialize(() =>
      ctx.harness.benchmark(problem, [sourceFromFile(ctx.kernelPath, ctx.variant)], benchOptions())
    );
    ctx.harness.prewarm(); // the next benchmark's worker starts while the model writes

    const r = out.record;
    return {
      bench: benchOf(r),
      correctness: { status: r.correctness.status, detail: r.correctness.detail },
      plausible: r.plausibility?.plausible ?? null,
      record: r,
    };
  };

  return {
    measure,

    async profile(best: AttemptEntry, record: RunRecord | null): Promise<Profile> {
      const run = record ?? (await measure()).record;
      const overhead = await ctx.serialize(() =>
        measureLaunchOverhead(ctx.harness, { clock, warmup: 2, iters: 20 })
      );
      const facts = profileFacts(
        run,
        ctx.harness.backend?.chip ?? null,
        overhead,
        sized(problem, size),
      );
      const calls: TranscriptCall[] = [];
      let diagnosis: string | null = null;
      if (ctx.policy.diagnosis) {
        try {
          diagnosis = (await diagnose(ctx.provider, facts, {
            source: best.source,
            reference: await referenceText(),
            registryEntry: registryEntryText(problem, size),
            kernel: problem.name,
            functionNames: names,
          }, {
            maxTokens: ctx.policy.maxTokens,
            signal: ctx.signal,
            prompts: await promptSet(),
            onCall: (c) => calls.push(c),
          })).text;
        } catch (e) {
          // A reply with no text: the round goes on from the facts alone.
          if (!(e instanceof ProviderError && e.kind === "bad-reply")) throw e;
        }
      }
      const tokens = calls.reduce((t, c) => {
        const u = c.usage as { inputTokens?: number; outputTokens?: number } | undefined;
        return {
          input: t.input + (u?.inputTokens ?? 0),
          output: t.output + (u?.outputTokens ?? 0),
        };
      }, { input: 0, output: 0 });
      return { facts: facts as unknown as Record<string, unknown>, diagnosis, calls, tokens };
    },

    async request(r) {
      return buildRewriteRequest(
        {
          kernel: problem.name,
          diagnosis: r.profile.diagnosis,
          facts: r.profile.facts as unknown as ProfileFacts,
          bestSource: r.best.source,
          referenceSource: await referenceText(),
          registryEntry: registryEntryText(problem, size),
          chipFacts: chipFactsText(ctx.harness.backend),
          history: historyOf(r.entries),
          feedback: null,
          functionNames: names,
        },
        await promptSet(),
        ctx.policy.maxTokens,
      );
    },

    retry(previous, reply, failure) {
      // Prompts are loaded by the first request, before any retry.
      return buildRetryRequest(
        previous,
        reply.trim() ? reply : "(no reply)",
        failure.feedback ?? failure.reason,
        loadedPrompts!,
        { kernel: problem.name, functionNames: names },
      );
    },

    parse(reply) {
      const p = parseRewriteReply(reply);
      return p.ok ? p : { ...p, technique: "" };
    },

    stage(source, attemptId) {
      return stageCandidate(stagingDir, problem.name, attemptId, source, [ctx.kernelPath]);
    },

    async discard(path) {
      await Deno.remove(dirname(path), { recursive: true }).catch(() => {});
    },

    async verify(candidatePath): Promise<CandidateVerdict> {
      const v = await ctx.serialize(() =>
        verify(ctx.harness, problem, candidatePath, ctx.kernelPath, benchOptions())
      );
      ctx.harness.prewarm();
      const c = v.candidate;
      return {
        verdict: v.verdict,
        reason: v.reason,
        feedback: v.feedback,
        bench: benchOf(c),
        correctness: { status: c.correctness.status, detail: c.correctness.detail },
        deltaPct: v.deltaPct,
        plausible: c.plausibility?.plausible ?? null,
        record: c,
      };
    },
  };
}
