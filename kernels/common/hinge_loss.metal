#include <metal_stdlib>
using namespace metal;

// Element-wise hinge loss y = max(1 - pred * target, 0), NaN kept as NaN (as
// MLX; Metal's max(v, 0.0f) would return 0 for NaN, hence select).
// One thread per 4 elements: float4 loads and stores move 16 bytes per
// access, which is what saturates the memory system on Apple GPUs; the
// thread holding the tail (n not a multiple of 4) goes scalar.

template <typename T>
static inline T f(T p, T t) {
  const T v = T(1.0f) - p * t;
  return select(v, T(0.0f), v < T(0.0f));
}

kernel void hinge_loss_f32(device const float* pred [[buffer(0)]],
                           device const float* target [[buffer(1)]],
                           device float* y [[buffer(2)]],
                           constant uint& n [[buffer(3)]],
                           uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 4;
  if (i + 4 <= n) {
    *reinterpret_cast<device float4*>(y + i) =
        f(*reinterpret_cast<device const float4*>(pred + i),
          *reinterpret_cast<device const float4*>(target + i));
  } else {
    for (uint j = i; j < n; ++j) y[j] = f(pred[j], target[j]);
  }
}
