#include <metal_stdlib>
using namespace metal;

// y[M] = A[M, K] @ x[K], row-major float32.
//
// What makes it fast: it is memory-bound (A is read once, 2 FLOPs per 4
// bytes), so everything serves the stream of A. One SIMD group per block of
// 4 rows: lanes walk K by float4, so a step reads 512 contiguous bytes of
// each row, and each float4 of x is loaded once for the 4 rows. Four SIMD
// groups per threadgroup; each row's 32 partial sums meet in one simd_sum.
// Rows of a K that is not a multiple of 4 are not 16-byte aligned: they are
// read as packed_float4 (4-byte aligned) with the same loop, plus a scalar tail.

constant constexpr uint ROWS = 4;       // rows per SIMD group
constant constexpr uint SIMD_GROUPS = 4;  // per threadgroup (128 threads)

template <typename V>
static inline void rows_dot(device const float* A, device const float* x, uint row0, uint M,
                            uint K, uint lane, thread float4* acc) {
  const uint K4 = K / 4;
  device const V* xv = reinterpret_cast<device const V*>(x);
  device const V* ar[ROWS];
  for (uint r = 0; r < ROWS; ++r)  // rows past M read the last row; their sums are dropped
    ar[r] = reinterpret_cast<device const V*>(A + ulong(min(row0 + r, M - 1)) * K);
  for (uint k = lane; k < K4; k += 32) {
    const float4 xk = float4(xv[k]);
    for (uint r = 0; r < ROWS; ++r) acc[r] = fma(float4(ar[r][k]), xk, acc[r]);
  }
}

kernel void matvec_f32(device const float* A [[buffer(0)]],
                       device const float* x [[buffer(1)]],
                       device float* y [[buffer(2)]],
                       constant uint& M [[buffer(3)]],
                       constant uint& K [[buffer(4)]],
                       uint group [[threadgroup_position_in_grid]],
                       uint sg [[simdgroup_index_in_threadgroup]],
                       uint lane [[thread_index_in_simdgroup]]) {
  const uint row0 = (group * SIMD_GROUPS + sg) * ROWS;
  if (row0 >= M) return;  // the whole SIMD group leaves together
  float4 acc[ROWS] = {float4(0.0f), float4(0.0f), float4(0.0f), float4(0.0f)};
  if ((K & 3) == 0) rows_dot<float4>(A, x, row0, M, K, lane, acc);
  else rows_dot<packed_float4>(A, x, row0, M, K, lane, acc);
  for (uint k = (K & ~3u) + lane; k < K; k += 32) {  // the last K % 4 columns
    for (uint r = 0; r < ROWS; ++r) acc[r].x = fma(A[ulong(min(row0 + r, M - 1)) * K + k], x[k], acc[r].x);
  }
  for (uint r = 0; r < ROWS; ++r) {
    const float s = simd_sum((acc[r].x + acc[r].y) + (acc[r].z + acc[r].w));
    if (lane == 0 && row0 + r < M) y[row0 + r] = s;
  }
}
