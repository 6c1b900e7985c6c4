#include <metal_stdlib>
using namespace metal;

// Biased variance of each row of x[R, C]: one threadgroup per row, two
// passes (mean, then the mean of squared deviations) for the accuracy of
// MLX's own two-pass var - no E[x^2] - E[x]^2 cancellation. Fast because
// both passes use float4 loads and float4 accumulators, the second pass
// reads the row back from cache (a 4 KB row is still there), and each sum
// is one simd_sum plus one threadgroup stage that every SIMD group finishes
// itself (no broadcast barrier).

// x[i..i+3] of a row: one float4 load when the row starts 16-byte aligned and
// the quad is whole, element by element otherwise; missing elements read pad.
static inline float4 load_quad(device const float* row, uint i, uint n, bool aligned, float pad) {
  if (aligned && i + 4 <= n) return *reinterpret_cast<device const float4*>(row + i);
  float4 v = float4(pad);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = row[i + j];
  return v;
}

// Sum over the threadgroup, valid in every thread.
static inline float threadgroup_sum(float v, threadgroup float* red, uint lane, uint sg,
                                    uint n_sg) {
  v = simd_sum(v);
  if (lane == 0) red[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  v = simd_sum(lane < n_sg ? red[lane] : 0.0f);
  threadgroup_barrier(mem_flags::mem_threadgroup);  // red is reused next
  return v;
}

kernel void variance_f32(device const float* x [[buffer(0)]],
                         device float* y [[buffer(1)]],
                         constant uint& C [[buffer(2)]],
                         uint r [[threadgroup_position_in_grid]],
                         uint tid [[thread_index_in_threadgroup]],
                         uint tg_size [[threads_per_threadgroup]],
                         uint lane [[thread_index_in_simdgroup]],
                         uint sg [[simdgroup_index_in_threadgroup]],
                         uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32];
  const ulong start = ulong(r) * C;
  device const float* row = x + start;
  const bool aligned = (start & 3) == 0;
  const uint stride = tg_size * 4;

  float4 acc = float4(0.0f);
  for (uint i = tid * 4; i < C; i += stride) acc += load_quad(row, i, C, aligned, 0.0f);
  const float mean =
      threadgroup_sum((acc.x + acc.y) + (acc.z + acc.w), red, lane, sg, n_sg) / float(C);

  // Padding reads as the mean, so it adds no deviation.
  acc = float4(0.0f);
  for (uint i = tid * 4; i < C; i += stride) {
    const float4 d = load_quad(row, i, C, aligned, mean) - mean;
    acc = fma(d, d, acc);
  }
  const float ss = threadgroup_sum((acc.x + acc.y) + (acc.z + acc.w), red, lane, sg, n_sg);
  if (tid == 0) y[r] = ss / float(C);
}
