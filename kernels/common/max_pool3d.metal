#include <metal_stdlib>
using namespace metal;

// Max pool 3-D, channels last: x[N, D, H, W, C] -> y[N, OD, OH, OW, C],
// K x K x K windows, stride S, no padding.
//
// Memory-bound, so every byte is moved in wide, coalesced accesses: one
// thread per output voxel and 4 channels, each window tap one 16-byte float4
// load, neighbouring threads on neighbouring channels (a SIMD group reads
// whole cache lines). K and S are function constants, so the window loops
// unroll and all K^3 loads are in flight before the first compare; the grid
// [OW*C/4, OH, N*OD] gives every coordinate with two divisions (by C/4, OD).
// C % 4 == 0 (the pool template checks it).

constant uint K [[function_constant(0)]];
constant uint S [[function_constant(1)]];

// max that keeps NaN, as MLX does: Metal's max(m, v) returns the other
// operand when one is NaN. Once m is NaN it stays NaN; a NaN v replaces m.
static inline float4 max_nan(float4 m, float4 v) {
  return select(v, m, m >= v || isnan(m));
}

kernel void max_pool3d_f32(device const float4* x [[buffer(0)]],
                           device float4* y [[buffer(1)]],
                           constant uint& D [[buffer(2)]],
                           constant uint& H [[buffer(3)]],
                           constant uint& W [[buffer(4)]],
                           constant uint& C [[buffer(5)]],
                           constant uint& OD [[buffer(6)]],
                           constant uint& OH [[buffer(7)]],
                           constant uint& OW [[buffer(8)]],
                           uint3 gid [[thread_position_in_grid]]) {
  const uint C4 = C / 4;
  const uint ow = gid.x / C4;
  const uint c4 = gid.x - ow * C4;
  const uint oh = gid.y;
  const uint n = gid.z / OD;
  const uint od = gid.z - n * OD;

  // The window's first tap; taps step by a voxel (C4), a row (W*C4) and a
  // plane (H*W*C4).
  device const float4* p = x + (((n * D + od * S) * H + oh * S) * W + ow * S) * C4 + c4;
  const uint row = W * C4, plane = H * row;
  float4 m = p[0];
  for (uint i = 0; i < K; ++i) {
    for (uint j = 0; j < K; ++j) {
      for (uint l = 0; l < K; ++l) {
        if (i != 0 || j != 0 || l != 0) m = max_nan(m, p[i * plane + j * row + l * C4]);
      }
    }
  }
  y[(gid.z * OH + oh) * OW * C4 + gid.x] = m;
}
