#include <metal_stdlib>
using namespace metal;

// Triplet margin loss per row of anchor, pos, neg [R, C]: one threadgroup
// per row. Fast because both distances come from one pass: each of the three
// rows is read once with float4 loads, two float4 fma accumulators, then
// simd_sum and one threadgroup stage for both sums.

// x[i..i+3] of a row: one float4 load when the row starts 16-byte aligned and
// the quad is whole, element by element otherwise; missing elements read 0.
static inline float4 load_quad(device const float* row, uint i, uint n, bool aligned) {
  if (aligned && i + 4 <= n) return *reinterpret_cast<device const float4*>(row + i);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = row[i + j];
  return v;
}

kernel void triplet_margin_loss_f32(device const float* a [[buffer(0)]],
                                    device const float* p [[buffer(1)]],
                                    device const float* n [[buffer(2)]],
                                    device float* out [[buffer(3)]],
                                    constant uint& C [[buffer(4)]],
                                    constant float& margin [[buffer(5)]],
                                    uint r [[threadgroup_position_in_grid]],
                                    uint tid [[thread_index_in_threadgroup]],
                                    uint tg_size [[threads_per_threadgroup]],
                                    uint lane [[thread_index_in_simdgroup]],
                                    uint sg [[simdgroup_index_in_threadgroup]],
                                    uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float2 red[32];
  const ulong start = ulong(r) * C;
  const bool aligned = (start & 3) == 0;

  float4 dp = float4(0.0f), dn = float4(0.0f);
  for (uint i = tid * 4; i < C; i += tg_size * 4) {
    const float4 av = load_quad(a + start, i, C, aligned);
    const float4 u = av - load_quad(p + start, i, C, aligned);
    const float4 v = av - load_quad(n + start, i, C, aligned);
    dp = fma(u, u, dp);
    dn = fma(v, v, dn);
  }
  float2 s = float2((dp.x + dp.y) + (dp.z + dp.w), (dn.x + dn.y) + (dn.z + dn.w));
  s = float2(simd_sum(s.x), simd_sum(s.y));
  if (lane == 0) red[sg] = s;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) {
    const float2 v = lane < n_sg ? red[lane] : float2(0.0f);
    s = float2(simd_sum(v.x), simd_sum(v.y));
    // select, not max(): max(NaN, 0) would drop a NaN the reference keeps.
    const float d = sqrt(s.x) - sqrt(s.y) + margin;
    if (lane == 0) out[r] = d < 0.0f ? 0.0f : d;
  }
}
