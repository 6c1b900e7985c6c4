#include <metal_stdlib>
using namespace metal;

// log(sum(exp(x))) of each row of x[R, C]: one threadgroup per row, two
// passes (row max, then the sum of exp(x - max)), so no exp overflows. Fast
// because both passes use float4 loads, the second reads the row back from
// cache, and each reduction is one SIMD-group op plus one threadgroup stage
// that every SIMD group finishes itself. An infinite max shifts by 0 instead
// (as MLX does): a +Inf row gives +Inf, an all -Inf row -Inf, NaN stays NaN.

// x[i..i+3] of a row: one float4 load when the row starts 16-byte aligned and
// the quad is whole, element by element otherwise; missing elements read -Inf
// (no effect on the max, exp(-Inf) = 0 in the sum).
static inline float4 load_quad(device const float* row, uint i, uint n, bool aligned) {
  if (aligned && i + 4 <= n) return *reinterpret_cast<device const float4*>(row + i);
  float4 v = float4(-INFINITY);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = row[i + j];
  return v;
}

kernel void logsumexp_f32(device const float* x [[buffer(0)]],
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

  // max() skips NaN; a NaN still reaches the result through exp in pass 2.
  float4 m4 = float4(-INFINITY);
  for (uint i = tid * 4; i < C; i += stride) m4 = max(m4, load_quad(row, i, C, aligned));
  float m = simd_max(max(max(m4.x, m4.y), max(m4.z, m4.w)));
  if (lane == 0) red[sg] = m;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  m = simd_max(lane < n_sg ? red[lane] : -INFINITY);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const float shift = isinf(m) ? 0.0f : m;

  float4 acc = float4(0.0f);
  for (uint i = tid * 4; i < C; i += stride) acc += exp(load_quad(row, i, C, aligned) - shift);
  float s = simd_sum((acc.x + acc.y) + (acc.z + acc.w));
  if (lane == 0) red[sg] = s;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) {
    s = simd_sum(lane < n_sg ? red[lane] : 0.0f);
    if (lane == 0) y[r] = shift + log(s);
  }
}
