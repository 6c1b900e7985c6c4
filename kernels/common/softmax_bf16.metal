#include <metal_stdlib>
using namespace metal;

// bfloat16 data, float arithmetic (as MLX accumulates): loads widen each quad
// to float4 (8-byte bfloat4 loads: half the traffic of float32), every sum and
// the normalisation run in float, and each output is rounded once on store.
typedef bfloat T;
typedef bfloat4 T4;

// Softmax along the last dimension of x[R, C]: one threadgroup per row.
//
// The row is read from memory once: each thread keeps its float4 quads in
// registers (ROW_CACHE quads, i.e. rows up to ROW_CACHE * 4 * threads
// elements). Max-subtracted for stability: row max (simd_max within SIMD
// groups, a threadgroup array across them), then exp(x - max) in place in
// the registers and the row sum the same way, then one write pass - one exp
// per element. Longer rows stream the part past the cache with an online
// (max, sum of exp) pair, so that part is read twice rather than three times.
// Padding and identities are -FLT_MAX, not -INFINITY: Metal compiles with
// fast math by default, which lets the compiler assume there are no infinities.

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

// Folds four more values into a running (max m, sum of exp(x - m) s).
static inline void online_add(thread float& m, thread float& s, float4 v) {
  const float m_new = max(m, max(max(v.x, v.y), max(v.z, v.w)));
  if (m_new == -FLT_MAX) return;  // nothing but padding so far: s stays 0
  s = s * exp(m - m_new) + (exp(v.x - m_new) + exp(v.y - m_new)) +
      (exp(v.z - m_new) + exp(v.w - m_new));
  m = m_new;
}

kernel void softmax_bf16(device const T* x [[buffer(0)]],
                        device T* y [[buffer(1)]],
                        constant uint& C [[buffer(2)]],
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

  // Pass 1: load into registers; max of the cached part, online (max, sum)
  // of the streamed rest.
  float4 cache[ROW_CACHE];
  float m = -FLT_MAX;
  for (uint c = 0; c < ROW_CACHE; ++c) {
    const uint i = c * stride + tid * 4;
    cache[c] = i < C ? load_quad(row, i, C, aligned, -FLT_MAX) : float4(-FLT_MAX);
    m = max(m, max(max(cache[c].x, cache[c].y), max(cache[c].z, cache[c].w)));
  }
  float ms = -FLT_MAX;
  float ss = 0.0f;
  for (uint i = ROW_CACHE * stride + tid * 4; i < C; i += stride) {
    online_add(ms, ss, load_quad(row, i, C, aligned, -FLT_MAX));
  }

  // Row max: SIMD group, then across SIMD groups (every group reduces the
  // slots itself, which saves a second barrier and a broadcast).
  float row_max = simd_max(max(m, ms));
  if (lane == 0) red[sg] = row_max;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  row_max = simd_max(lane < n_sg ? red[lane] : -FLT_MAX);
  threadgroup_barrier(mem_flags::mem_threadgroup);  // red is reused below

  // exp in place (padding becomes 0), plus the streamed sum rescaled to the
  // row max; then the row sum.
  float part = ss * exp(ms - row_max);
  for (uint c = 0; c < ROW_CACHE; ++c) {
    cache[c] = exp(cache[c] - row_max);
    part += (cache[c].x + cache[c].y) + (cache[c].z + cache[c].w);
  }
  part = simd_sum(part);
  if (lane == 0) red[sg] = part;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const float inv = 1.0f / simd_sum(lane < n_sg ? red[lane] : 0.0f);

  // Pass 2: write from registers; the streamed remainder is read again.
  for (uint c = 0; c < ROW_CACHE; ++c) {
    const uint i = c * stride + tid * 4;
    if (i < C) store_quad(out, i, C, aligned, cache[c] * inv);
  }
  for (uint i = ROW_CACHE * stride + tid * 4; i < C; i += stride) {
    store_quad(out, i, C, aligned, exp(load_quad(row, i, C, aligned, 0.0f) - row_max) * inv);
  }
}
