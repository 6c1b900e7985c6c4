#include <metal_stdlib>
using namespace metal;

// Swish (SiLU) on bfloat16: y = x * sigmoid(x).
// Fast: one thread per 8 elements, read and written as two bfloat4 (16 bytes per thread
// each way, the access width that saturates memory); the math runs in float32 registers
// and rounds once to bfloat on the store. The tail thread goes element by element through
// the same float4 math.

static inline float4 op4(float4 x) {
  return x / (1.0f + exp(-x));
}

kernel void swish_bf16(device const bfloat* x [[buffer(0)]],
                       device bfloat* y [[buffer(1)]],
                       constant uint& n [[buffer(2)]],
                       uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 8;
  if (i + 8 <= n) {
    const device bfloat4* src = reinterpret_cast<device const bfloat4*>(x + i);
    device bfloat4* dst = reinterpret_cast<device bfloat4*>(y + i);
    const float4 a = float4(src[0]);
    const float4 b = float4(src[1]);
    dst[0] = bfloat4(op4(a));
    dst[1] = bfloat4(op4(b));
  } else {
    for (uint j = i; j < n; j += 4) {
      float4 v = float4(0.0f);
      for (uint k = 0; k < 4 && j + k < n; ++k) v[k] = float(x[j + k]);
      const float4 r = op4(v);
      for (uint k = 0; k < 4 && j + k < n; ++k) y[j + k] = bfloat(r[k]);
    }
  }
}
