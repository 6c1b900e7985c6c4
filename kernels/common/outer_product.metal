#include <metal_stdlib>
using namespace metal;

// C[i, j] = x[i] * y[j], x [M], y [N] -> C [M, N] row-major float32.
//
// What makes it fast: it is a pure store stream (M*N outputs from M + N
// inputs), so each thread writes one float4 of a row - 16 bytes per store,
// a SIMD group 512 contiguous bytes - from one x[i] and one float4 of y
// (both cache hits after the first row). The grid is 2-D (columns/4, rows),
// so no thread divides to find its row. Rows of an N that is not a multiple
// of 4 are not 16-byte aligned: those are stored element by element.

kernel void outer_product_f32(device const float* x [[buffer(0)]],
                              device const float* y [[buffer(1)]],
                              device float* C [[buffer(2)]],
                              constant uint& M [[buffer(3)]],
                              constant uint& N [[buffer(4)]],
                              uint2 gid [[thread_position_in_grid]]) {
  const uint i = gid.y, j = gid.x * 4;
  if (i >= M || j >= N) return;
  const float xi = x[i];
  device float* out = C + ulong(i) * N + j;
  if ((N & 3) == 0) {
    *reinterpret_cast<device float4*>(out) = xi * *reinterpret_cast<device const float4*>(y + j);
  } else {
    for (uint k = 0; k < 4 && j + k < N; ++k) out[k] = xi * y[j + k];
  }
}
