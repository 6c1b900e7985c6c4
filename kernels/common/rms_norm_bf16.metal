#include <metal_stdlib>
using namespace metal;

// bfloat16 data, float arithmetic (as MLX accumulates): loads widen each quad
// to float4 (8-byte bfloat4 loads: half the traffic of float32), every sum and
// the normalisation run in float, and each output is rounded once on store.
typedef bfloat T;
typedef bfloat4 T4;

// RMSNorm over the last dimension of x[R, C] with a weight [C]:
// y = x * rsqrt(mean(x^2) + eps) * weight. One threadgroup per row.
//
// Fast because the row is read from memory once: each thread keeps its
// float4 quads in registers (ROW_CACHE quads, rows up to ROW_CACHE * 4 *
// threads elements; longer rows stream the remainder again), the sum of
// squares is fma into a float accumulator, one simd_sum plus one threadgroup
// stage, and the output is written from the registers with float4 stores.

constant constexpr uint ROW_CACHE = 2;

// x[i..i+3] of a row: one float4 load when the row starts 16-byte aligned and
// the quad is whole; element by element otherwise (the last partial quad, or
// every quad of a row whose start is not a multiple of 4 floats, which
// happens when C % 4 != 0). Missing elements read as `pad`.
static inline float4 load_quad(device const T* row, uint i, uint n, bool aligned, float pad) {
  if (aligned && i + 4 <= n) return float4(*reinterpret_cast<device const T4*>(row + i));
  float4 v = float4(pad);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = float(row[i + j]);
  return v;
}

static inline void store_quad(device T* row, uint i, uint n, bool aligned, float4 v) {
  if (aligned && i + 4 <= n) {
    *reinterpret_cast<device T4*>(row + i) = bfloat4(v);
    return;
  }
  for (uint j = 0; j < 4 && i + j < n; ++j) row[i + j] = T(v[j]);
}

// Sum over the threadgroup: simd_sum, one slot per SIMD group, then every
// SIMD group sums the slots itself (no second barrier and broadcast). The
// trailing barrier lets the caller reuse `red` at once.
static inline float threadgroup_sum(float v, threadgroup float* red, uint lane, uint sg,
                                    uint n_sg) {
  v = simd_sum(v);
  if (lane == 0) red[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  v = simd_sum(lane < n_sg ? red[lane] : 0.0f);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return v;
}

kernel void rms_norm_bf16(device const T* x [[buffer(0)]],
                        device const T* weight [[buffer(1)]],
                        device T* y [[buffer(2)]],
                        constant uint& C [[buffer(3)]],
                        constant float& eps [[buffer(4)]],
                        uint r [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint tg_size [[threads_per_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]],
                        uint sg [[simdgroup_index_in_threadgroup]],
                        uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32];  // one slot per SIMD group (at most 1024 / 32)

  const ulong start = ulong(r) * C;
  device const T* row = x + start;
  device T* out = y + start;
  const bool aligned = (start & 3) == 0;
  const uint stride = tg_size * 4;

  // Pass 1: load into registers (padding 0), sum of squares.
  float4 cache[ROW_CACHE];
  float q = 0.0f;
  for (uint c = 0; c < ROW_CACHE; ++c) {
    const uint i = c * stride + tid * 4;
    cache[c] = i < C ? load_quad(row, i, C, aligned, 0.0f) : float4(0.0f);
    q += dot(cache[c], cache[c]);
  }
  for (uint i = ROW_CACHE * stride + tid * 4; i < C; i += stride) {
    const float4 v = load_quad(row, i, C, aligned, 0.0f);
    q += dot(v, v);
  }
  const float rms_inv = rsqrt(threadgroup_sum(q, red, lane, sg, n_sg) / float(C) + eps);

  // Pass 2: scale and write. weight starts at index 0 of its own buffer, so
  // its quads are always 16-byte aligned.
  for (uint c = 0; c < ROW_CACHE; ++c) {
    const uint i = c * stride + tid * 4;
    if (i >= C) break;
    store_quad(out, i, C, aligned, cache[c] * rms_inv * load_quad(weight, i, C, true, 0.0f));
  }
  for (uint i = ROW_CACHE * stride + tid * 4; i < C; i += stride) {
    const float4 w = load_quad(weight, i, C, true, 0.0f);
    store_quad(out, i, C, aligned, load_quad(row, i, C, aligned, 0.0f) * rms_inv * w);
  }
}
