#include <metal_stdlib>
using namespace metal;

// GELU, exact form: y = x * (1 + erf(x / sqrt(2))) / 2 (MLX's nn.gelu).
// MSL has no erf, so erf is two float32 polynomials (least-squares fits on
// Chebyshev nodes, |error| < 1.5e-7 on all of R):
//   |x| < 1 : erf(x) = x * P(x^2)                 (degree 5 in x^2)
//   |x| >= 1: erf(x) = sign(x) * (1 - exp(Q(|x|))) (degree 8; |x| clamped to 4,
//             past which erf rounds to +-1 in float32)
// Both branches are evaluated and selected per lane: no divergence within a
// SIMD group, and the whole thing stays in float4 registers.
static inline float4 erf4(float4 x) {
  const float4 a = abs(x);
  const float4 s = x * x;
  float4 p = float4(-5.69670578e-4f);
  p = fma(p, s, float4(4.93451674e-3f));
  p = fma(p, s, float4(-2.67269872e-2f));
  p = fma(p, s, float4(1.12807892e-1f));
  p = fma(p, s, float4(-3.76124144e-1f));
  p = fma(p, s, float4(1.12837911f));
  const float4 small = x * p;

  const float4 t = min(a, float4(4.0f));
  float4 q = float4(1.6140616e-6f);
  q = fma(q, t, float4(-4.55906229e-5f));
  q = fma(q, t, float4(5.92769531e-4f));
  q = fma(q, t, float4(-4.74022236e-3f));
  q = fma(q, t, float4(2.63647176e-2f));
  q = fma(q, t, float4(-1.09978244e-1f));
  q = fma(q, t, float4(-6.31937087e-1f));
  q = fma(q, t, float4(-1.13016665f));
  q = fma(q, t, float4(3.0321299e-4f));
  const float4 big = copysign(1.0f - exp(q), x);
  return select(small, big, a >= 1.0f);
}

static inline float4 gelu4(float4 x) {
  return 0.5f * x * (1.0f + erf4(x * M_SQRT1_2_F));
}

// One thread per 4 elements: float4 loads and stores (16 bytes per access);
// the thread holding the tail (n not a multiple of 4) goes scalar through the
// same float4 math with unused lanes zero.
kernel void gelu_f32(device const float* x [[buffer(0)]],
                     device float* y [[buffer(1)]],
                     constant uint& n [[buffer(2)]],
                     uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 4;
  if (i + 4 <= n) {
    const float4 v = *reinterpret_cast<device const float4*>(x + i);
    *reinterpret_cast<device float4*>(y + i) = gelu4(v);
  } else if (i < n) {
    float4 v = float4(0.0f);
    for (uint j = 0; i + j < n; ++j) v[j] = x[i + j];
    const float4 r = gelu4(v);
    for (uint j = 0; i + j < n; ++j) y[i + j] = r[j];
  }
}
