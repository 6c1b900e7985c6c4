#include <metal_stdlib>
using namespace metal;

// Dot product of x[N] and y[N] as a deterministic two-stage reduction (no
// atomics, so the result does not depend on the order groups finish in):
//   1. dot_product_partial_f32: G threadgroups; thread t of group g walks the
//      float4s g*T + t, + G*T, ... (T threads per group; consecutive threads
//      touch consecutive 16-byte quads, so every sweep is fully coalesced)
//      with fma into a float4 accumulator (4 independent chains), then
//      simd_sum and a threadgroup array give the group's partial[g].
//   2. dot_product_final_f32: one threadgroup sums the G partials the same way.

// Sum over the threadgroup: simd_sum, then one slot per SIMD group, summed
// by SIMD group 0. Valid in thread 0.
static inline float threadgroup_sum(float v, threadgroup float* red, uint lane, uint sg,
                                    uint n_sg) {
  v = simd_sum(v);
  if (lane == 0) red[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) v = simd_sum(lane < n_sg ? red[lane] : 0.0f);
  return v;
}

kernel void dot_product_partial_f32(device const float* x [[buffer(0)]],
                                    device const float* y [[buffer(1)]],
                                    device float* partial [[buffer(2)]],
                                    constant uint& n [[buffer(3)]],
                                    uint g [[threadgroup_position_in_grid]],
                                    uint n_groups [[threadgroups_per_grid]],
                                    uint tid [[thread_index_in_threadgroup]],
                                    uint tg_size [[threads_per_threadgroup]],
                                    uint lane [[thread_index_in_simdgroup]],
                                    uint sg [[simdgroup_index_in_threadgroup]],
                                    uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32];

  device const float4* x4 = reinterpret_cast<device const float4*>(x);
  device const float4* y4 = reinterpret_cast<device const float4*>(y);
  const uint n4 = n / 4;
  const uint stride = n_groups * tg_size;
  float4 acc = float4(0.0f);
  for (uint q = g * tg_size + tid; q < n4; q += stride) acc = fma(x4[q], y4[q], acc);
  float s = (acc.x + acc.y) + (acc.z + acc.w);
  // The last n % 4 elements: one each for the first threads of group 0.
  if (g == 0 && tid < n - n4 * 4) s = fma(x[n4 * 4 + tid], y[n4 * 4 + tid], s);

  s = threadgroup_sum(s, red, lane, sg, n_sg);
  if (tid == 0) partial[g] = s;
}

kernel void dot_product_final_f32(device const float* partial [[buffer(0)]],
                                  device float* out [[buffer(1)]],
                                  constant uint& n_partials [[buffer(2)]],
                                  uint tid [[thread_index_in_threadgroup]],
                                  uint tg_size [[threads_per_threadgroup]],
                                  uint lane [[thread_index_in_simdgroup]],
                                  uint sg [[simdgroup_index_in_threadgroup]],
                                  uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32];
  float s = 0.0f;
  for (uint i = tid; i < n_partials; i += tg_size) s += partial[i];
  s = threadgroup_sum(s, red, lane, sg, n_sg);
  if (tid == 0) out[0] = s;
}
