#include <metal_stdlib>
using namespace metal;

// Swish (SiLU) on float16: y = x * sigmoid(x).
// Fast: one thread per 8 elements, read and written as two half4 (16 bytes per thread
// each way, the access width that saturates memory); the math runs in float32 registers
// and rounds once to half on the store. The tail thread goes element by element through
// the same float4 math.

static inline float4 op4(float4 x) {
  return x / (1.0f + exp(-x));
}

kernel void swish_f16(device const half* x [[buffer(0)]],
                      device half* y [[buffer(1)]],
                      constant uint& n [[buffer(2)]],
                      uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 8;
  if (i + 8 <= n) {
    const device half4* src = reinterpret_cast<device const half4*>(x + i);
    device half4* dst = reinterpret_cast<device half4*>(y + i);
    const float4 a = float4(src[0]);
    const float4 b = float4(src[1]);
    dst[0] = half4(op4(a));
    dst[1] = half4(op4(b));
  } else {
    for (uint j = i; j < n; j += 4) {
      float4 v = float4(0.0f);
      for (uint k = 0; k < 4 && j + k < n; ++k) v[k] = float(x[j + k]);
      const float4 r = op4(v);
      for (uint k = 0; k < 4 && j + k < n; ++k) y[j + k] = half(r[k]);
    }
  }
}
