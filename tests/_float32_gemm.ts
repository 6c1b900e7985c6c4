/**
 * The matmul group's problems re-implemented in float32 for
 * tolerance.test.ts: products rounded to float32, sums over K in a chosen
 * order, so each entry's tolerance is shown to admit honest float32 results
 * however they are summed. The float16 and bfloat16 problems multiply their
 * (already rounded) inputs in float32, as MLX and the kernels do, and round
 * the output once to its dtype.
 */
import type { SizedProblem } from "../src/registry/problem.ts";
import { fromBfloat16Bits, toBfloat16Bits } from "../src/reference/tensor_io.ts";
import type { Impl, Order } from "./_float32_reduce.ts";
import { f, sum } from "./_float32.ts";

/** C[b] = A[b] @ B[b] for A [batch, M, K], B [batch, K, N], float32 sums over K. */
function matmul(
  A: Float32Array,
  B: Float32Array,
  { batch = 1, M, N, K }: Record<string, number>,
  order: Order,
): Float32Array {
  const C = new Float32Array(batch * M * N);
  for (let b = 0; b < batch; b++) {
    const a0 = b * M * K, b0 = b * K * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        C[(b * M + i) * N + j] = sum(K, (k) => f(A[a0 + i * K + k] * B[b0 + k * N + j]), order);
      }
    }
  }
  return C;
}

/** A float32 result rounded to the problem's output dtype (one rounding, as the kernel's store). */
function toOutput(y: Float32Array, p: SizedProblem): Float32Array {
  const dtype = p.outputs[0].dtype;
  if (dtype === "float16") return Float32Array.from(Float16Array.from(y));
  if (dtype === "bfloat16") return y.map((v) => fromBfloat16Bits(toBfloat16Bits(v)));
  return y;
}

const mm: Impl = ({ A, B }, p, order) => toOutput(matmul(A, B, p.sizes, order), p);

export const FLOAT32_GEMM: Record<string, Impl> = {
  rect_mm: mm,
  batch_mm: mm,
  sqr_mm_f16: mm,
  sqr_mm_bf16: mm,
  rect_mm_f16: mm,
  rect_mm_bf16: mm,
  batch_mm_f16: mm,
  batch_mm_bf16: mm,
  matvec: ({ A, x }, { sizes: { M, K } }, order) =>
    Float32Array.from({ length: M }, (_, i) => sum(K, (k) => f(A[i * K + k] * x[k]), order)),
  outer_product: ({ x, y }, { sizes: { M, N } }) =>
    Float32Array.from({ length: M * N }, (_, i) => f(x[Math.floor(i / N)] * y[i % N])),
  matmul_sub_mul_relu: ({ x, w }, { sizes, init }, order) =>
    matmul(x, w, sizes, order).map((v) => {
      const z = f(f(v - (init.sub_val as number)) * (init.mul_val as number));
      return z < 0 ? 0 : z; // NaN stays NaN, as mx.maximum keeps it
    }),
};
