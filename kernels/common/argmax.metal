#include <metal_stdlib>
using namespace metal;

// Index of the largest element of each row of x[R, C] (uint32), as MLX
// defines it: ties go to the lowest index, and NaN ranks above everything
// (the first NaN wins). One threadgroup per row. Fast because the row is
// read once with float4 loads; each thread keeps one (value, index) pair,
// SIMD groups combine pairs with 5 simd_shuffle_xor steps (no threadgroup
// memory), and one threadgroup stage combines the SIMD groups.

static inline float4 load_quad(device const float* row, uint i, uint n, bool aligned) {
  if (aligned && i + 4 <= n) return *reinterpret_cast<device const float4*>(row + i);
  float4 v = float4(-INFINITY);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = row[i + j];
  return v;
}

// Whether (a, ia) ranks ahead of (b, ib).
static inline bool ahead(float a, uint ia, float b, uint ib) {
  const bool na = isnan(a), nb = isnan(b);
  if (na != nb) return na;
  if (!na && a != b) return a > b;
  return ia < ib;
}

static inline void simd_best(thread float& v, thread uint& idx) {
  for (ushort d = 16; d > 0; d >>= 1) {
    const float ov = simd_shuffle_xor(v, d);
    const uint oi = simd_shuffle_xor(idx, d);
    if (ahead(ov, oi, v, idx)) {
      v = ov;
      idx = oi;
    }
  }
}

kernel void argmax_f32(device const float* x [[buffer(0)]],
                       device uint* y [[buffer(1)]],
                       constant uint& C [[buffer(2)]],
                       uint r [[threadgroup_position_in_grid]],
                       uint tid [[thread_index_in_threadgroup]],
                       uint tg_size [[threads_per_threadgroup]],
                       uint lane [[thread_index_in_simdgroup]],
                       uint sg [[simdgroup_index_in_threadgroup]],
                       uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red_v[32];
  threadgroup uint red_i[32];
  const ulong start = ulong(r) * C;
  device const float* row = x + start;
  const bool aligned = (start & 3) == 0;

  // Elements arrive in increasing index order per thread, so a strict
  // "ahead" keeps the first of equal values. Padding (index >= C) never wins.
  float bv = -INFINITY;
  uint bi = UINT_MAX;
  for (uint i = tid * 4; i < C; i += tg_size * 4) {
    const float4 q = load_quad(row, i, C, aligned);
    for (uint j = 0; j < 4; ++j) {
      if (i + j < C && ahead(q[j], i + j, bv, bi)) {
        bv = q[j];
        bi = i + j;
      }
    }
  }
  simd_best(bv, bi);
  if (lane == 0) {
    red_v[sg] = bv;
    red_i[sg] = bi;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) {
    bv = lane < n_sg ? red_v[lane] : -INFINITY;
    bi = lane < n_sg ? red_i[lane] : UINT_MAX;
    simd_best(bv, bi);
    if (lane == 0) y[r] = bi;
  }
}
