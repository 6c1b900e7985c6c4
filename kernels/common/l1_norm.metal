#include <metal_stdlib>
using namespace metal;

// L1 norm of each row of x[R, C]: one threadgroup per row. Fast because the
// row is streamed once with float4 loads (consecutive threads read
// consecutive 16-byte quads), each thread keeps a float4 of partial sums
// (4 independent add chains), then simd_sum and one threadgroup stage.

// x[i..i+3] of a row: one float4 load when the row starts 16-byte aligned and
// the quad is whole, element by element otherwise; missing elements read 0.
static inline float4 load_quad(device const float* row, uint i, uint n, bool aligned) {
  if (aligned && i + 4 <= n) return *reinterpret_cast<device const float4*>(row + i);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = row[i + j];
  return v;
}

kernel void l1_norm_f32(device const float* x [[buffer(0)]],
                        device float* y [[buffer(1)]],
                        constant uint& C [[buffer(2)]],
                        uint r [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint tg_size [[threads_per_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]],
                        uint sg [[simdgroup_index_in_threadgroup]],
                        uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32];
  const ulong start = ulong(r) * C;
  device const float* row = x + start;
  const bool aligned = (start & 3) == 0;

  float4 acc = float4(0.0f);
  for (uint i = tid * 4; i < C; i += tg_size * 4) acc += abs(load_quad(row, i, C, aligned));
  float s = simd_sum((acc.x + acc.y) + (acc.z + acc.w));
  if (lane == 0) red[sg] = s;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (sg == 0) {
    s = simd_sum(lane < n_sg ? red[lane] : 0.0f);
    if (lane == 0) y[r] = s;
  }
}
