#include <metal_stdlib>
using namespace metal;

// Average pool 2-D, channels last: x[N, H, W, C] -> y[N, OH, OW, C], K x K
// windows, stride S, no padding.
//
// Memory-bound, so every byte is moved in wide, coalesced accesses: one
// thread per output pixel and 4 channels, each window tap one 16-byte float4
// load, neighbouring threads on neighbouring channels (a SIMD group reads
// whole cache lines). K and S are function constants, so the window loop
// unrolls and all K*K loads are in flight before the first add; the grid
// [OW*C/4, OH, N] gives every coordinate without a division but one by C/4.
// C % 4 == 0 (the pool template checks it).

constant uint K [[function_constant(0)]];
constant uint S [[function_constant(1)]];

kernel void avg_pool2d_f32(device const float4* x [[buffer(0)]],
                           device float4* y [[buffer(1)]],
                           constant uint& H [[buffer(2)]],
                           constant uint& W [[buffer(3)]],
                           constant uint& C [[buffer(4)]],
                           constant uint& OH [[buffer(5)]],
                           constant uint& OW [[buffer(6)]],
                           uint3 gid [[thread_position_in_grid]]) {
  const uint C4 = C / 4;
  const uint ow = gid.x / C4;
  const uint c4 = gid.x - ow * C4;
  const uint oh = gid.y, n = gid.z;

  // The window's top-left tap; taps step by a pixel (C4) and a row (W*C4).
  device const float4* p = x + ((n * H + oh * S) * W + ow * S) * C4 + c4;
  const uint row = W * C4;
  float4 s = 0.0f;
  for (uint i = 0; i < K; ++i) {
    for (uint j = 0; j < K; ++j) s += p[i * row + j * C4];
  }
  y[(n * OH + oh) * OW * C4 + gid.x] = s * (1.0f / float(K * K));
}
