#include <metal_stdlib>
using namespace metal;

// ELU: y = x if x > 0 else alpha * (exp(x) - 1), alpha 1.0 (MLX nn.elu).
// Fast: one thread per 4 elements: float4 loads and stores (16 bytes per access) keep the
// memory system saturated; the thread holding the tail (n not a multiple of 4) runs
// the same float4 math on a zero-padded vector, so there is one code path to get right.

// e^x - 1 accurate near 0 (MSL has no expm1): (u - 1) * x / log(u) with u = e^x
// rounded cancels u's rounding error; x where u rounds to 1, -1 where u - 1 does.
static inline float4 expm1_4(float4 x) {
  const float4 u = exp(x);
  const float4 um1 = u - 1.0f;
  return select(select(um1 * x / log(u), float4(-1.0f), um1 == -1.0f), x, u == 1.0f);
}

static inline float4 op4(float4 x, float alpha) {
  return select(alpha * expm1_4(x), x, x > 0.0f);
}

kernel void elu_f32(device const float* x [[buffer(0)]],
                    device float* y [[buffer(1)]],
                    constant uint& n [[buffer(2)]],
                    constant float& alpha [[buffer(3)]],
                    uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 4;
  if (i + 4 <= n) {
    const float4 v = *reinterpret_cast<device const float4*>(x + i);
    *reinterpret_cast<device float4*>(y + i) = op4(v, alpha);
  } else if (i < n) {
    float4 v = float4(0.0f);
    for (uint j = 0; i + j < n; ++j) v[j] = x[i + j];
    const float4 r = op4(v, alpha);
    for (uint j = 0; i + j < n; ++j) y[i + j] = r[j];
  }
}
