#include <metal_stdlib>
using namespace metal;

// y = gelu(avgpool2(layer_norm(conv_transpose3d(x, w) + sum_term))):
// x[N, D, H, W, C], w[F, R, R, R, C], sum_term[F], stride 1, no padding
// (OX = X + R - 1), channels last; LayerNorm over the F filters without an
// affine (eps), 2x2x2 average pool with stride 2 (odd last slices dropped),
// exact GELU. y[N, OD/2, OH/2, OW/2, F].
//
// What makes it fast: everything in one dispatch, nothing but y written. One
// threadgroup per pooled voxel: its 8 SIMD groups are the 8 voxels of the
// window and a SIMD group's lanes its filters (up to 128, 4 per lane), so the
// LayerNorm's mean and variance are two simd_sums in registers, and the pool
// is one exchange of 8 rows through threadgroup memory. x values are shared
// by the lanes (one broadcast load each), weights are float4 loads over C.
//
// Like MLX's conv_transpose3d (a convolution over x padded with R - 1 zeros),
// every tap is multiplied, a padding tap by 0: an Inf or NaN weight there
// makes the output NaN as it does in MLX.

constant constexpr uint MAX_CHUNKS = 4;  // filters per lane: F <= 128

// erf (MSL has none): the float32 polynomials of kernels/common/gelu.metal,
// |error| < 1.5e-7 (x * P(x^2) below 1, else sign(x) * (1 - exp(Q(|x|)))).
static inline float erf1(float x) {
  const float a = abs(x), s = x * x;
  float p = -5.69670578e-4f;
  p = fma(p, s, 4.93451674e-3f);
  p = fma(p, s, -2.67269872e-2f);
  p = fma(p, s, 1.12807892e-1f);
  p = fma(p, s, -3.76124144e-1f);
  p = fma(p, s, 1.12837911f);
  const float t = min(a, 4.0f);
  float q = 1.6140616e-6f;
  q = fma(q, t, -4.55906229e-5f);
  q = fma(q, t, 5.92769531e-4f);
  q = fma(q, t, -4.74022236e-3f);
  q = fma(q, t, 2.63647176e-2f);
  q = fma(q, t, -1.09978244e-1f);
  q = fma(q, t, -6.31937087e-1f);
  q = fma(q, t, -1.13016665f);
  q = fma(q, t, 3.0321299e-4f);
  return a < 1.0f ? x * p : copysign(1.0f - exp(q), x);
}

kernel void conv_transpose3d_norm_pool_gelu_f32(device const float* x [[buffer(0)]],
                                                device const float* w [[buffer(1)]],
                                                device const float* sum_term [[buffer(2)]],
                                                device float* y [[buffer(3)]],
                                                constant uint& N [[buffer(4)]],
                                                constant uint& C [[buffer(5)]],
                                                constant uint& F [[buffer(6)]],
                                                constant uint& D [[buffer(7)]],
                                                constant uint& H [[buffer(8)]],
                                                constant uint& W [[buffer(9)]],
                                                constant uint& OD [[buffer(10)]],
                                                constant uint& OH [[buffer(11)]],
                                                constant uint& OW [[buffer(12)]],
                                                constant uint& R [[buffer(13)]],
                                                constant uint& stride [[buffer(14)]],
                                                constant uint& padding [[buffer(15)]],
                                                constant uint& dilation [[buffer(16)]],
                                                constant float& eps [[buffer(17)]],
                                                uint p [[threadgroup_position_in_grid]],
                                                uint sg [[simdgroup_index_in_threadgroup]],
                                                uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float rows[8][32 * MAX_CHUNKS];  // each window voxel's normalised filters

  const uint PD = OD / 2, PH = OH / 2, PW = OW / 2;
  const uint pw = p % PW, ph = (p / PW) % PH, pd = (p / (PW * PH)) % PD, n = p / (PW * PH * PD);
  // This SIMD group's voxel of the 2x2x2 window.
  const int od = int(2 * pd + (sg >> 2)), oh = int(2 * ph + ((sg >> 1) & 1)),
            ow = int(2 * pw + (sg & 1));

  float v[MAX_CHUNKS];
  for (uint j = 0; j < MAX_CHUNKS; ++j) {
    const uint f = lane + 32 * j;
    v[j] = f < F ? sum_term[f] : 0.0f;
  }
  const bool c4 = (C & 3) == 0;
  const uint taps = R * R * R;
  for (uint tap = 0; tap < taps; ++tap) {
    const int kd = tap / (R * R), kh = (tap / R) % R, kw = tap % R;
    const int id = od - kd, ih = oh - kh, iw = ow - kw;  // y[i + k] += x[i] * w[k]
    const bool inside = id >= 0 && ih >= 0 && iw >= 0 && id < int(D) && ih < int(H) &&
                        iw < int(W);
    device const float* xp =
        x + (((ulong(n) * D + (inside ? id : 0)) * H + (inside ? ih : 0)) * W + (inside ? iw : 0)) * C;
    for (uint c = 0; c < C; c += 4) {
      float4 xv = float4(0.0f);
      if (inside) {
        if (c4) {
          xv = *reinterpret_cast<device const float4*>(xp + c);
        } else {
          for (uint e = 0; e < 4 && c + e < C; ++e) xv[e] = xp[c + e];
        }
      }
      for (uint j = 0; j < MAX_CHUNKS; ++j) {
        const uint f = lane + 32 * j;
        if (f >= F) break;
        device const float* wp = w + (ulong(f) * taps + tap) * C + c;
        float4 wv = float4(0.0f);
        if (c4) {
          wv = *reinterpret_cast<device const float4*>(wp);
        } else {
          for (uint e = 0; e < 4 && c + e < C; ++e) wv[e] = wp[e];
        }
        v[j] += dot(xv, wv);
      }
    }
  }

  // LayerNorm over the F filters of this voxel: mean, then the mean squared
  // deviation (no E[x^2] - E[x]^2 cancellation).
  float s = 0.0f;
  for (uint j = 0; j < MAX_CHUNKS; ++j) s += lane + 32 * j < F ? v[j] : 0.0f;
  const float mean = simd_sum(s) / float(F);
  float q = 0.0f;
  for (uint j = 0; j < MAX_CHUNKS; ++j) {
    const float d = v[j] - mean;
    q += lane + 32 * j < F ? d * d : 0.0f;
  }
  const float rstd = rsqrt(simd_sum(q) / float(F) + eps);
  for (uint j = 0; j < MAX_CHUNKS; ++j) rows[sg][lane + 32 * j] = (v[j] - mean) * rstd;
  threadgroup_barrier(mem_flags::mem_threadgroup);

  // Average of the 8 voxels, GELU, by the first SIMD group.
  if (sg != 0) return;
  for (uint j = 0; j < MAX_CHUNKS; ++j) {
    const uint f = lane + 32 * j;
    if (f >= F) break;
    float a = 0.0f;
    for (uint k = 0; k < 8; ++k) a += rows[k][f];
    a *= 0.125f;
    y[ulong(p) * F + f] = 0.5f * a * (1.0f + erf1(a * M_SQRT1_2_F));
  }
}
