#include <metal_stdlib>
using namespace metal;

// Average pool 1-D, channels last: x[N, L, C] -> y[N, OL, C], windows of K
// along L, stride S, no padding.
//
// Memory-bound, so every byte is moved in wide, coalesced accesses: one
// thread per output position and 4 channels, each window tap one 16-byte
// float4 load, neighbouring threads on neighbouring channels (a SIMD group
// reads whole cache lines). K and S are function constants, so the window
// loop unrolls and all K loads are in flight before the first add.
// Overlapping windows (K > S) re-read a row that the cache still holds. The
// grid [OL*C/4, N] gives every coordinate with one division, by C/4.
// C % 4 == 0 (the pool template checks it).

constant uint K [[function_constant(0)]];
constant uint S [[function_constant(1)]];

kernel void avg_pool1d_f32(device const float4* x [[buffer(0)]],
                           device float4* y [[buffer(1)]],
                           constant uint& L [[buffer(2)]],
                           constant uint& C [[buffer(3)]],
                           constant uint& OL [[buffer(4)]],
                           uint2 gid [[thread_position_in_grid]]) {
  const uint C4 = C / 4;
  const uint ol = gid.x / C4;
  const uint c4 = gid.x - ol * C4;
  const uint n = gid.y;

  device const float4* p = x + (n * L + ol * S) * C4 + c4;
  float4 s = 0.0f;
  for (uint j = 0; j < K; ++j) s += p[j * C4];
  y[n * OL * C4 + gid.x] = s * (1.0f / float(K));
}
