#include <metal_stdlib>
using namespace metal;

// BatchNorm of x[N, C] with batch statistics: each column normalised by its
// mean and biased variance over the N rows, y = (x - mean) * rsqrt(var +
// eps) * weight + bias. Three dispatches, so the whole GPU works on it
// whatever the shape (a threadgroup per column block alone would leave most
// cores idle at C = 256):
//   1. batch_norm_stats_f32: threadgroups over (32-column block, block of
//      RPB rows). Lane l of each SIMD group owns one column and the SIMD
//      groups split the block's rows, so every read is a coalesced 128-byte
//      row segment. Per column: the block's mean, then its sum of squared
//      deviations (two passes over rows still in cache: no E[x^2] - E[x]^2
//      cancellation), combined across SIMD groups in threadgroup memory.
//   2. batch_norm_finalize_f32: one thread per column merges the RB block
//      results exactly (Chan et al.: M2 = sum M2_b + n_b (mean_b - mean)^2)
//      into mean[c] and scale[c] = weight[c] * rsqrt(var + eps).
//   3. batch_norm_apply_f32: element-wise, float4 loads and stores
//      (y = (x - mean) * scale + bias), the memory-bound pass.

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

kernel void batch_norm_stats_f32(device const float* x [[buffer(0)]],
                                 device float* part_mean [[buffer(1)]],
                                 device float* part_m2 [[buffer(2)]],
                                 constant uint& N [[buffer(3)]],
                                 constant uint& C [[buffer(4)]],
                                 constant uint& RPB [[buffer(5)]],
                                 uint2 g [[threadgroup_position_in_grid]],
                                 uint lane [[thread_index_in_simdgroup]],
                                 uint sg [[simdgroup_index_in_threadgroup]],
                                 uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32][32];  // [SIMD group][column in the block]
  const uint c = g.x * 32 + lane;
  const bool live = c < C;  // columns past C still take part in the barriers
  const uint r0 = g.y * RPB;
  const uint r1 = min(r0 + RPB, N);

  float s = 0.0f;
  if (live) {
    for (uint r = r0 + sg; r < r1; r += n_sg) s += x[ulong(r) * C + c];
  }
  const float mean = column_sum(s, red, lane, sg, n_sg) / float(r1 - r0);

  float q = 0.0f;
  if (live) {
    for (uint r = r0 + sg; r < r1; r += n_sg) {
      const float d = x[ulong(r) * C + c] - mean;
      q = fma(d, d, q);
    }
  }
  q = column_sum(q, red, lane, sg, n_sg);
  if (live && sg == 0) {
    part_mean[ulong(g.y) * C + c] = mean;
    part_m2[ulong(g.y) * C + c] = q;
  }
}

kernel void batch_norm_finalize_f32(device const float* part_mean [[buffer(0)]],
                                    device const float* part_m2 [[buffer(1)]],
                                    device const float* weight [[buffer(2)]],
                                    device float* mean_out [[buffer(3)]],
                                    device float* scale_out [[buffer(4)]],
                                    constant uint& N [[buffer(5)]],
                                    constant uint& C [[buffer(6)]],
                                    constant uint& RPB [[buffer(7)]],
                                    constant uint& RB [[buffer(8)]],
                                    constant float& eps [[buffer(9)]],
                                    uint c [[thread_position_in_grid]]) {
  if (c >= C) return;
  float sum = 0.0f;
  for (uint b = 0; b < RB; ++b) sum += float(min(RPB, N - b * RPB)) * part_mean[ulong(b) * C + c];
  const float mean = sum / float(N);
  float m2 = 0.0f;
  for (uint b = 0; b < RB; ++b) {
    const float d = part_mean[ulong(b) * C + c] - mean;
    m2 += part_m2[ulong(b) * C + c] + float(min(RPB, N - b * RPB)) * d * d;
  }
  mean_out[c] = mean;
  scale_out[c] = rsqrt(m2 / float(N) + eps) * weight[c];
}

kernel void batch_norm_apply_f32(device const float* x [[buffer(0)]],
                                 device const float* mean [[buffer(1)]],
                                 device const float* scale [[buffer(2)]],
                                 device const float* bias [[buffer(3)]],
                                 device float* y [[buffer(4)]],
                                 constant uint& n [[buffer(5)]],
                                 constant uint& C [[buffer(6)]],
                                 uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 4;
  if (i >= n) return;
  const uint c = i % C;
  if ((C & 3) == 0) {  // the quad lies in one row, at a 16-byte aligned column
    const float4 v = *reinterpret_cast<device const float4*>(x + i);
    const float4 m = *reinterpret_cast<device const float4*>(mean + c);
    const float4 s = *reinterpret_cast<device const float4*>(scale + c);
    const float4 b = *reinterpret_cast<device const float4*>(bias + c);
    *reinterpret_cast<device float4*>(y + i) = fma(v - m, s, b);
  } else {
    for (uint j = i; j < min(i + 4, n); ++j) {
      const uint k = j % C;
      y[j] = fma(x[j] - mean[k], scale[k], bias[k]);
    }
  }
}
