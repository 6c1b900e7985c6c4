/**
 * The `conv` template: a convolution over channels-last tensors, as MLX's
 * conv1d/conv2d/conv3d/conv_transpose* take them (MLX is channels-last).
 *
 *   dims 1: x[N, L, C]       w[F, R, C]       -> y[N, OL, F]
 *   dims 2: x[N, H, W, C]    w[F, R, R, C]    -> y[N, OH, OW, F]
 *   dims 3: x[N, D, H, W, C] w[F, R, R, R, C] -> y[N, OD, OH, OW, F]
 *
 * `kind` says which convolution:
 * - "conv": OX = floor((X + 2*padding - dilation*(R - 1) - 1) / stride) + 1;
 * - "transpose": MLX's conv_transpose (w is [F, R.., C] there too),
 *   OX = (X - 1)*stride - 2*padding + dilation*(R - 1) + 1;
 * - "depthwise": groups = C, w[C, R.., 1], y has C channels (F is C).
 *
 * Sizes name N, C, F (not for depthwise) and the input's spatial extents
 * (L | H, W | D, H, W); the entry gives `kernel` (R), `stride`, `padding`
 * and `dilation`, the same along every spatial dim. The template adds
 *   derived: R, the output extents (OL | OH, OW | OD, OH, OW), OUT (output
 *            pixels N*OD*OH*OW: an implicit GEMM's M), KG (R^dims*C: its
 *            depth; for depthwise R^dims), and F = C for depthwise;
 *   init:    stride, padding, dilation, so the reference is
 *            Model(stride=, padding=, dilation=, **entry.init) and they are
 *            names in the entry's expressions.
 * Bindings: x 0, w 1, `bias` [F] at 2 when `bias: true`, then `params`
 * (more [F] tensors, e.g. a fused scale), then y, then as uint N, C, F, the
 * input extents, the output extents, R, stride, padding, dilation, then the
 * entry's own `scalars`. The grid is the kernel's choice, so the entry says
 * it (`grid`, `threadgroup`, `mode`) in those names: an implicit GEMM
 * with 64x64 tiles says grid ["ceil_div(F, 64)", "ceil_div(OUT, 64)"].
 *
 * For a conv fused with what follows (bias, activation, pooling), `output`
 * replaces y's shape (and its name), and `epilogueFlops` adds FLOPs per
 * convolution output element. FLOPs count the multiply-adds that touch real
 * data: a transposed convolution scatters each input pixel through R^dims
 * taps, so it is 2*N*X*R^dims*C*F over the INPUT extents (not the output
 * size times every tap, most of which would multiply inserted zeros).
 * Bytes are the compulsory traffic: x, w, the [F] params and y once.
 *
 * Padding and NaN: MLX's CPU conv multiplies the padding's zeros when it
 * has no dilation (a zero times an Inf weight gives NaN at the borders, so
 * an implicit GEMM that gathers zeros there matches it), but leaves padded
 * taps out with dilation and in grouped (depthwise) convs, and a transposed
 * conv has no padding products at all. An entry with padding should check
 * its kernel on the NaN/Inf edge trial (tests/registry_conv.test.ts does so
 * for the suite's kernels).
 *
 * The schema is built by a function that schema.ts calls with its own parts
 * (as templates_pool.ts does), so the two modules do not import each other
 * at load time.
 */
import { z } from "zod";
import type * as S from "./schema.ts";
import type { SchemaParts } from "./templates_reduce.ts";

type DimT = typeof S.Dim._output;

const SPATIAL: Record<1 | 2 | 3, string[]> = { 1: ["L"], 2: ["H", "W"], 3: ["D", "H", "W"] };

// deno-lint-ignore explicit-module-boundary-types
export function convTemplateSchema<C extends z.ZodRawShape>(
  p: Omit<SchemaParts<C>, "FunctionConstants">,
) {
  const Extent = z.array(p.Dim).min(1).max(3);
  return z.object({
    template: z.literal("conv"),
    ...p.common,
    function: p.Name,
    kind: z.enum(["conv", "transpose", "depthwise"]).default("conv"),
    dims: z.union([z.literal(1), z.literal(2), z.literal(3)]),
    kernel: z.number().int().positive(),
    stride: z.number().int().positive().default(1),
    padding: z.number().int().nonnegative().default(0),
    dilation: z.number().int().positive().default(1),
    dtype: p.Dtype.default("float32"),
    inputInit: p.Distribution.default({ kind: "normal", mean: 0, std: 1 }),
    weightInit: p.Distribution.default({ kind: "normal", mean: 0, std: 1 }),
    bias: z.boolean().default(false),
    params: z.array(z.object({ name: p.Name, init: p.Distribution.optional() })).default([]),
    scalars: z.array(z.object({ dtype: p.ScalarDtype, value: p.Value })).default([]),
    output: z.object({ name: p.Name.default("y"), shape: z.array(p.Dim).min(1) }).optional(),
    epilogueFlops: z.number().nonnegative().default(0),
    sizes: p.Sizes,
    grid: Extent,
    threadgroup: Extent,
    mode: z.enum(["threads", "threadgroups"]),
    // Inside this generic function zod types the entry's fields as unknown.
  }).superRefine((e, ctx) => checkConvSizes(e as unknown as ConvSizing, ctx));
}

interface ConvSizing {
  kind: "conv" | "transpose" | "depthwise";
  dims: 1 | 2 | 3;
  sizes: Record<string, Record<string, number> | undefined>;
}

/** Refuses, at load, a size that lacks a name the template's shapes use. */
function checkConvSizes(e: ConvSizing, ctx: z.RefinementCtx) {
  const needed = ["N", "C", ...(e.kind === "depthwise" ? [] : ["F"]), ...SPATIAL[e.dims]];
  for (const [size, values] of Object.entries(e.sizes)) {
    if (!values) continue;
    for (const name of needed) {
      if (!(name in values)) {
        ctx.addIssue({
          code: "custom",
          path: ["sizes", size],
          message: `a ${e.dims}-D ${e.kind} needs size ${name} (sizes: ${needed.join(", ")})`,
        });
      }
    }
    if (e.kind === "depthwise" && "F" in values) {
      ctx.addIssue({
        code: "custom",
        path: ["sizes", size, "F"],
        message: "a depthwise conv has C output channels: drop F (the template derives F = C)",
      });
    }
  }
}

/** The output extent of spatial dim `x` as an expression. */
function outExtent(kind: S.ConvEntry["kind"], x: string): string {
  return kind === "transpose"
    ? `(${x} - 1)*stride - 2*padding + dilation*(R - 1) + 1`
    : `floor((${x} + 2*padding - dilation*(R - 1) - 1) / stride) + 1`;
}

export function expandConv(e: S.ConvEntry): S.CustomEntry {
  const {
    template: _template,
    function: fn,
    kind,
    dims,
    kernel,
    stride,
    padding,
    dilation,
    dtype,
    inputInit,
    weightInit,
    bias,
    params,
    scalars,
    output,
    epilogueFlops,
    grid,
    threadgroup,
    mode,
    ...common
  } = e;
  const spatial = SPATIAL[dims];
  const out = spatial.map((d) => `O${d}`);
  const taps = kernel ** dims;
  const derived: Record<string, DimT> = { R: kernel };
  if (kind === "depthwise") derived.F = "C";
  spatial.forEach((d, i) => derived[out[i]] = outExtent(kind, d));
  derived.OUT = ["N", ...out].join("*");
  derived.KG = kind === "depthwise" ? taps : `${taps}*C`;
  Object.assign(derived, common.derived);

  // Not templates.ts's dtypeBytes: importing it would tie schema.ts to templates.ts at load.
  const width = dtype === "float16" || dtype === "bfloat16" ? 2 : 4;
  const perChannel = [...(bias ? [{ name: "bias" }] : []), ...params].map((t) => ({
    name: t.name,
    shape: ["F"] as DimT[],
    dtype,
    init: ("init" in t && t.init) || { kind: "normal" as const, mean: 0, std: 1 },
  }));
  const y = {
    name: output?.name ?? "y",
    shape: output?.shape ?? ["N", ...out, "F"],
    dtype,
    init: { kind: "normal" as const, mean: 0, std: 1 },
  };
  const yIndex = 2 + perChannel.length;
  const uints = ["N", "C", "F", ...spatial, ...out, "R", "stride", "padding", "dilation"];
  const inPixels = ["N", ...spatial].join("*");
  const convOutputs = `OUT*F`;
  const macs = kind === "transpose"
    ? `${inPixels}*${taps}*C*F`
    : kind === "depthwise"
    ? `OUT*C*${taps}`
    : `OUT*F*${taps}*C`;
  const wShape: DimT[] = kind === "depthwise"
    ? ["C", ...spatial.map(() => kernel), 1]
    : ["F", ...spatial.map(() => kernel), "C"];
  return {
    ...common,
    template: "custom",
    init: { stride, padding, dilation, ...common.init },
    derived,
    inputs: [
      { name: "x", shape: ["N", ...spatial, "C"], dtype, init: inputInit },
      { name: "w", shape: wShape, dtype, init: weightInit },
      ...perChannel,
    ],
    outputs: [y],
    intermediates: [],
    dispatches: [{
      function: fn,
      buffers: [
        { index: 0, tensor: "x" },
        { index: 1, tensor: "w" },
        ...perChannel.map((t, i) => ({ index: 2 + i, tensor: t.name })),
        { index: yIndex, tensor: y.name },
      ],
      scalars: [
        ...uints.map((value, i) => ({ index: yIndex + 1 + i, dtype: "uint32" as const, value })),
        ...scalars.map((s, i) => ({
          index: yIndex + 1 + uints.length + i,
          dtype: s.dtype,
          value: s.value,
        })),
      ],
      threadgroupMemory: [],
      grid,
      threadgroup,
      mode,
      constants: {},
    }],
    flops: `2*${macs} + ${epilogueFlops}*${convOutputs}`,
    bytes: `${width}*(${inPixels}*C + ${
      wShape.map((d) => `(${d})`).join("*")
    } + ${perChannel.length}*F + ${y.shape.map((d) => `(${d})`).join("*")})`,
  };
}
