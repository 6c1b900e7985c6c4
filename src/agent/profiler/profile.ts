/**
 * The profiler's first half: deterministic facts about one run of a kernel,
 * taken from its run record (and one measurement of an empty dispatch), so
 * the model reasons from numbers rather than guesses. The LLM's diagnosis
 * of these facts is diagnose.ts; the empty dispatch is launch_overhead.ts.
 *
 * Nothing here is invented: a figure the record does not hold (a chip
 * outside the table, the simulator's missing peaks) is null, and a note
 * says what the numbers mean where they could mislead (simulated CPU times).
 */
import type { ChipInfo } from "../../backend/chip.ts";
import type { SizedProblem } from "../../registry/problem.ts";
import { stability as stabilityOf } from "../../bench/stats.ts";
import type { RunRecord } from "../../store/schema.ts";

export { diagnose } from "./diagnose.ts";
export { measureLaunchOverhead } from "./launch_overhead.ts";

export interface DispatchFacts {
  function: string;
  grid: number[];
  threadgroup: number[];
  mode: "threads" | "threadgroups";
  /** Static (declared in the kernel) plus the registry's dynamic threadgroup memory. */
  threadgroupMemoryBytes: number | null;
  executionWidth: number | null;
  maxThreadsPerThreadgroup: number | null;
}

/** A type (not an interface), so it fits the AttemptDB's `Record<string, unknown>` profile field. */
export type ProfileFacts = {
  backend: "metal" | "sim";
  simulated: boolean;
  chip: string | null;
  /** The clock's per-launch time (the like-for-like figure), median. */
  medianNs: number;
  /** GPU time per launch (the simulator: its runner's CPU time). */
  deviceMedianNs: number | null;
  /** 1 − (p90 − p10) / median of the clock's samples, in [0, 1]. */
  stability: number | null;
  gbps: number | null;
  gflops: number | null;
  pctPeakBandwidth: number | null;
  pctPeakCompute: number | null;
  /** FLOPs per byte of the registry's counts. */
  arithmeticIntensity: number;
  /** The chip's peak GFLOPS / peak GB/s: below it a kernel is memory-bound. */
  ridgePoint: number | null;
  roofline: "memory-bound" | "compute-bound" | null;
  /** Of the first dispatch (see `dispatches` for all). */
  threadsPerThreadgroup: number[];
  executionWidth: number | null;
  threadgroupMemoryBytes: number | null;
  /** An empty dispatch, timed by the same clock. */
  launchOverheadNs: number | null;
  /** launchOverheadNs / medianNs, at most 1. */
  overheadShare: number | null;
  correctness: { status: string; detail: string };
  notes: string[];
  /** Every dispatch, when the problem was given. */
  dispatches?: DispatchFacts[];
  /** The clock, as the record describes it. */
  clock?: string;
  /** Samples behind medianNs. */
  samples?: number;
};

const clampShare = (v: number) => Math.min(1, Math.max(0, v));

function dispatchFacts(record: RunRecord, problem: SizedProblem | undefined): DispatchFacts[] {
  if (!problem) {
    return record.pipelines.map((p) => ({
      function: p.function,
      grid: [],
      threadgroup: [],
      mode: "threads",
      threadgroupMemoryBytes: p.staticThreadgroupMemoryLength,
      executionWidth: p.threadExecutionWidth,
      maxThreadsPerThreadgroup: p.maxTotalThreadsPerThreadgroup,
    }));
  }
  return problem.dispatches.map((d) => {
    const p = record.pipelines.find((x) => x.function === d.function);
    const dynamic = d.threadgroupMemory.reduce((a, m) => a + m.bytes, 0);
    return {
      function: d.function,
      grid: [...d.grid],
      threadgroup: [...d.threadgroup],
      mode: d.mode,
      threadgroupMemoryBytes: p ? p.staticThreadgroupMemoryLength + dynamic : null,
      executionWidth: p?.threadExecutionWidth ?? null,
      maxThreadsPerThreadgroup: p?.maxTotalThreadsPerThreadgroup ?? null,
    };
  });
}

/**
 * The facts of one run. `chip` gives the peaks (null on the simulator);
 * `problem` (the sized problem the run used) adds the grid and threadgroup
 * of each dispatch, which the record alone does not hold.
 */
export function profileFacts(
  record: RunRecord,
  chip: ChipInfo | null,
  launchOverheadNs: number | null,
  problem?: SizedProblem,
): ProfileFacts {
  const kt = record.kernelTiming;
  const simulated = record.backend === "sim";
  const m = record.metrics;
  const ridge = chip ? chip.peakGflops / chip.peakGBps : null;
  const dispatches = dispatchFacts(record, problem);
  const first = dispatches[0];
  const medianNs = kt?.wall.median ?? NaN;
  const overheadShare = launchOverheadNs !== null && kt && medianNs > 0
    ? clampShare(launchOverheadNs / medianNs)
    : null;
  const stability = kt ? stabilityOf(kt.wall) : null;

  const notes: string[] = [];
  if (simulated) {
    notes.push(
      "simulated CPU times (MetalBench's MSL simulator, not a GPU): relative comparisons only; GB/s and GFLOPS are the CPU's, and there is no roofline",
    );
  } else if (!chip) {
    notes.push("this chip is not in the chip table: no peak figures, no roofline class");
  }
  if (!kt) notes.push("the kernel was not timed: no time, bandwidth or throughput");
  if (record.correctness.status !== "correct") {
    notes.push(`correctness ${record.correctness.status}: ${record.correctness.detail}`);
  }
  if (record.plausibility && !record.plausibility.plausible) {
    notes.push(`implausible time: ${record.plausibility.detail}`);
  }
  if (stability !== null && stability < 0.9 && kt) {
    notes.push(
      `noisy timing: the middle 80% of ${kt.wall.n} samples spread over ${
        ((1 - stability) * 100).toFixed(0)
      }% of the median`,
    );
  }
  if (overheadShare !== null && overheadShare >= 0.5) {
    notes.push(
      `an empty dispatch takes ${
        (overheadShare * 100).toFixed(0)
      }% of this kernel's time: launch overhead, not the kernel's work, dominates at this size`,
    );
  }
  if (dispatches.length > 1) {
    notes.push(
      `${dispatches.length} dispatches per launch (${
        dispatches.map((d) => d.function).join(", ")
      }); the time covers them all`,
    );
  }
  notes.push(...record.notes);

  return {
    backend: record.backend,
    simulated,
    chip: record.device.chip,
    medianNs,
    deviceMedianNs: kt?.device.median ?? null,
    stability,
    gbps: m.gbps,
    gflops: m.gflops,
    pctPeakBandwidth: chip && m.gbps !== null ? (100 * m.gbps) / chip.peakGBps : null,
    pctPeakCompute: chip && m.gflops !== null ? (100 * m.gflops) / chip.peakGflops : null,
    arithmeticIntensity: m.arithmeticIntensity,
    ridgePoint: ridge,
    roofline: ridge === null
      ? null
      : m.arithmeticIntensity < ridge
      ? "memory-bound"
      : "compute-bound",
    threadsPerThreadgroup: first?.threadgroup ?? [],
    executionWidth: first?.executionWidth ?? null,
    threadgroupMemoryBytes: first?.threadgroupMemoryBytes ?? null,
    launchOverheadNs,
    overheadShare,
    correctness: { status: record.correctness.status, detail: record.correctness.detail },
    notes,
    dispatches,
    clock: record.settings.clock.description,
    samples: kt?.wall.n,
  };
}

/** A time in the unit that reads best: 850 ns, 12.3 µs, 4.56 ms, 1.20 s. */
export function formatNs(ns: number | null): string {
  if (ns === null || !Number.isFinite(ns)) return "unknown";
  const a = Math.abs(ns);
  if (a < 1e3) return `${ns.toFixed(0)} ns`;
  if (a < 1e6) return `${(ns / 1e3).toPrecision(3)} µs`;
  if (a < 1e9) return `${(ns / 1e6).toPrecision(3)} ms`;
  return `${(ns / 1e9).toPrecision(3)} s`;
}

const num = (v: number | null, digits: number, unit = "") =>
  v === null || !Number.isFinite(v) ? "unknown" : `${v.toFixed(digits)}${unit}`;

/** The facts as the text block the prompts carry: one fact a line, units spelled out. */
export function renderFacts(f: ProfileFacts): string {
  const sim = f.simulated ? " (simulated CPU time)" : "";
  const lines = [
    `backend: ${
      f.simulated
        ? "MSL simulator on the CPU (not a GPU)"
        : `Metal GPU${f.chip ? `, ${f.chip}` : ""}`
    }`,
    `time per launch: ${formatNs(f.medianNs)} median${sim}${
      f.samples !== undefined ? ` over ${f.samples} samples` : ""
    }${f.clock ? `; clock: ${f.clock}` : ""}`,
    `device time per launch: ${formatNs(f.deviceMedianNs)}${
      f.simulated ? " (the simulator runner's CPU time)" : " (GPU timestamps)"
    }`,
    `stability: ${num(f.stability, 2)} (1 = every sample equal; 1 − (p90 − p10)/median)`,
    `achieved bandwidth: ${num(f.gbps, 2, " GB/s")}${
      f.pctPeakBandwidth !== null ? ` = ${f.pctPeakBandwidth.toFixed(1)}% of peak` : ""
    }`,
    `achieved compute: ${num(f.gflops, 2, " GFLOPS")}${
      f.pctPeakCompute !== null ? ` = ${f.pctPeakCompute.toFixed(1)}% of FP32 peak` : ""
    }`,
    `arithmetic intensity: ${num(f.arithmeticIntensity, 3)} FLOP/byte${
      f.ridgePoint !== null ? `; the chip's ridge point: ${f.ridgePoint.toFixed(1)} FLOP/byte` : ""
    }`,
    `roofline: ${f.roofline ?? "unknown (no chip peaks)"}`,
  ];
  const ds = f.dispatches?.length ? f.dispatches : null;
  if (ds) {
    for (const d of ds) {
      lines.push(
        `dispatch ${d.function}: ${
          d.grid.length ? `grid ${d.grid.join("×")} ${d.mode}, ` : ""
        }threadgroup ${
          d.threadgroup.length ? d.threadgroup.join("×") : "unknown"
        }, execution width ${num(d.executionWidth, 0)}, max threads per threadgroup ${
          num(d.maxThreadsPerThreadgroup, 0)
        }, threadgroup memory ${num(d.threadgroupMemoryBytes, 0, " bytes")}`,
      );
    }
  } else {
    lines.push(
      `threads per threadgroup: ${
        f.threadsPerThreadgroup.length ? f.threadsPerThreadgroup.join("×") : "unknown"
      }, execution width ${num(f.executionWidth, 0)}, threadgroup memory ${
        num(f.threadgroupMemoryBytes, 0, " bytes")
      }`,
    );
  }
  lines.push(
    `launch overhead (an empty dispatch, same clock): ${formatNs(f.launchOverheadNs)}${
      f.overheadShare !== null
        ? ` = ${(f.overheadShare * 100).toFixed(0)}% of the kernel's time`
        : ""
    }`,
    `correctness: ${f.correctness.status} (${f.correctness.detail})`,
  );
  for (const n of f.notes) lines.push(`note: ${n}`);
  return lines.map((l) => `- ${l}`).join("\n");
}
