#include <metal_stdlib>
using namespace metal;

// Mean squared error of pred and target over all elements,
// as a deterministic two-stage reduction (no atomics, so the result does not
// depend on the order threadgroups finish in):
//   1. mse_loss_f32_partial: G threadgroups; thread t of group g walks the
//      float4s g*T + t, + G*T, ... (consecutive threads read consecutive
//      16-byte quads, so every sweep is coalesced), d = pred - target, fma(d, d) into a
//      float4 accumulator (4 independent chains), then simd_sum and one
//      threadgroup stage give partial[g].
//   2. mse_loss_f32_final: one threadgroup sums the G partials the same
//      way, then divides by n.

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

kernel void mse_loss_f32_partial(device const float* pred [[buffer(0)]],
                                 device const float* target [[buffer(1)]],
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
  device const float4* p4 = reinterpret_cast<device const float4*>(pred);
  device const float4* t4 = reinterpret_cast<device const float4*>(target);
  const uint n4 = n / 4;
  const uint stride = n_groups * tg_size;
  float4 acc = float4(0.0f);
  for (uint q = g * tg_size + tid; q < n4; q += stride) {
    const float4 d = p4[q] - t4[q];
    acc = fma(d, d, acc);
  }
  float s = (acc.x + acc.y) + (acc.z + acc.w);
  // The last n % 4 elements: one each for the first threads of group 0.
  if (g == 0 && tid < n - n4 * 4) {
    const uint i = n4 * 4 + tid;
    const float d = pred[i] - target[i];
    s = fma(d, d, s);
  }
  s = threadgroup_sum(s, red, lane, sg, n_sg);
  if (tid == 0) partial[g] = s;
}

kernel void mse_loss_f32_final(device const float* partial [[buffer(0)]],
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
  if (tid == 0) out[0] = s / float(n);
}
