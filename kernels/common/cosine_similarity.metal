#include <metal_stdlib>
using namespace metal;

// Cosine similarity of the rows of x[R, C] and y[R, C]: one threadgroup per
// row. Fast because the three sums (x.y, x.x, y.y) are fused into one pass:
// each row is read once with float4 loads and three float4 fma accumulators,
// then one simd_sum per sum and a single threadgroup stage for all three.

// x[i..i+3] of a row: one float4 load when the row starts 16-byte aligned and
// the quad is whole, element by element otherwise; missing elements read 0.
static inline float4 load_quad(device const float* row, uint i, uint n, bool aligned) {
  if (aligned && i + 4 <= n) return *reinterpret_cast<device const float4*>(row + i);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = row[i + j];
  return v;
}

kernel void cosine_similarity_f32(device const float* x [[buffer(0)]],
                                  device const float* y [[buffer(1)]],
                                  device float* out [[buffer(2)]],
                                  constant uint& C [[buffer(3)]],
                                  uint r [[threadgroup_position_in_grid]],
                                  uint tid [[thread_index_in_threadgroup]],
                                  uint tg_size [[threads_per_threadgroup]],
                                  uint lane [[thread_index_in_simdgroup]],
                                  uint sg [[simdgroup_index_in_threadgroup]],
                                  uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float3 red[32];
  const ulong start = ulong(r) * C;
  const bool aligned = (start & 3) == 0;

  float4 xy = float4(0.0f), xx = float4(0.0f), yy = float4(0.0f);
  for (uint i = tid * 4; i < C; i += tg_size * 4) {
    const float4 a = load_quad(x + start, i, C, aligned);
    const float4 b = load_quad(y + start, i, C, aligned);
    xy = fma(a, b, xy);
    xx = fma(a, a, xx);
    yy = fma(b, b, yy);
  }
  float3 s = float3((xy.x + xy.y) + (xy.z + xy.w), (xx.x + xx.y) + (xx.z + xx.w),
                    (yy.x + yy.y) + (yy.z + yy.w));
  s = float3(simd_sum(s.x), simd_sum(s.y), simd_sum(s.z));
  if (lane == 0) red[sg] = s;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) {
    const float3 v = lane < n_sg ? red[lane] : float3(0.0f);
    s = float3(simd_sum(v.x), simd_sum(v.y), simd_sum(v.z));
    if (lane == 0) out[r] = s.x / (sqrt(s.y) * sqrt(s.z) + 1e-8f);
  }
}
