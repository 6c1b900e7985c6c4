/**
 * The `pool` template: max or average pooling over the spatial dimensions
 * of a channels-last tensor, no padding, a K^d window moved by stride S.
 *
 *   dims 1: x[N, L, C]       -> y[N, OL, C]
 *   dims 2: x[N, H, W, C]    -> y[N, OH, OW, C]
 *   dims 3: x[N, D, H, W, C] -> y[N, OD, OH, OW, C]
 *
 * with OX = floor((X - K) / S) + 1 (trailing rows a window does not reach
 * are dropped, as MLX's nn.MaxPool/AvgPool do). Bindings: x 0, y 1, then as
 * uint the input's spatial sizes, C, and the output's spatial sizes (2..).
 * Function constants K and S. One thread per output pixel and 4 channels
 * (dispatchThreads): grid [OW*C/4, OH, N*OD] (2-D: [OW*C/4, OH, N]; 1-D:
 * [OL*C/4, N]), so C must be a multiple of 4 at every size. The reference
 * Model takes k and s (Model(k=K, s=S)); they are also names in the entry's
 * expressions. Only the FLOP count and the default tolerance (exact for max)
 * depend on `op`.
 *
 * The schema is built by a function that schema.ts calls with its own parts
 * (as templates_reduce.ts does), so the two modules do not import each
 * other at load time.
 */
import { z } from "zod";
import type * as S from "./schema.ts";

type DimT = typeof S.Dim._output;

/** Channels per thread: the kernels load and store float4. */
export const POOL_VECTOR = 4;

// deno-lint-ignore explicit-module-boundary-types
export function poolTemplateSchema<C extends z.ZodRawShape>(
  p: { common: C; Name: z.ZodString; Sizes: typeof S.Sizes },
) {
  return z.object({
    template: z.literal("pool"),
    ...p.common,
    function: p.Name,
    op: z.enum(["max", "avg"]),
    dims: z.union([z.literal(1), z.literal(2), z.literal(3)]),
    kernel: z.number().int().positive(),
    stride: z.number().int().positive(),
    sizes: p.Sizes,
    threadgroup: z.number().int().positive().default(256),
    // Inside this generic function zod types the entry's fields as unknown.
  }).superRefine((e, ctx) => checkPoolSizes(e as unknown as PoolSizing, ctx));
}

const SPATIAL: Record<1 | 2 | 3, string[]> = { 1: ["L"], 2: ["H", "W"], 3: ["D", "H", "W"] };

interface PoolSizing {
  dims: 1 | 2 | 3;
  kernel: number;
  sizes: Record<string, Record<string, number> | undefined>;
}

/** Refuses, at load, a size the kernels' float4 channel groups cannot cover. */
function checkPoolSizes(e: PoolSizing, ctx: z.RefinementCtx) {
  for (const [size, values] of Object.entries(e.sizes)) {
    if (!values) continue;
    for (const name of ["N", "C", ...SPATIAL[e.dims]]) {
      if (!(name in values)) {
        ctx.addIssue({
          code: "custom",
          path: ["sizes", size],
          message: `a ${e.dims}-D pool needs size ${name} (sizes: N, ${
            SPATIAL[e.dims].join(", ")
          }, C)`,
        });
      }
    }
    if ("C" in values && values.C % POOL_VECTOR !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["sizes", size, "C"],
        message:
          `C = ${values.C} is not a multiple of ${POOL_VECTOR} (pool kernels move float4 over channels)`,
      });
    }
    for (const name of SPATIAL[e.dims]) {
      if (values[name] < e.kernel) {
        ctx.addIssue({
          code: "custom",
          path: ["sizes", size, name],
          message: `${name} = ${values[name]} is smaller than the window (${e.kernel})`,
        });
      }
    }
  }
}

export function expandPool(e: S.PoolEntry): S.CustomEntry {
  const {
    template: _template,
    op,
    dims,
    kernel: k,
    stride: s,
    function: fn,
    threadgroup,
    ...common
  } = e;
  const spatial = SPATIAL[dims];
  const out = spatial.map((d) => `O${d}`);
  const derived: Record<string, DimT> = { ...common.derived };
  spatial.forEach((d, i) => derived[out[i]] = `floor((${d} - ${k}) / ${s}) + 1`);
  // Input rows a window reaches: all of them up to the last window's end, or
  // only the windows' own rows when the stride skips some.
  const covered = out.map((o) => k >= s ? `((${o} - 1)*${s} + ${k})` : `(${o}*${k})`);
  const outElems = ["N", ...out, "C"].join("*");
  const window = k ** dims;
  const rows = dims === 1 ? ["N"] : dims === 2 ? [out[0], "N"] : [out[1], `N*${out[0]}`];
  return {
    ...common,
    template: "custom",
    init: { k, s, ...common.init },
    derived,
    tolerance: op === "max" ? { rtol: 0, stol: 0, atol: 0, ...common.tolerance } : common.tolerance,
    inputs: [{
      name: "x",
      shape: ["N", ...spatial, "C"],
      dtype: "float32",
      init: { kind: "normal", mean: 0, std: 1 },
    }],
    outputs: [{
      name: "y",
      shape: ["N", ...out, "C"],
      dtype: "float32",
      init: { kind: "normal", mean: 0, std: 1 },
    }],
    intermediates: [],
    dispatches: [{
      function: fn,
      buffers: [{ index: 0, tensor: "x" }, { index: 1, tensor: "y" }],
      scalars: [...spatial, "C", ...out].map((value, i) => ({
        index: 2 + i,
        dtype: "uint32" as const,
        value,
      })),
      threadgroupMemory: [],
      grid: [`${out[dims - 1]}*C/${POOL_VECTOR}`, ...rows],
      threadgroup: [threadgroup],
      mode: "threads",
      constants: { K: k, S: s },
    }],
    // A max of w values is w - 1 comparisons; a mean, w - 1 adds and a scale.
    flops: `${op === "max" ? window - 1 : window}*${outElems}`,
    bytes: `4*(N*${covered.join("*")}*C + ${outElems})`,
  };
}
