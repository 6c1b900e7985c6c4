#include <metal_stdlib>
using namespace metal;

// Reverse inclusive prefix sum along the last dimension of x[R, C] (y[i] = sum of x[i:]).
// One threadgroup per row walks the row in chunks of 4 * threads elements
// from the row's end with a running carry (the sum of all earlier chunks).
// Fast because each element is read once and written once with float4
// accesses; within a chunk, thread t owns one quad (a serial scan of its 4
// values), simd_prefix_exclusive_sum scans the quad totals across the SIMD
// group, and the SIMD-group totals go through one threadgroup array that
// every SIMD group scans itself - one barrier pair per chunk.

// Quads are counted from the row's end: quad i holds x[n-1-i], ..., x[n-4-i]
// (component 0 is the element nearest the end). One float4 load, reversed in
// registers, when the row ends on a 16-byte boundary and the quad is whole;
// element by element otherwise; missing elements read 0.
static inline float4 load_quad(device const float* row, uint i, uint n, bool aligned) {
  if (aligned && i + 4 <= n) return (*reinterpret_cast<device const float4*>(row + n - i - 4)).wzyx;
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = row[n - 1 - (i + j)];
  return v;
}

static inline void store_quad(device float* row, uint i, uint n, bool aligned, float4 v) {
  if (aligned && i + 4 <= n) {
    *reinterpret_cast<device float4*>(row + n - i - 4) = v.wzyx;
    return;
  }
  for (uint j = 0; j < 4 && i + j < n; ++j) row[n - 1 - (i + j)] = v[j];
}

kernel void cumsum_reverse_f32(device const float* x [[buffer(0)]],
                               device float* y [[buffer(1)]],
                               constant uint& C [[buffer(2)]],
                               uint r [[threadgroup_position_in_grid]],
                               uint tid [[thread_index_in_threadgroup]],
                               uint tg_size [[threads_per_threadgroup]],
                               uint lane [[thread_index_in_simdgroup]],
                               uint sg [[simdgroup_index_in_threadgroup]],
                               uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float sg_total[32];  // one slot per SIMD group (at most 1024 / 32)

  const ulong start = ulong(r) * C;
  device float* out = y + start;
  const bool aligned = ((start + C) & 3) == 0;
  // The last lane of this SIMD group (partial when threads % 32 != 0).
  const uint last_lane = min(32u, tg_size - sg * 32) - 1;

  float carry = 0.0f;
  // Every thread runs every chunk (also those past the row's end) so that
  // the SIMD-group functions and barriers see uniform control flow.
  for (uint base = 0; base < C; base += tg_size * 4) {
    const uint i = base + tid * 4;
    const float4 v = i < C ? load_quad(x + start, i, C, aligned) : float4(0.0f);
    float4 s = v;  // inclusive scan of the quad
    s.y += s.x;
    s.z += s.y;
    s.w += s.z;
    const float t = s.w;
    const float lane_prefix = simd_prefix_exclusive_sum(t);
    if (lane == last_lane) sg_total[sg] = lane_prefix + t;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    const float slot = lane < n_sg ? sg_total[lane] : 0.0f;
    const float sg_prefix = simd_shuffle(simd_prefix_exclusive_sum(slot), ushort(sg));
    const float chunk_total = simd_sum(slot);
    threadgroup_barrier(mem_flags::mem_threadgroup);  // sg_total is rewritten next chunk

    if (i < C) store_quad(out, i, C, aligned, s + ((carry + sg_prefix) + lane_prefix));
    carry = carry + chunk_total;
  }
}
