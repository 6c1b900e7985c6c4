// C = A @ B with simdgroup_matrix, for ffi/sim/bench/bench.ts: one 64x64
// tile per threadgroup of 128 threads; each SIMD group owns a 32x32 block as
// 4x4 accumulators of 8x8 and walks K in steps of 8, loading its A and B
// fragments straight from device memory. M and N multiples of 64, K of 8.
#include <metal_stdlib>
using namespace metal;

kernel void simdgroup_mm_f32(device const float* A [[buffer(0)]],
                             device const float* B [[buffer(1)]],
                             device float* C [[buffer(2)]],
                             constant uint& M [[buffer(3)]],
                             constant uint& N [[buffer(4)]],
                             constant uint& K [[buffer(5)]],
                             uint2 group [[threadgroup_position_in_grid]],
                             uint sg [[simdgroup_index_in_threadgroup]]) {
  (void)M;
  const uint row0 = group.y * 64 + (sg / 2) * 32;
  const uint col0 = group.x * 64 + (sg % 2) * 32;
  simdgroup_float8x8 acc[4][4];
  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  for (uint k = 0; k < K; k += 8) {
    simdgroup_float8x8 a[4], b[4];
    for (uint i = 0; i < 4; ++i) simdgroup_load(a[i], A, K, ulong2(k, row0 + 8 * i));
    for (uint j = 0; j < 4; ++j) simdgroup_load(b[j], B, N, ulong2(col0 + 8 * j, k));
    for (uint i = 0; i < 4; ++i)
      for (uint j = 0; j < 4; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
  }
  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j)
      simdgroup_store(acc[i][j], C, N, ulong2(col0 + 8 * j, row0 + 8 * i));
}
