/**
 * Templates for reductions and scans: a row scan (x[R, C] -> out[R, C], one
 * threadgroup per row), a row reduction (x[R, C] -> out[R] or out[R, K], one
 * threadgroup per row) and a full reduction (x[...] -> out[1] in two
 * dispatches: per-threadgroup partials, then one threadgroup sums them).
 *
 * The schemas are built by a function that schema.ts calls with its own
 * parts (the common entry fields, Sizes, ...), so this module needs nothing
 * from schema.ts at load time and the two do not import each other in a cycle.
 */
import { z } from "zod";
import type * as S from "./schema.ts";
import { commonFields, dtypeBytes } from "./templates.ts";

/** What schema.ts hands over: its building blocks. */
export interface SchemaParts<C extends z.ZodRawShape> {
  common: C;
  Name: z.ZodString;
  Dim: typeof S.Dim;
  Value: typeof S.Value;
  Dtype: typeof S.Dtype;
  ScalarDtype: typeof S.ScalarDtype;
  Distribution: typeof S.Distribution;
  Sizes: typeof S.Sizes;
  FunctionConstants: typeof S.FunctionConstants;
}

// deno-lint-ignore explicit-module-boundary-types
export function reduceTemplateSchemas<C extends z.ZodRawShape>(p: SchemaParts<C>) {
  /** An input: a name (float32 unless the entry's dtype says otherwise), or one with its own dtype or init. */
  const Input = z.union([
    p.Name,
    z.object({ name: p.Name, dtype: p.Dtype.optional(), init: p.Distribution.optional() }),
  ]);
  const rows = {
    ...p.common,
    function: p.Name,
    inputs: z.array(Input).min(1).default(["x"]),
    /** The float inputs' distribution unless an input names its own. */
    inputInit: p.Distribution.default({ kind: "normal", mean: 0, std: 1 }),
    dtype: p.Dtype.default("float32"),
    // Test C=2053: not a multiple of 4 (unaligned rows), several chunks of
    // 4 * 256, a partial last quad and SIMD group.
    sizes: p.Sizes.default({ bench: { R: 1024, C: 1024 }, test: { R: 8, C: 2053 } }),
    threadgroup: z.number().int().positive().default(256),
    flopsPerElement: z.number().nonnegative().default(1),
    constants: p.FunctionConstants,
  };
  return {
    /**
     * Row-wise prefix (scan) of inputs [R, C] to out[R, C] in `dtype`; the
     * kernel fixes the direction, inclusiveness and operator. Bindings:
     * inputs at 0..k-1, out at k, C (uint) at k+1. One threadgroup per row.
     */
    ScanEntry: z.object({ template: z.literal("scan"), ...rows }),
    /**
     * Row reduction of inputs [R, C] to out[R] (or out[R, outputCols]).
     * Bindings: inputs at 0..k-1, out at k, C (uint) at k+1, then `scalars`.
     * One threadgroup per row.
     */
    RowReduceEntry: z.object({
      template: z.literal("rowreduce"),
      ...rows,
      outputDtype: p.Dtype.optional(),
      outputCols: p.Dim.optional(),
      scalars: z.array(z.object({ dtype: p.ScalarDtype, value: p.Value })).default([]),
    }),
    /**
     * Full reduction of inputs of `shape` to out[1], deterministic (no
     * atomics): `<function>_partial` runs G threadgroups (inputs at 0..k-1,
     * partial[G] at k, the element count n at k+1), `<function>_final` one
     * (partial 0, out 1, G 2, n 3). G = min(ceil_div(n, 4096), 1024) is a
     * derived size the entry may use.
     */
    ReduceEntry: z.object({
      template: z.literal("reduce"),
      ...p.common,
      function: p.Name,
      inputs: z.array(Input).min(1).default(["x"]),
      inputInit: p.Distribution.default({ kind: "normal", mean: 0, std: 1 }),
      dtype: p.Dtype.default("float32"),
      shape: z.array(p.Dim).min(1).default(["N"]),
      sizes: p.Sizes,
      threadgroup: z.number().int().positive().default(256),
      flopsPerElement: z.number().nonnegative().default(1),
      constants: p.FunctionConstants,
    }),
  };
}

type DimT = typeof S.Dim._output;
type Resolved = S.Tensor;

const product = (dims: DimT[]): string => dims.map((d) => `(${d})`).join("*");

function resolveInputs(
  e: S.ScanEntry | S.RowReduceEntry | S.ReduceEntry,
  shape: DimT[],
): Resolved[] {
  return e.inputs.map((given) => {
    const i = typeof given === "string" ? { name: given } : given;
    return { name: i.name, shape, dtype: i.dtype ?? e.dtype, init: i.init ?? e.inputInit };
  });
}

const traffic = (tensors: { shape: DimT[]; dtype: S.Dtype }[]): string =>
  tensors.map((t) => `${dtypeBytes(t.dtype)}*${product(t.shape)}`).join(" + ");

function expandRows(
  e: S.ScanEntry | S.RowReduceEntry,
  output: Resolved,
  scalars: S.CustomEntry["dispatches"][number]["scalars"],
): S.CustomEntry {
  const inputs = resolveInputs(e, ["R", "C"]);
  const k = inputs.length;
  return {
    ...commonFields(e),
    inputs,
    outputs: [output],
    intermediates: [],
    dispatches: [{
      function: e.function,
      buffers: [...inputs.map((t, index) => ({ index, tensor: t.name })), {
        index: k,
        tensor: "out",
      }],
      scalars: [{ index: k + 1, dtype: "uint32", value: "C" }, ...scalars],
      threadgroupMemory: [],
      grid: ["R"],
      threadgroup: [e.threadgroup],
      mode: "threadgroups",
      constants: e.constants,
    }],
    flops: `${e.flopsPerElement}*R*C`,
    bytes: traffic([...inputs, output]),
  };
}

const NORMAL = { kind: "normal", mean: 0, std: 1 } as const;

export function expandScan(e: S.ScanEntry): S.CustomEntry {
  return expandRows(e, { name: "out", shape: ["R", "C"], dtype: e.dtype, init: NORMAL }, []);
}

export function expandRowReduce(e: S.RowReduceEntry): S.CustomEntry {
  const shape: DimT[] = e.outputCols === undefined ? ["R"] : ["R", e.outputCols];
  const k = e.inputs.length;
  return expandRows(
    e,
    { name: "out", shape, dtype: e.outputDtype ?? e.dtype, init: NORMAL },
    e.scalars.map((s, i) => ({ index: k + 2 + i, dtype: s.dtype, value: s.value })),
  );
}

export function expandReduce(e: S.ReduceEntry): S.CustomEntry {
  const inputs = resolveInputs(e, e.shape);
  const k = inputs.length;
  const n = product(e.shape);
  const output: Resolved = { name: "out", shape: [1], dtype: e.dtype, init: NORMAL };
  return {
    ...commonFields(e),
    derived: { ...e.derived, G: `min(ceil_div(${n}, 4096), 1024)` },
    inputs,
    outputs: [output],
    intermediates: [{ name: "partial", shape: ["G"], dtype: "float32", init: NORMAL }],
    dispatches: [
      {
        function: `${e.function}_partial`,
        buffers: [
          ...inputs.map((t, index) => ({ index, tensor: t.name })),
          { index: k, tensor: "partial" },
        ],
        scalars: [{ index: k + 1, dtype: "uint32", value: n }],
        threadgroupMemory: [],
        grid: ["G"],
        threadgroup: [e.threadgroup],
        mode: "threadgroups",
        constants: e.constants,
      },
      {
        function: `${e.function}_final`,
        buffers: [{ index: 0, tensor: "partial" }, { index: 1, tensor: "out" }],
        scalars: [
          { index: 2, dtype: "uint32", value: "G" },
          { index: 3, dtype: "uint32", value: n },
        ],
        threadgroupMemory: [],
        grid: [1],
        threadgroup: [e.threadgroup],
        mode: "threadgroups",
        constants: e.constants,
      },
    ],
    flops: `${e.flopsPerElement}*${n}`,
    bytes: traffic([...inputs, output]),
  };
}
