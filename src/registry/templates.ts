/**
 * Templates expand a short registry entry into the full ("custom") form, so
 * the rest of the program only ever sees one shape of problem.
 */
import type {
  CustomEntry,
  Dim,
  Distribution,
  Dtype,
  ElementwiseEntry,
  MatmulEntry,
  RegistryEntry,
  RowwiseEntry,
} from "./schema.ts";
import { expandReduce, expandRowReduce, expandScan } from "./templates_reduce.ts";
import { expandPool } from "./templates_pool.ts";
import { expandConv } from "./templates_conv.ts";

type DimT = typeof Dim._output;

const DTYPE_BYTES: Record<Dtype, number> = {
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int32: 4,
  uint32: 4,
};

export function dtypeBytes(dtype: Dtype): number {
  return DTYPE_BYTES[dtype];
}

const NORMAL: Distribution = { kind: "normal", mean: 0, std: 1 };

/** The fields every template entry carries over unchanged into the full form. */
export function commonFields(
  e: Pick<
    ElementwiseEntry,
    "description" | "notes" | "tolerance" | "fastMath" | "edgeTrials" | "init" | "derived" | "sizes"
  >,
) {
  const { description, notes, tolerance, fastMath, edgeTrials, init, derived, sizes } = e;
  return {
    template: "custom" as const,
    description,
    notes,
    tolerance,
    fastMath,
    edgeTrials,
    init,
    derived,
    sizes,
  };
}

const product = (dims: DimT[]): string => dims.map((d) => `(${d})`).join("*");

/** Elements of an element-wise problem's default `large` size: >= 256 MiB for y = f(x). */
const LARGE_ELEMENTS = 2 ** 25;

function elementwiseSizes(e: ElementwiseEntry): CustomEntry["sizes"] {
  const { bench, test, large } = e.sizes;
  const defaultShape = e.shape.length === 2 && e.shape[0] === "M" && e.shape[1] === "N";
  if (large || !defaultShape) return { bench, test, large };
  const N = 16384;
  return { bench, test, large: { M: (LARGE_ELEMENTS * 4) / DTYPE_BYTES[e.dtype] / N, N } };
}

function expandElementwise(e: ElementwiseEntry): CustomEntry {
  const numel = product(e.shape);
  const k = e.inputs.length;
  const inputs = e.inputs.map((given) => {
    const i = typeof given === "string" ? { name: given } : given;
    return {
      name: i.name,
      shape: i.shape ?? e.shape,
      dtype: i.dtype ?? e.dtype,
      init: i.init ?? e.inputInit[i.name] ?? NORMAL,
    };
  });
  const traffic = [...inputs, { shape: e.shape, dtype: e.dtype }]
    .map((t) => `${DTYPE_BYTES[t.dtype]}*${product(t.shape)}`).join(" + ");
  return {
    ...commonFields(e),
    sizes: elementwiseSizes(e),
    inputs,
    outputs: [{ name: "y", shape: e.shape, dtype: e.dtype, init: NORMAL }],
    intermediates: [],
    dispatches: [{
      function: e.function,
      buffers: [
        ...inputs.map((t, index) => ({ index, tensor: t.name })),
        { index: k, tensor: "y" },
      ],
      scalars: [
        { index: k + 1, dtype: "uint32", value: numel },
        ...e.scalars.map((s, i) => ({ index: k + 2 + i, dtype: s.dtype, value: s.value })),
      ],
      threadgroupMemory: [],
      grid: [`ceil_div(${numel}, ${e.vector})`],
      threadgroup: [e.threadgroup],
      mode: "threads",
      constants: e.constants,
    }],
    flops: `${e.flopsPerElement}*${numel}`,
    bytes: traffic,
  };
}

function expandRowwise(e: RowwiseEntry): CustomEntry {
  const width = DTYPE_BYTES[e.dtype];
  const params = e.params.map((p) => ({
    name: p.name,
    shape: ["C"] as DimT[],
    dtype: e.dtype,
    init: p.init ?? NORMAL,
  }));
  const outIndex = 1 + params.length;
  const outShape: DimT[] = e.output === "row" ? ["R", "C"] : ["R"];
  return {
    ...commonFields(e),
    inputs: [{ name: "x", shape: ["R", "C"], dtype: e.dtype, init: e.inputInit }, ...params],
    outputs: [{ name: "y", shape: outShape, dtype: e.dtype, init: NORMAL }],
    intermediates: [],
    dispatches: [{
      function: e.function,
      buffers: [
        { index: 0, tensor: "x" },
        ...params.map((p, i) => ({ index: 1 + i, tensor: p.name })),
        { index: outIndex, tensor: "y" },
      ],
      scalars: [
        { index: outIndex + 1, dtype: "uint32", value: "C" },
        ...e.scalars.map((s, i) => ({ index: outIndex + 2 + i, dtype: s.dtype, value: s.value })),
      ],
      threadgroupMemory: [],
      grid: ["R"],
      threadgroup: [e.threadgroup],
      mode: "threadgroups",
      constants: e.constants,
    }],
    flops: `${e.flopsPerElement}*R*C`,
    bytes: `${width}*(R*C + ${params.length}*C + ${e.output === "row" ? "R*C" : "R"})`,
  };
}

function expandMatmul(e: MatmulEntry): CustomEntry {
  const width = DTYPE_BYTES[e.dtype];
  return {
    ...commonFields(e),
    inputs: [
      { name: "A", shape: ["M", "K"], dtype: e.dtype, init: NORMAL },
      { name: "B", shape: ["K", "N"], dtype: e.dtype, init: NORMAL },
    ],
    outputs: [{ name: "C", shape: ["M", "N"], dtype: e.dtype, init: NORMAL }],
    intermediates: [],
    dispatches: [{
      function: e.function,
      buffers: [{ index: 0, tensor: "A" }, { index: 1, tensor: "B" }, { index: 2, tensor: "C" }],
      scalars: [
        { index: 3, dtype: "uint32", value: "M" },
        { index: 4, dtype: "uint32", value: "N" },
        { index: 5, dtype: "uint32", value: "K" },
      ],
      threadgroupMemory: [],
      grid: [`ceil_div(N, ${e.tileN})`, `ceil_div(M, ${e.tileM})`],
      threadgroup: [e.threads],
      mode: "threadgroups",
      constants: e.constants,
    }],
    flops: "2*M*N*K",
    bytes: `${width}*(M*K + K*N + M*N)`,
  };
}

/** The full form of any registry entry. */
export function expand(entry: RegistryEntry): CustomEntry {
  switch (entry.template) {
    case "custom":
      return entry;
    case "elementwise":
      return expandElementwise(entry);
    case "rowwise":
      return expandRowwise(entry);
    case "matmul":
      return expandMatmul(entry);
    case "scan":
      return expandScan(entry);
    case "rowreduce":
      return expandRowReduce(entry);
    case "reduce":
      return expandReduce(entry);
    case "pool":
      return expandPool(entry);
    case "conv":
      return expandConv(entry);
  }
}
