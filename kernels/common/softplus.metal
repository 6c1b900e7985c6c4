#include <metal_stdlib>
using namespace metal;

// Softplus: y = log(1 + exp(x)) = logaddexp(x, 0).
// Fast: one thread per 4 elements: float4 loads and stores (16 bytes per access) keep the
// memory system saturated; the thread holding the tail (n not a multiple of 4) runs
// the same float4 math on a zero-padded vector, so there is one code path to get right.

// log(1 + u) accurate for small u (MSL has no log1p): log(w) * u / (w - 1) with
// w = 1 + u rounded cancels w's rounding error; u itself where w rounds to 1.
static inline float4 log1p4(float4 u) {
  const float4 w = 1.0f + u;
  return select(log(w) * (u / (w - 1.0f)), u, w == 1.0f);
}

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): exp never overflows, and
// the log1p keeps e^-|x| when it is tiny (x very negative). NaN stays NaN.
static inline float4 softplus4(float4 x) {
  return select(float4(0.0f), x, x > 0.0f) + log1p4(exp(-abs(x)));
}

static inline float4 op4(float4 x) {
  return softplus4(x);
}

kernel void softplus_f32(device const float* x [[buffer(0)]],
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
