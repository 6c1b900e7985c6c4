/**
 * The pieces of a rewrite request that come from elsewhere in the program,
 * rendered once here: the registry entry as the harness dispatches it, the
 * chip's facts, and the lineage's history from the AttemptDB.
 */
import type { Backend } from "../../backend/select.ts";
import { type Problem, sized } from "../../registry/load.ts";
import type { SizeName } from "../../registry/problem.ts";
import { failedTechniquesOf, topNOf } from "../attempts/queries.ts";
import type { AttemptEntry } from "../attempts/schema.ts";

/**
 * The registry entry as JSON: the expanded entry (bindings, grid and
 * threadgroup as expressions, both sizes), and the dispatches resolved at
 * the size the runs use.
 */
export function registryEntryText(problem: Problem, size: SizeName): string {
  const sp = sized(problem, size);
  const tensor = (name: string) =>
    [...sp.inputs, ...sp.outputs, ...sp.intermediates].find((t) => t.name === name);
  return compactJson(
    {
      name: problem.name,
      set: problem.set,
      description: problem.description,
      entry: problem.entry,
      resolved: {
        size,
        sizes: sp.sizes,
        inputs: sp.inputs.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype })),
        outputs: sp.outputs.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype })),
        intermediates: sp.intermediates.map((t) => ({
          name: t.name,
          shape: t.shape,
          dtype: t.dtype,
        })),
        dispatches: sp.dispatches.map((d) => ({
          function: d.function,
          buffers: d.buffers.map((b) => ({
            index: b.index,
            tensor: b.tensor,
            dtype: tensor(b.tensor)?.dtype,
            elements: tensor(b.tensor)?.numel,
          })),
          scalars: d.scalars,
          threadgroupMemory: d.threadgroupMemory,
          grid: d.grid,
          threadgroup: d.threadgroup,
          mode: d.mode === "threads"
            ? "dispatchThreads (grid counts threads; the last group may be partial)"
            : "dispatchThreadgroups (grid counts threadgroups)",
          constants: d.constants,
        })),
        tolerance: sp.tolerance,
        fastMath: sp.fastMath,
        flops: sp.flops,
        bytes: sp.bytes,
      },
    },
  );
}

/** JSON, indented, with every object or array that fits in `width` columns on one line. */
export function compactJson(value: unknown, width = 88, indent = ""): string {
  const flat = JSON.stringify(value);
  if (flat === undefined) return "null";
  if (flat.length + indent.length <= width || value === null || typeof value !== "object") {
    return flat;
  }
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    return `[\n${value.map((v) => inner + compactJson(v, width, inner)).join(",\n")}\n${indent}]`;
  }
  const fields = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${inner}${JSON.stringify(k)}: ${compactJson(v, width, inner)}`);
  return `{\n${fields.join(",\n")}\n${indent}}`;
}

/** The kernel functions a problem's dispatches name, each once. */
export function functionNamesOf(problem: Problem): string[] {
  return [...new Set(problem.entry.dispatches.map((d) => d.function))];
}

/** The chip's facts for the prompt: peaks, SIMD width, threadgroup limits. */
export function chipFactsText(backend: Backend | null): string {
  if (!backend) return "- no kernel backend: unknown";
  const i = backend.info;
  const c = backend.chip;
  const lines: string[] = [];
  if (backend.kind === "sim") {
    lines.push(
      `MetalBench's MSL simulator on the CPU (${i.name}): no GPU peaks; times are simulated CPU times`,
    );
  } else if (c) {
    lines.push(
      `${c.name}, ${c.gpuCores} GPU cores`,
      `peak memory bandwidth ${c.peakGBps} GB/s; FP32 peak ${
        c.peakGflops.toFixed(0)
      } GFLOPS; ridge point ${(c.peakGflops / c.peakGBps).toFixed(1)} FLOP/byte`,
    );
  } else {
    lines.push(`${i.name}: not in the chip table, no peak figures`);
  }
  lines.push(
    `SIMD-group width ${i.simd_width}`,
    `at most ${i.max_threads_per_threadgroup} threads per threadgroup`,
    `at most ${i.max_threadgroup_memory} bytes of threadgroup memory per threadgroup`,
  );
  if (i.family) lines.push(`GPU family ${i.family}`);
  return lines.map((l) => `- ${l}`).join("\n");
}

export interface History {
  top: { technique: string; medianNs: number; deltaPct: number | null }[];
  failed: { technique: string; verdict: string; reason: string }[];
}

/** The fastest kept attempts and the latest failed techniques of a lineage. */
export function historyOf(entries: AttemptEntry[], top = 5, failed = 12): History {
  return {
    top: topNOf(entries, top).map((e) => ({
      technique: e.technique,
      medianNs: e.bench!.medianNs,
      deltaPct: e.deltaPct,
    })),
    failed: failedTechniquesOf(entries).slice(-failed),
  };
}
