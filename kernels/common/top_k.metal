#include <metal_stdlib>
using namespace metal;

// The k largest values of each row of x[R, C], sorted descending (NaN first,
// as MLX's sort of its topk puts it). One threadgroup per row, k rounds of a
// threadgroup argmax. Fast because the row is read from memory once into
// registers (thread t holds elements t, t + T, ... - coalesced loads), each
// thread caches the best of its own values and rescans only when its best
// was taken, and a round is 5 simd_shuffle_xor steps plus one threadgroup
// stage. Rows up to CAP * threads elements (4096 at 256 threads).

constant constexpr uint CAP = 16;

// Whether (a, ia) ranks ahead of (b, ib): NaN above all, ties to the lower index.
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

kernel void top_k_f32(device const float* x [[buffer(0)]],
                      device float* y [[buffer(1)]],
                      constant uint& C [[buffer(2)]],
                      constant uint& k [[buffer(3)]],
                      uint r [[threadgroup_position_in_grid]],
                      uint tid [[thread_index_in_threadgroup]],
                      uint tg_size [[threads_per_threadgroup]],
                      uint lane [[thread_index_in_simdgroup]],
                      uint sg [[simdgroup_index_in_threadgroup]],
                      uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red_v[32];
  threadgroup uint red_i[32];
  device const float* row = x + ulong(r) * C;

  float vals[CAP];
  uint live = 0;  // bit j: slot j holds an element not taken yet
  for (uint j = 0; j < CAP; ++j) {
    const uint i = tid + j * tg_size;
    vals[j] = i < C ? row[i] : -INFINITY;
    if (i < C) live |= 1u << j;
  }

  float bv = -INFINITY;
  uint bi = UINT_MAX;
  bool stale = true;
  for (uint round = 0; round < k; ++round) {
    if (stale) {
      bv = -INFINITY;
      bi = UINT_MAX;
      for (uint j = 0; j < CAP; ++j) {
        const uint i = tid + j * tg_size;
        if (((live >> j) & 1u) && ahead(vals[j], i, bv, bi)) {
          bv = vals[j];
          bi = i;
        }
      }
      stale = false;
    }
    float v = bv;
    uint idx = bi;
    simd_best(v, idx);
    if (lane == 0) {
      red_v[sg] = v;
      red_i[sg] = idx;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    v = lane < n_sg ? red_v[lane] : -INFINITY;
    idx = lane < n_sg ? red_i[lane] : UINT_MAX;
    simd_best(v, idx);
    threadgroup_barrier(mem_flags::mem_threadgroup);  // red is rewritten next round
    if (tid == 0) y[ulong(r) * k + round] = v;
    if (idx == bi && bi != UINT_MAX) {  // this thread's best was taken
      live &= ~(1u << ((idx - tid) / tg_size));
      stale = true;
    }
  }
}
