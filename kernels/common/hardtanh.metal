#include <metal_stdlib>
using namespace metal;

// HardTanh: y = clip(x, -1, 1).
// Fast: one thread per 4 elements: float4 loads and stores (16 bytes per access) keep the
// memory system saturated; the thread holding the tail (n not a multiple of 4) runs
// the same float4 math on a zero-padded vector, so there is one code path to get right.

// clamp that keeps NaN (Metal's clamp/min/max may return a bound for NaN; MLX keeps NaN).
static inline float4 clamp_nan(float4 v, float lo, float hi) {
  return select(select(v, float4(lo), v < lo), float4(hi), v > hi);
}

static inline float4 op4(float4 x) {
  return clamp_nan(x, -1.0f, 1.0f);
}

kernel void hardtanh_f32(device const float* x [[buffer(0)]],
                         device float* y [[buffer(1)]],
                         constant uint& n [[buffer(2)]],
                         uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 4;
  if (i + 4 <= n) {
    const float4 v = *reinterpret_cast<device const float4*>(x + i);
    *reinterpret_cast<device float4*>(y + i) = op4(v);
  } else if (i < n) {
    float4 v = float4(0.0f);
    for (uint j = 0; i + j < n; ++j) v[j] = x[i + j];
    const float4 r = op4(v);
    for (uint j = 0; i + j < n; ++j) y[i + j] = r[j];
  }
}
