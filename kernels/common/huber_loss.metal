#include <metal_stdlib>
using namespace metal;

// Element-wise Huber loss of r = pred - target: r^2 / 2 where |r| <= delta,
// else delta * (|r| - delta / 2); NaN and Inf flow through as in MLX.
// One thread per 4 elements: float4 loads and stores move 16 bytes per
// access, which is what saturates the memory system on Apple GPUs; the
// thread holding the tail (n not a multiple of 4) goes scalar.

template <typename T>
static inline T f(T p, T t, float delta) {
  const T r = p - t;
  const T a = abs(r);
  return select(delta * (a - 0.5f * delta), 0.5f * r * r, a <= delta);
}

kernel void huber_loss_f32(device const float* pred [[buffer(0)]],
                           device const float* target [[buffer(1)]],
                           device float* y [[buffer(2)]],
                           constant uint& n [[buffer(3)]],
                           constant float& delta [[buffer(4)]],
                           uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 4;
  if (i + 4 <= n) {
    *reinterpret_cast<device float4*>(y + i) =
        f(*reinterpret_cast<device const float4*>(pred + i),
          *reinterpret_cast<device const float4*>(target + i), delta);
  } else {
    for (uint j = i; j < n; ++j) y[j] = f(pred[j], target[j], delta);
  }
}
