#include <metal_stdlib>
using namespace metal;

// Frobenius norm of x (sqrt of the sum of all squares),
// as a deterministic two-stage reduction (no atomics, so the result does not
// depend on the order threadgroups finish in):
//   1. frobenius_norm_f32_partial: G threadgroups; thread t of group g walks the
//      float4s g*T + t, + G*T, ... (consecutive threads read consecutive
//      16-byte quads, so every sweep is coalesced), fma(x, x) into a
//      float4 accumulator (4 independent chains), then simd_sum and one
//      threadgroup stage give partial[g].
//   2. frobenius_norm_f32_final: one threadgroup sums the G partials the same
//      way, then the square root.

// Sum over the threadgroup: simd_sum, one slot per SIMD group, summed by
// SIMD group 0. Valid in thread 0.
static inline float threadgroup_sum(float v, threadgroup float* red, uint lane, uint sg,
                                    uint n_sg) {
  v = simd_sum(v);
  if (lane == 0) red[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) v = simd_sum(lane < n_sg ? red[lane] : 0.0f);
  return v;
}

kernel void frobenius_norm_f32_partial(device const float* x [[buffer(0)]],
                                       device float* partial [[buffer(1)]],
                                       constant uint& n [[buffer(2)]],
                                       uint g [[threadgroup_position_in_grid]],
                                       uint n_groups [[threadgroups_per_grid]],
                                       uint tid [[thread_index_in_threadgroup]],
                                       uint tg_size [[threads_per_threadgroup]],
                                       uint lane [[thread_index_in_simdgroup]],
                                       uint sg [[simdgroup_index_in_threadgroup]],
                                       uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32];
  device const float4* x4 = reinterpret_cast<device const float4*>(x);
  const uint n4 = n / 4;
  const uint stride = n_groups * tg_size;
  float4 acc = float4(0.0f);
  for (uint q = g * tg_size + tid; q < n4; q += stride) {
    const float4 v = x4[q];
    acc = fma(v, v, acc);
  }
  float s = (acc.x + acc.y) + (acc.z + acc.w);
  // The last n % 4 elements: one each for the first threads of group 0.
  if (g == 0 && tid < n - n4 * 4) {
    const uint i = n4 * 4 + tid;
    s = fma(x[i], x[i], s);
  }
  s = threadgroup_sum(s, red, lane, sg, n_sg);
  if (tid == 0) partial[g] = s;
}

kernel void frobenius_norm_f32_final(device const float* partial [[buffer(0)]],
                                     device float* out [[buffer(1)]],
                                     constant uint& n_partials [[buffer(2)]],
                                     constant uint& n [[buffer(3)]],
                                     uint tid [[thread_index_in_threadgroup]],
                                     uint tg_size [[threads_per_threadgroup]],
                                     uint lane [[thread_index_in_simdgroup]],
                                     uint sg [[simdgroup_index_in_threadgroup]],
                                     uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32];
  float s = 0.0f;
  for (uint i = tid; i < n_partials; i += tg_size) s += partial[i];
  s = threadgroup_sum(s, red, lane, sg, n_sg);
  if (tid == 0) out[0] = sqrt(s);
}
