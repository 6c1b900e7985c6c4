/**
 * The registry file format (registry/<set>.json), as zod schemas.
 *
 * An entry either spells a problem out in full ("custom", the default) or
 * names a template for a common shape of problem (element-wise, row-wise,
 * matmul) that expands to the full form; see templates.ts.
 * Shapes, grids, scalar values and counts are size expressions (expr.ts)
 * over the entry's sizes, so one entry serves the benchmark size and the
 * small test size the simulator runs.
 */
import { z } from "zod";
import { reduceTemplateSchemas } from "./templates_reduce.ts";
import { poolTemplateSchema } from "./templates_pool.ts";
import { convTemplateSchema } from "./templates_conv.ts";

/** Edge-value input classes (src/bench/edge_values.ts makes them). */
export const EDGE_CLASSES = ["zeros", "negative", "large", "nonfinite"] as const;
export type EdgeClass = (typeof EDGE_CLASSES)[number];

export const DTYPES = ["float32", "float16", "bfloat16", "int32", "uint32"] as const;
export const Dtype = z.enum(DTYPES);
export type Dtype = z.infer<typeof Dtype>;

export const SCALAR_DTYPES = ["uint32", "int32", "float32", "float16"] as const;
export const ScalarDtype = z.enum(SCALAR_DTYPES);
export type ScalarDtype = z.infer<typeof ScalarDtype>;

export const PROBLEM_SETS = ["common", "standard", "full"] as const;
export const ProblemSet = z.enum(PROBLEM_SETS);
export type ProblemSet = z.infer<typeof ProblemSet>;

export const Dim = z.union([z.number().int().nonnegative(), z.string().min(1)]);
/** A size expression that may be fractional (scalar values such as eps). */
export const Value = z.union([z.number(), z.string().min(1)]);

const Name = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an identifier");

/** How input values are drawn, from the run's seeded generator. */
export const Distribution = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("normal"), mean: z.number().default(0), std: z.number().default(1) }),
  z.object({
    kind: z.literal("uniform"),
    low: z.number().default(-1),
    high: z.number().default(1),
  }),
  /** Integers in [low, high): indices, labels. `high` may be a size expression. */
  z.object({ kind: z.literal("randint"), low: Value.default(0), high: Value }),
  /** 0/1 with probability p of 1: masks. */
  z.object({ kind: z.literal("bernoulli"), p: z.number().min(0).max(1).default(0.5) }),
  z.object({ kind: z.literal("constant"), value: z.number() }),
]);
export type Distribution = z.infer<typeof Distribution>;

export const Tensor = z.object({
  name: Name,
  shape: z.array(Dim).min(1),
  dtype: Dtype.default("float32"),
  init: Distribution.default({ kind: "normal", mean: 0, std: 1 }),
});
export type Tensor = z.infer<typeof Tensor>;

/**
 * How far a kernel's output may be from the reference's. An element passes
 * when |k - r| <= rtol*|r| + stol*scale + atol, where scale is the output's
 * RMS (its finite reference values) unless `scale` says otherwise. A field
 * left out takes the output dtype's default (DEFAULT_TOLERANCE); rtol, stol
 * and atol may be size expressions (a sum's rounding grows with its length).
 */
export const Tolerance = z.object({
  /** Relative to each element's reference value. */
  rtol: z.union([z.number().nonnegative(), z.string().min(1)]).optional(),
  /** Relative to the output's scale: room for cancellation near zero. */
  stol: z.union([z.number().nonnegative(), z.string().min(1)]).optional(),
  /** Absolute. The defaults are only the dtype's smallest normal (flush to zero). */
  atol: z.union([z.number().nonnegative(), z.string().min(1)]).optional(),
  /**
   * The output's scale as a size expression when the RMS of the output is
   * not it (a long reduction to a few values): sizes, numeric init values
   * and rms_<input> (the RMS of that input's finite values in the trial),
   * e.g. "N * rms_x * rms_y" for a dot product.
   */
  scale: z.string().min(1).optional(),
});
export type Tolerance = z.infer<typeof Tolerance>;

export const BufferBinding = z.object({ index: z.number().int().min(0).max(30), tensor: Name });
export const ScalarBinding = z.object({
  index: z.number().int().min(0).max(30),
  dtype: ScalarDtype,
  value: Value,
});
export const ThreadgroupMemory = z.object({ index: z.number().int().min(0).max(30), bytes: Dim });

const Extent = z.array(Dim).min(1).max(3);

/**
 * Metal function constants of a dispatch's kernel, by name or index:
 * booleans, numbers (size expressions allowed, e.g. "eps"), or a list of 2
 * to 4 for a vector constant (float3, ...). Each value is checked against
 * the type the kernel declares; one out of its range is refused, never
 * truncated (src/backend/function_constants.ts).
 */
export const FunctionConstants = z.record(
  z.string().regex(/^([A-Za-z_][A-Za-z0-9_]*|\d+)$/, "must be a constant's name or index"),
  z.union([z.boolean(), Value, z.array(z.union([z.boolean(), Value])).min(2).max(4)]),
).default({});

export const Dispatch = z.object({
  function: Name,
  buffers: z.array(BufferBinding),
  scalars: z.array(ScalarBinding).default([]),
  threadgroupMemory: z.array(ThreadgroupMemory).default([]),
  grid: Extent,
  threadgroup: Extent,
  constants: FunctionConstants,
  /**
   * threads: grid counts threads (dispatchThreads; edge groups may be
   * partial). threadgroups: grid counts threadgroups (dispatchThreadgroups).
   */
  mode: z.enum(["threads", "threadgroups"]),
});
export type Dispatch = z.infer<typeof Dispatch>;

const SizeValues = z.record(Name, z.number().int().positive());

export const SIZE_NAMES = ["bench", "test", "large"] as const;

export const Sizes = z.object({
  /** The size the benchmark is published at. */
  bench: SizeValues,
  /** A small size that the simulator runs in seconds. */
  test: SizeValues,
  /**
   * Memory-bound problems only: a size whose compulsory traffic is at least
   * 256 MB, so GB/s measures the memory rather than the launch.
   */
  large: SizeValues.optional(),
});

/** Arguments of the reference Model's constructor: Model(**init). */
const ModelInit = z.record(Name, z.union([z.number(), z.string(), z.boolean()]));

const Common = {
  /** One line: what the problem computes. */
  description: z.string().min(1),
  /** Why the sizes and tolerances are what they are. */
  notes: z.string().optional(),
  tolerance: Tolerance.optional(),
  /**
   * Compile the kernel with fast math (Metal's fast math mode: Inf/NaN not
   * kept, faster approximate exp/log/division). Off by default, as MLX
   * compiles its own kernels; `--fast-math` turns it on for a run, and the
   * run record says so. The simulator computes IEEE results either way.
   */
  fastMath: z.boolean().default(false),
  /**
   * Edge-value trials this problem leaves out, each with the reason (why the
   * reference gives no comparable result for that class of inputs).
   */
  edgeTrials: z.object({
    skip: z.partialRecord(
      z.enum(EDGE_CLASSES),
      z.string().min(10, "say why this edge class does not apply (at least a sentence)"),
    ).default({}),
  }).default({ skip: {} }),
  /**
   * Model(**init) arguments. Numeric ones are also names in the entry's
   * expressions, so a kernel scalar can say "eps" instead of repeating it.
   */
  init: ModelInit.default({}),
  /** Named sizes computed from the others, e.g. G = "min(ceil_div(N, 4096), 1024)". */
  derived: z.record(Name, Dim).default({}),
};

export const CustomEntry = z.object({
  template: z.literal("custom"),
  ...Common,
  sizes: Sizes,
  inputs: z.array(Tensor).min(1),
  outputs: z.array(Tensor).min(1),
  /** Buffers written by one dispatch and read by a later one. */
  intermediates: z.array(Tensor).default([]),
  dispatches: z.array(Dispatch).min(1),
  /** Floating-point operations of the whole problem. */
  flops: Dim,
  /**
   * Compulsory memory traffic: bytes of the inputs read plus the outputs
   * written (intermediates excluded), so GB/s is comparable across designs.
   */
  bytes: Dim,
});
export type CustomEntry = z.infer<typeof CustomEntry>;

/**
 * An input of an element-wise problem: a name (shaped and typed like the
 * output), or one with its own shape (a broadcast operand such as a
 * per-column slope ["N"]; the kernel broadcasts it) or dtype.
 */
export const ElementwiseInput = z.union([
  Name,
  z.object({
    name: Name,
    shape: z.array(Dim).min(1).optional(),
    dtype: Dtype.optional(),
    init: Distribution.optional(),
  }),
]);

/**
 * y = f(x0, x1, ...) element by element. Bindings: inputs at 0..k-1, the
 * output at k, the element count (uint) at k+1, then `scalars` at k+2...
 * One thread per `vector` elements (dispatchThreads). Each size defaults on
 * its own; `large` defaults to 2^25 elements (2^26 for 16-bit dtypes), at
 * least 256 MiB of traffic, when the shape is the default [M, N].
 */
export const ElementwiseEntry = z.object({
  template: z.literal("elementwise"),
  ...Common,
  function: Name,
  inputs: z.array(ElementwiseInput).min(1).default(["x"]),
  inputInit: z.record(Name, Distribution).default({}),
  dtype: Dtype.default("float32"),
  shape: z.array(Dim).min(1).default(["M", "N"]),
  sizes: z.object({
    bench: SizeValues.default({ M: 16, N: 16384 }),
    // 3003 elements leaves a tail past the last float4 and a partial group.
    test: SizeValues.default({ M: 3, N: 1001 }),
    large: SizeValues.optional(),
  }).default({ bench: { M: 16, N: 16384 }, test: { M: 3, N: 1001 } }),
  scalars: z.array(z.object({ dtype: ScalarDtype, value: Value })).default([]),
  vector: z.number().int().positive().default(4),
  threadgroup: z.number().int().positive().default(256),
  flopsPerElement: z.number().nonnegative().default(1),
  constants: FunctionConstants,
});
export type ElementwiseEntry = z.infer<typeof ElementwiseEntry>;

/**
 * One threadgroup per row of x[R, C]. Bindings: x at 0, `params` (1-D
 * tensors of length C, e.g. a norm's weight) next, then the output y
 * ([R, C], or [R] for a row reduction), then C (uint), then `scalars`.
 */
export const RowwiseEntry = z.object({
  template: z.literal("rowwise"),
  ...Common,
  function: Name,
  dtype: Dtype.default("float32"),
  inputInit: Distribution.default({ kind: "normal", mean: 0, std: 1 }),
  params: z.array(z.object({ name: Name, init: Distribution.optional() })).default([]),
  output: z.enum(["row", "reduce"]).default("row"),
  scalars: z.array(z.object({ dtype: ScalarDtype, value: Value })).default([]),
  sizes: Sizes.default({ bench: { R: 1024, C: 1024 }, test: { R: 8, C: 1000 } }),
  threadgroup: z.number().int().positive().default(256),
  flopsPerElement: z.number().nonnegative().default(1),
  constants: FunctionConstants,
});
export type RowwiseEntry = z.infer<typeof RowwiseEntry>;

/**
 * C[M, N] = A[M, K] @ B[K, N]. Bindings: A 0, B 1, C 2, then M, N, K
 * (uint) at 3, 4, 5. One threadgroup of `threads` per tile of
 * tileM x tileN outputs (dispatchThreadgroups).
 */
export const MatmulEntry = z.object({
  template: z.literal("matmul"),
  ...Common,
  function: Name,
  dtype: Dtype.default("float32"),
  sizes: Sizes.default({ bench: { M: 1024, N: 1024, K: 1024 }, test: { M: 64, N: 64, K: 64 } }),
  tileM: z.number().int().positive().default(64),
  tileN: z.number().int().positive().default(64),
  threads: z.number().int().positive().default(256),
  constants: FunctionConstants,
});
export type MatmulEntry = z.infer<typeof MatmulEntry>;

/** Scan, row-reduction and full-reduction templates (templates_reduce.ts). */
/** The building blocks the template modules' schemas are made of. */
const PARTS = {
  common: Common,
  Name,
  Dim,
  Value,
  Dtype,
  ScalarDtype,
  Distribution,
  Sizes,
  FunctionConstants,
};
export const { ScanEntry, RowReduceEntry, ReduceEntry } = reduceTemplateSchemas(PARTS);
export type ScanEntry = z.infer<typeof ScanEntry>;
export type RowReduceEntry = z.infer<typeof RowReduceEntry>;
export type ReduceEntry = z.infer<typeof ReduceEntry>;

/** Max or average pooling over channels-last x (templates_pool.ts). */
export const PoolEntry = poolTemplateSchema({ common: Common, Name, Sizes });
export type PoolEntry = z.infer<typeof PoolEntry>;

/** A convolution over channels-last tensors (templates_conv.ts). */
export const ConvEntry = convTemplateSchema(PARTS);
export type ConvEntry = z.infer<typeof ConvEntry>;

export const RegistryEntry = z.preprocess(
  (v) =>
    typeof v === "object" && v !== null && !("template" in v) ? { ...v, template: "custom" } : v,
  z.discriminatedUnion("template", [
    CustomEntry,
    ElementwiseEntry,
    RowwiseEntry,
    MatmulEntry,
    ScanEntry,
    RowReduceEntry,
    ReduceEntry,
    PoolEntry,
    ConvEntry,
  ]),
);
export type RegistryEntry = z.infer<typeof RegistryEntry>;

export const RegistryFile = z.object({
  $schema: z.string().optional(),
  set: ProblemSet,
  problems: z.record(Name, RegistryEntry),
});
export type RegistryFile = z.infer<typeof RegistryFile>;
