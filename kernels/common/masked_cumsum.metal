#include <metal_stdlib>
using namespace metal;

// Inclusive prefix sum of x * mask along the last dimension of x[R, C] (mask int32 0/1).
// One threadgroup per row walks the row in chunks of 4 * threads elements
// with a running carry (the sum of all earlier chunks).
// Fast because each element is read once and written once with float4
// accesses; within a chunk, thread t owns one quad (a serial scan of its 4
// values), simd_prefix_exclusive_sum scans the quad totals across the SIMD
// group, and the SIMD-group totals go through one threadgroup array that
// every SIMD group scans itself - one barrier pair per chunk.

// x[i..i+3] of a row: one float4 load when the row starts 16-byte aligned and
// the quad is whole, element by element otherwise; missing elements read 0.0f.
static inline float4 load_quad(device const float* row, uint i, uint n, bool aligned) {
  if (aligned && i + 4 <= n) return *reinterpret_cast<device const float4*>(row + i);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = row[i + j];
  return v;
}

static inline void store_quad(device float* row, uint i, uint n, bool aligned, float4 v) {
  if (aligned && i + 4 <= n) {
    *reinterpret_cast<device float4*>(row + i) = v;
    return;
  }
  for (uint j = 0; j < 4 && i + j < n; ++j) row[i + j] = v[j];
}

// The mask's quad as floats. x * mask, not select(): 0 * NaN and 0 * Inf
// are NaN, as in the reference.
static inline float4 load_mask(device const int* row, uint i, uint n, bool aligned) {
  if (aligned && i + 4 <= n) return float4(*reinterpret_cast<device const int4*>(row + i));
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = float(row[i + j]);
  return v;
}

kernel void masked_cumsum_f32(device const float* x [[buffer(0)]],
                              device const int* mask [[buffer(1)]],
                              device float* y [[buffer(2)]],
                              constant uint& C [[buffer(3)]],
                              uint r [[threadgroup_position_in_grid]],
                              uint tid [[thread_index_in_threadgroup]],
                              uint tg_size [[threads_per_threadgroup]],
                              uint lane [[thread_index_in_simdgroup]],
                              uint sg [[simdgroup_index_in_threadgroup]],
                              uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float sg_total[32];  // one slot per SIMD group (at most 1024 / 32)

  const ulong start = ulong(r) * C;
  device float* out = y + start;
  const bool aligned = (start & 3) == 0;
  // The last lane of this SIMD group (partial when threads % 32 != 0).
  const uint last_lane = min(32u, tg_size - sg * 32) - 1;

  float carry = 0.0f;
  // Every thread runs every chunk (also those past the row's end) so that
  // the SIMD-group functions and barriers see uniform control flow.
  for (uint base = 0; base < C; base += tg_size * 4) {
    const uint i = base + tid * 4;
    const float4 v =
        i < C ? load_quad(x + start, i, C, aligned) * load_mask(mask + start, i, C, aligned)
              : float4(0.0f);
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
