/** Test helper: a run record as the benchmark would write it (default protocol). */
import type { RunRecord } from "../src/store/schema.ts";
import { summarize } from "../src/bench/stats.ts";
import { PROTOCOL_VERSION } from "../src/store/protocol.ts";
import { EDGE_CLASSES } from "../src/registry/schema.ts";

export function fakeRun(
  kernel: string,
  medianMs: number,
  overrides: Partial<RunRecord> = {},
): RunRecord {
  const ns = [medianMs * 1e6];
  const timing = { wall: summarize(ns), device: summarize(ns), wallNs: ns, deviceNs: ns };
  return {
    version: 1,
    id: crypto.randomUUID(),
    kernel,
    set: "common",
    timestamp: new Date().toISOString(),
    metalbench: "test",
    mode: "paired",
    backend: "sim",
    bucket: "sim-x86_64",
    device: { name: "sim", timer: "cpu-monotonic", gpuCores: 0, chip: null },
    sizes: { N: 4 },
    settings: {
      size: "test",
      seed: 0,
      trials: 3,
      warmup: 1,
      iters: 1,
      clock: { mode: "batched", batch: 5, description: "batched" },
      protocol: {
        version: PROTOCOL_VERSION,
        seedSource: "random",
        edgeClasses: [...EDGE_CLASSES],
        rotationSets: 2,
        unpoisonedTrial: true,
      },
    },
    source: {
      path: `/k/${kernel}.metal`,
      variant: "flat",
      sha256: "ab".repeat(32),
      metallib: null,
    },
    pipelines: [],
    correctness: {
      status: "correct",
      detail: "ok",
      tolerance: { rtol: 0, atol: 0 },
      trials: [],
      maxAbsError: 0,
      maxRelError: 0,
      withinFraction: 1,
      skipped: [],
    },
    kernelTiming: timing,
    mlxTiming: null,
    coldStart: null,
    metrics: {
      speedup: null,
      gflops: null,
      gbps: null,
      arithmeticIntensity: 0,
      flops: 0,
      bytes: 0,
      peakBandwidthPct: null,
      peakComputePct: null,
      roofline: null,
    },
    scores: { speed: null, compute: null, memory: null, stable: 1, balanced: null },
    target: "speed",
    gputrace: null,
    plausibility: { plausible: true, detail: "test" },
    notes: [],
    error: null,
    ...overrides,
  };
}
