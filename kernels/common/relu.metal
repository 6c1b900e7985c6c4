#include <metal_stdlib>
using namespace metal;

// y = max(x, 0), NaN kept as NaN (as MLX does; Metal's max(x, 0.0f) would
// return 0 for NaN, hence select). One thread per 4 elements: float4 loads
// and stores move 16 bytes per access, which is what saturates the memory
// system on Apple GPUs; the thread holding the tail (n not a multiple of 4)
// goes scalar.
kernel void relu_f32(device const float* x [[buffer(0)]],
                     device float* y [[buffer(1)]],
                     constant uint& n [[buffer(2)]],
                     uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 4;
  if (i + 4 <= n) {
    const float4 v = *reinterpret_cast<device const float4*>(x + i);
    *reinterpret_cast<device float4*>(y + i) = select(v, float4(0.0f), v < 0.0f);
  } else {
    for (uint j = i; j < n; ++j) {
      y[j] = x[j] < 0.0f ? 0.0f : x[j];
    }
  }
}
