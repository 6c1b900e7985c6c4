/**
 * Stage 2: the first Metal kernel, written by the model and put through the
 * benchmark's whole correctness protocol by the harness (the one entry into
 * the benchmark): fresh seeds, edge values, poisoned and un-poisoned
 * outputs, rotated buffers checked after timing, plausibility. The staged
 * problem runs with its MLX reference in a fresh worker each time.
 */
import { type Harness, RUN_DEFAULTS, sourceFromFile } from "../bench/harness.ts";
import type { BackendKind } from "../backend/select.ts";
import { type KernelSource, loadRegistry, type Problem } from "../registry/load.ts";
import type { RunRecord } from "../store/schema.ts";
import { judgeRecord, VerifierError, verifyOptions } from "../agent/verifier/verifier.ts";
import type { Checked } from "./converse.ts";
import { oneLine, WeldFailure } from "./failure.ts";
import type { Staging } from "./staging.ts";

export interface Stage2Value {
  problem: Problem;
  source: string;
  record: RunRecord;
}

/** The options of a correctness run: the verifier's, with the CLI's fewer samples. */
export function checkOptions(backend: BackendKind) {
  const d = RUN_DEFAULTS[backend];
  return verifyOptions(backend, { warmup: d.warmup, iters: d.iters, chunkSamples: undefined });
}

/** A kernel that failed the protocol: why, for the AttemptDB and for the model. */
export type KernelFailure = Extract<Checked<never>, { ok: false }>;

/**
 * Benchmarks `kernel` as `problem`'s kernel through the harness: its record,
 * or why it failed (a reference that fails inside the benchmark ends the
 * weld at stage 2: stage 1 let through what stage 2 cannot use).
 */
export async function benchmarkKernel(
  harness: Harness,
  problem: Problem,
  kernel: () => KernelSource,
  backend: BackendKind,
): Promise<{ record: RunRecord; failure?: KernelFailure }> {
  const [out] = await harness.benchmark(problem, [kernel], checkOptions(backend));
  let failure;
  try {
    failure = judgeRecord(out.record);
  } catch (e) {
    if (e instanceof VerifierError) {
      throw new WeldFailure(2, `the benchmark could not check the kernel: ${oneLine(e.message)}`);
    }
    throw e;
  }
  if (!failure) return { record: out.record };
  return {
    record: out.record,
    failure: {
      ok: false,
      verdict: failure.verdict,
      reason: oneLine(failure.reason),
      feedback: failure.feedback ? `${failure.reason}\n${failure.feedback}` : failure.reason,
    },
  };
}

/** Run `source` as the staged problem's kernel; passed, or why not (fed back to the model). */
export async function checkKernel(
  name: string,
  staging: Staging,
  harness: Harness,
  backend: BackendKind,
  source: string,
): Promise<Checked<Stage2Value>> {
  await staging.writeKernel(source);
  const problem = loadRegistry(staging.workspace).problems.get(name)!;
  const { record, failure } = await benchmarkKernel(
    harness,
    problem,
    sourceFromFile(problem.kernelPath, "flat"),
    backend,
  );
  if (failure) return failure;
  const c = record.correctness;
  return {
    ok: true,
    verdict: "baseline",
    reason: `passed the whole correctness protocol (${c.trials.length} checks: ${
      oneLine(c.detail, 160)
    })`,
    value: { problem, source, record },
  };
}
