/**
 * The terminal report of one run, laid out as the seed's, and saying
 * plainly when the backend is the simulator (CPU timings, not GPU).
 */
import type { RunRecord } from "../store/schema.ts";
import { TARGETS } from "../store/schema.ts";

const ms = (ns: number) => {
  const v = ns / 1e6;
  return v >= 100 ? v.toFixed(1) : v >= 1 ? v.toFixed(3) : v.toFixed(4);
};

const fixed = (
  v: number | null,
  d: number,
  unit = "",
) => (v === null ? "—" : `${v.toFixed(d)}${unit}`);

/** What the wall clock spans, on each side (bridge.h, mb_command_run; worker.py, op_time). */
const wallClock = (backend: string) =>
  `host monotonic clock (${
    backend === "metal" ? "CLOCK_UPTIME_RAW" : "CLOCK_MONOTONIC"
  }; MLX: perf_counter_ns), ` +
  "from before the launches are encoded to the return of the wait for the last " +
  "(MLX: its calls, mx.eval and the wait)";

/** What the kernel's device time is, by KernelTiming.deviceTime. */
const DEVICE_TIME: Record<string, string> = {
  "gpu-pass-timestamps":
    "GPU time inside the compute passes (timestamps at each pass's start and end)",
  "gpu-command-buffer":
    "command buffer GPU span (GPUEndTime − GPUStartTime, gaps between passes included)",
  "runner-cpu-time": "CPU time of the simulator runner process",
};

/** The device-time kind of a record (older records: what their backend measured then). */
function deviceTimeOf(r: RunRecord): string {
  const kind = r.kernelTiming?.deviceTime ??
    (r.backend === "sim" ? "runner-cpu-time" : "gpu-command-buffer");
  return DEVICE_TIME[kind] ?? kind;
}

/** Fast math on or off, and what that means on this backend. */
function fastMathLine(r: RunRecord): string {
  if (r.source?.metallib) {
    return "as the offline .metallib was built (xcrun metal: on unless -fno-fast-math)";
  }
  if (!r.settings.fastMath) {
    return "off (IEEE Inf/NaN and precise math, as MLX compiles its kernels)";
  }
  return `on (the problem's fastMath or --fast-math)${
    r.backend === "sim" ? "; the simulator computes IEEE results regardless" : ""
  }`;
}

function scoreCell(v: number | null): string {
  if (v === null) return "—";
  return Math.abs(v) >= 100 ? v.toFixed(2) : v.toFixed(3);
}

/** What the checks were: trials, edge classes, the un-poisoned trial, rotated sets; the seed. */
function checksLine(r: RunRecord): string {
  const t = r.correctness.trials;
  const count = (phase: string) => t.filter((x) => x.phase === phase).length;
  const edges = t.filter((x) => x.phase === "edge").map((x) => x.edge);
  const p = r.settings.protocol;
  const seed = `seed ${r.settings.seed}${p ? ` (${p.seedSource})` : ""}`;
  return [
    `${count("trial")} trials`,
    edges.length ? `${edges.length} edge (${edges.join(", ")})` : "",
    count("unpoisoned") ? `${count("unpoisoned")} on un-poisoned outputs` : "",
    count("after-timing") ? `${count("after-timing")} rotated output sets after timing` : "",
  ].filter(Boolean).join(" + ") + ` · ${seed}`;
}

export function renderReport(r: RunRecord): string {
  const sim = r.backend === "sim" && r.mode !== "mlx";
  const headline = r.scores[r.target];
  const out: string[] = [];
  const row = (k: string, v: string) =>
    out.push(k ? `${k.padEnd(12)}: ${v}` : `${"".padEnd(14)}${v}`);

  out.push(
    `${r.kernel}  target=${r.target} score=${scoreCell(headline)}${
      sim ? "   [SIMULATOR — CPU timings, not GPU]" : ""
    }`,
  );
  if (r.mode !== "mlx") {
    row(
      "device",
      [
        r.device.name,
        r.device.chip && r.device.chip !== r.device.name ? `(${r.device.chip})` : "",
        r.device.gpuCores ? `· ${r.device.gpuCores} GPU cores` : "",
        `· bucket ${r.bucket}`,
      ].filter(Boolean).join(" "),
    );
  }
  if (r.pipelines.length) {
    const p = r.pipelines;
    const tg = Math.max(...p.map((x) => x.staticThreadgroupMemoryLength));
    row(
      "occupancy",
      `tg_mem=${(tg / 1024).toFixed(tg && tg < 1024 ? 2 : 0)}KB max_thr/tg=${
        Math.min(...p.map((x) => x.maxTotalThreadsPerThreadgroup))
      } simd=${p[0].threadExecutionWidth}${p.length > 1 ? ` · ${p.length} kernels` : ""}`,
    );
  }
  if (r.source) {
    row(
      "source",
      `${r.source.path} (${r.source.variant})${
        r.source.metallib ? ` · ran offline ${r.source.metallib}` : ""
      }`,
    );
  }
  if (r.mode !== "mlx" && r.settings.fastMath !== undefined) row("fast math", fastMathLine(r));
  if (r.device.layers?.length) {
    row(
      "layers",
      `Metal ${
        r.device.layers.join(", ")
      } on while timing: every call is slower, so the times are not comparable`,
    );
  }
  row(
    "size",
    `${r.settings.size} (${Object.entries(r.sizes).map(([k, v]) => `${k}=${v}`).join(", ")})`,
  );

  const c = r.correctness;
  if (r.mode === "mlx") {
    row("mode", "MLX reference only (--mlx): no kernel run");
  } else {
    const mark = c.status === "correct"
      ? "✓ correct"
      : c.status === "unchecked"
      ? "? unchecked"
      : `✗ ${c.status}`;
    const errs = c.trials.length
      ? ` max_abs=${c.maxAbsError.toExponential(3)} max_rel=${c.maxRelError.toExponential(3)}` +
        ` within_tol=${(100 * c.withinFraction).toFixed(2)}%`
      : "";
    row("correctness", `${mark}${errs}`);
    row("", c.status === "correct" ? checksLine(r) : c.detail);
    if (c.skipped.length) {
      row(
        "",
        `edge trials left out: ${c.skipped.map((s) => `${s.edge} (${s.reason})`).join("; ")}`,
      );
    }
  }

  const clk = r.settings.clock;
  if (r.kernelTiming || r.mlxTiming) {
    row("clock", clk.description);
    row("", `wall: ${wallClock(r.backend)}`);
  }
  if (r.metrics.speedup !== null) {
    row("speedup", `${r.metrics.speedup.toFixed(2)}× vs MLX (same clock)`);
  }
  if (r.kernelTiming) {
    const w = r.kernelTiming.wall;
    row(
      "kernel",
      `${ms(w.median)} ms (min ${ms(w.min)}, mean ${ms(w.mean)}, p90 ${ms(w.p90)}, sd ${
        ms(w.stddev)
      }, n=${w.n})`,
    );
    const d = r.kernelTiming.device;
    row(
      sim ? "kernel cpu" : "kernel gpu",
      `${ms(d.median)} ms (min ${ms(d.min)}, p90 ${ms(d.p90)}) ${deviceTimeOf(r)}`,
    );
  }
  if (r.mlxTiming) {
    const w = r.mlxTiming.wall;
    row(
      "mlx ref",
      `${ms(w.median)} ms (min ${ms(w.min)}, mean ${ms(w.mean)}, p90 ${
        ms(w.p90)
      }, n=${w.n}) on ${r.mlxTiming.device}`,
    );
  }
  if (r.kernelTiming) {
    const m = r.metrics;
    const pct = (v: number | null) => (v === null ? "" : ` (${v.toFixed(1)}% of peak)`);
    row("compute", `${fixed(m.gflops, 1)} GFLOPS${pct(m.peakComputePct)}${sim ? " [CPU]" : ""}`);
    row("bandwidth", `${fixed(m.gbps, 1)} GB/s${pct(m.peakBandwidthPct)}${sim ? " [CPU]" : ""}`);
    row(
      "arith int.",
      `${m.arithmeticIntensity.toFixed(2)} FLOPs/byte${m.roofline ? ` · ${m.roofline}` : ""}`,
    );
    row("stability", `${fixed(r.scores.stable, 2)} (1 − (p90 − p10)/median)`);
  }
  if (r.plausibility && !r.plausibility.plausible) {
    row("plausible", `✗ ${r.plausibility.detail}: a finding, kept off the leaderboard`);
  }
  for (const note of r.notes) row("note", note);
  if (r.gputrace) {
    row(
      "gputrace",
      r.gputrace.written ? `written to ${r.gputrace.path}` : `not captured: ${r.gputrace.detail}`,
    );
  }
  if (r.coldStart) {
    const cs = r.coldStart;
    row(
      "cold start",
      `compile ${fixed(cs.compileMs, 1, " ms")}, first run ${
        fixed(cs.firstRunMs, 3, " ms")
      }, MLX first call ${fixed(cs.mlxFirstCallMs, 3, " ms")}`,
    );
  }
  if (r.error && r.error.message.trim() !== c.detail) {
    // The whole text (compiler diagnostics, fault report) once, indented.
    out.push(...r.error.message.trim().split("\n").map((l) => `    ${l}`));
  }

  if (r.kernelTiming) {
    out.push("", "target     score", "---------- ----------");
    for (const t of TARGETS) {
      out.push(`${t.padEnd(10)} ${scoreCell(r.scores[t])}${t === r.target ? "  ←" : ""}`);
    }
  }
  return out.join("\n");
}

/** One row per run: the end of a `--all` run, before the summary. */
export function renderTable(runs: RunRecord[]): string {
  const head = [
    "kernel",
    "set",
    "status",
    "speedup",
    "kernel ms",
    "mlx ms",
    "GFLOPS",
    "GB/s",
    "stable",
  ];
  const rows = runs.map((r) => [
    r.kernel,
    r.set,
    r.correctness.status,
    r.metrics.speedup === null ? "—" : `${r.metrics.speedup.toFixed(2)}×`,
    r.kernelTiming ? ms(r.kernelTiming.wall.median) : "—",
    r.mlxTiming ? ms(r.mlxTiming.wall.median) : "—",
    fixed(r.metrics.gflops, 1),
    fixed(r.metrics.gbps, 1),
    fixed(r.scores.stable, 2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  const failures = runs
    .filter((r) => !["correct", "unchecked"].includes(r.correctness.status))
    .map((r) => `  ${r.kernel}: ${r.correctness.detail}`);
  return [
    line(head),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    ...(failures.length ? ["", "failures:", ...failures] : []),
  ]
    .join("\n");
}
