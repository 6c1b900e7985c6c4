/** Test helper: AttemptDB entries as the agent loop would write them. */
import { sha256Hex } from "../src/util/hash.ts";
import { type AttemptEntry, newAttemptId } from "../src/agent/attempts/schema.ts";

export interface EntrySpec {
  kernel?: string;
  bucket?: string;
  round?: number;
  candidate?: number;
  retry?: number;
  verdict?: AttemptEntry["verdict"];
  /** Median time in ms; null for an attempt that was never timed. */
  ms?: number | null;
  size?: string;
  simulated?: boolean;
  technique?: string;
  reason?: string;
  source?: string;
  deltaPct?: number | null;
}

export async function attempt(spec: EntrySpec = {}): Promise<AttemptEntry> {
  const kernel = spec.kernel ?? "relu";
  const round = spec.round ?? 0;
  const candidate = spec.candidate ?? 0;
  const retry = spec.retry ?? 0;
  const verdict = spec.verdict ?? (round === 0 ? "baseline" : "kept");
  const source = spec.source ?? `kernel void ${kernel}_r${round}_c${candidate}() {}`;
  const ms = spec.ms === undefined ? 1 : spec.ms;
  return {
    version: 1,
    id: newAttemptId(kernel, round, candidate, retry),
    parentId: null,
    kernel,
    bucket: spec.bucket ?? "sim-x86_64",
    round,
    candidate,
    retry,
    time: new Date().toISOString(),
    provider: round === 0 ? null : "openai",
    model: round === 0 ? null : "gpt-test",
    technique: spec.technique ?? (round === 0 ? "baseline" : `technique r${round} c${candidate}`),
    source,
    sourceSha256: await sha256Hex(source),
    profile: { gbps: 12.5, roofline: "memory-bound" },
    bench: ms === null ? null : {
      medianNs: ms * 1e6,
      p10Ns: ms * 0.95e6,
      p90Ns: ms * 1.05e6,
      n: 100,
      deviceMedianNs: ms * 0.9e6,
      clock: "batched x16",
      backend: "sim",
      size: spec.size ?? "test",
      simulated: spec.simulated ?? true,
    },
    correctness: ms === null ? null : { status: "correct", detail: "max_err=0" },
    verdict,
    reason: spec.reason ?? (verdict === "baseline" ? "first entry" : verdict),
    deltaPct: spec.deltaPct ?? null,
    plausible: ms === null ? null : true,
    tokens: { input: round === 0 ? 0 : 1200, output: round === 0 ? 0 : 300 },
    transcript: null,
  };
}
