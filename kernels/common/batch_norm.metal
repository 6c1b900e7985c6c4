#include <metal_stdlib>
using namespace metal;

// BatchNorm of x[N, C] with batch statistics: each column normalised by its
// mean and biased variance over the N rows, then y = (x - mean) * rstd *
// weight + bias. One threadgroup per block of 32 columns: lane l of every
// SIMD group owns column 32*g + l, and the SIMD groups split the rows
// (SIMD group s takes rows s, s + S, ...).
//
// Fast because every access is coalesced - a SIMD group reads or writes 32
// consecutive floats (128 bytes) of one row - the per-column partial sums
// combine through one threadgroup array (no atomics), and the column block
// (N x 32 floats, 128 KB at N = 1024) is still in cache for the second and
// third pass. Two passes for the statistics (mean, then squared deviations)
// as MLX computes var: no E[x^2] - E[x]^2 cancellation.

// The sum over the SIMD groups of v for this lane's column, in every thread.
static inline float column_sum(float v, threadgroup float (*red)[32], uint lane, uint sg,
                               uint n_sg) {
  red[sg][lane] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  float s = 0.0f;
  for (uint k = 0; k < n_sg; ++k) s += red[k][lane];
  threadgroup_barrier(mem_flags::mem_threadgroup);  // red is reused next
  return s;
}

kernel void batch_norm_f32(device const float* x [[buffer(0)]],
                           device const float* weight [[buffer(1)]],
                           device const float* bias [[buffer(2)]],
                           device float* y [[buffer(3)]],
                           constant uint& N [[buffer(4)]],
                           constant uint& C [[buffer(5)]],
                           constant float& eps [[buffer(6)]],
                           uint g [[threadgroup_position_in_grid]],
                           uint lane [[thread_index_in_simdgroup]],
                           uint sg [[simdgroup_index_in_threadgroup]],
                           uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32][32];  // [SIMD group][column in the block]
  const uint c = g * 32 + lane;
  const bool live = c < C;  // columns past C still take part in the barriers

  float s = 0.0f;
  if (live) {
    for (uint r = sg; r < N; r += n_sg) s += x[ulong(r) * C + c];
  }
  const float mean = column_sum(s, red, lane, sg, n_sg) / float(N);

  float q = 0.0f;
  if (live) {
    for (uint r = sg; r < N; r += n_sg) {
      const float d = x[ulong(r) * C + c] - mean;
      q = fma(d, d, q);
    }
  }
  const float var = column_sum(q, red, lane, sg, n_sg) / float(N);
  if (!live) return;

  const float scale = rsqrt(var + eps) * weight[c];
  const float b = bias[c];
  for (uint r = sg; r < N; r += n_sg) {
    const ulong i = ulong(r) * C + c;
    y[i] = fma(x[i] - mean, scale, b);
  }
}
