#include <metal_stdlib>
using namespace metal;

// PReLU: y = x if x > 0 else alpha[c] * x, x[M, N] row-major, alpha[N] per column.
// Fast: one thread per 4 elements with float4 loads and stores of x and y. When N is a
// multiple of 4 (uniform for the whole grid, so no divergence) the 4 lanes share one
// row and the slopes are one float4 load too; alpha is small and stays in cache. Else
// each lane finds its column (wrapping at most once). The tail thread goes scalar.
kernel void prelu_f32(device const float* x [[buffer(0)]],
                      device const float* alpha [[buffer(1)]],
                      device float* y [[buffer(2)]],
                      constant uint& n [[buffer(3)]],
                      constant uint& N [[buffer(4)]],
                      uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 4;
  if (i + 4 <= n) {
    const float4 v = *reinterpret_cast<device const float4*>(x + i);
    const uint c = i % N;
    float4 a;
    if ((N & 3u) == 0) {
      a = *reinterpret_cast<device const float4*>(alpha + c);
    } else {
      for (uint j = 0; j < 4; ++j) {
        const uint cj = c + j;
        a[j] = alpha[cj >= N ? cj - N : cj];
      }
    }
    *reinterpret_cast<device float4*>(y + i) = select(a * v, v, v > 0.0f);
  } else {
    for (uint j = i; j < n; ++j) y[j] = x[j] > 0.0f ? x[j] : alpha[j % N] * x[j];
  }
}
