#include <metal_stdlib>
using namespace metal;

// y[N, OH, OW, F] = clamp(clamp(conv_transpose2d(x, w) + bias, -1, 1) * scale,
// -1, 1) / div: x[N, H, W, C], w[F, R, R, C], bias[F], stride 2, no padding
// (OH = 2(H - 1) + R), channels last. C % 4 == 0 and F % 4 == 0.
//
// What makes it fast: the transposed convolution runs as implicit GEMMs on
// simdgroup_matrix that multiply only real taps (the core below), and the
// bias and clamps are applied to the accumulators in registers on the way
// out: y is written once.

// ---- Transposed convolution as 4 implicit GEMMs (stride S = 2) -------------
// y[n, S*th + a, S*tw + b, f] takes x[n, th - jh, tw - jw, c] *
// w[f, a + S*jh, b + S*jw, c] over the taps (jh, jw) of its parity class
// (a, b): the other taps would multiply the zeros a dilated input holds, so
// each class is a dense GEMM Y[OUT_ab, F] = A[OUT_ab, K_ab] @ B[K_ab, F] with
// K_ab = JH_a * JW_b * C (at R = 3: 4C, 2C, 2C and C; 2.25 taps per output
// on average instead of 9). Grid z picks the class. Dispatch 1 runs these
// GEMMs over the class's interior pixels, where every class tap lands inside
// x; the frame where a tap falls outside (R - S rows and columns at each
// edge) is dispatch 2's, a plain loop over the valid taps, one thread per
// frame pixel and 4 filters. So no tap ever multiplies a padding zero: an Inf
// weight there would make a NaN that MLX, which skips those taps, does not.
//
// The GEMM is the design of conv2d.metal: 128 threads per 64-pixel x
// 64-filter tile, each SIMD group a 32x32 block as 4x4 simdgroup_float8x8
// accumulators, K walked in slices of 16 staged in threadgroup memory (float4
// gathers: C % 4 == 0 keeps a float4 inside one tap), the next slice loaded
// while the current one is multiplied.

constant constexpr uint BM = 64, BN = 64, BK = 16;
constant constexpr uint LD = BK + 4;  // row pad: fragment loads hit more banks
constant constexpr uint S = 2;        // the stride (the entry's)

struct Class {  // one parity class's interior GEMM
  uint a, b;      // output parity
  uint JH, JW;    // its taps along h and w
  uint th0, tw0;  // first interior th, tw (JH - 1, JW - 1)
  uint RH, RW;    // interior extents (H - JH + 1, W - JW + 1)
  uint OUT, K;
};

static inline Class make_class(uint z, uint H, uint W, uint C, uint R, uint N) {
  Class k;
  k.a = z / S;
  k.b = z % S;
  k.JH = (R - k.a + S - 1) / S;
  k.JW = (R - k.b + S - 1) / S;
  k.th0 = k.JH - 1;
  k.tw0 = k.JW - 1;
  k.RH = H - k.JH + 1;
  k.RW = W - k.JW + 1;
  k.OUT = N * k.RH * k.RW;
  k.K = k.JH * k.JW * C;
  return k;
}

struct Pixel {
  ulong base;  // x offset of (n, th, tw, 0): taps step back from it
  ulong out;   // y offset of the output pixel
  bool valid;
};

static inline Pixel decode(uint m, thread const Class& k, uint H, uint W, uint C, uint OH,
                           uint OW, uint F) {
  Pixel p;
  p.valid = m < k.OUT;
  if (!p.valid) m = 0;
  const uint tw = k.tw0 + m % k.RW, th = k.th0 + (m / k.RW) % k.RH, n = m / (k.RW * k.RH);
  p.base = ((ulong(n) * H + th) * W + tw) * C;
  p.out = ((ulong(n) * OH + S * th + k.a) * OW + S * tw + k.b) * F;
  return p;
}

// A[m, q..q+3], q = (jh * JW + jw) * C + c: x[n, th - jh, tw - jw, c..c+3].
static inline float4 gather4(device const float* x, Pixel p, uint q, thread const Class& k,
                             uint W, uint C) {
  if (!p.valid || q >= k.K) return float4(0.0f);
  const uint tap = q / C, c = q % C;
  const uint jh = tap / k.JW, jw = tap % k.JW;
  return *reinterpret_cast<device const float4*>(x + p.base - (ulong(jh) * W + jw) * C + c);
}

// B[q..q+3, f] = w[f, a + S*jh, b + S*jw, c..c+3], zero past F and K.
static inline float4 weight4(device const float* w, uint f, uint q, thread const Class& k,
                             uint F, uint C, uint R) {
  if (f >= F || q >= k.K) return float4(0.0f);
  const uint tap = q / C, c = q % C;
  const uint kh = k.a + S * (tap / k.JW), kw = k.b + S * (tap % k.JW);
  return *reinterpret_cast<device const float4*>(w + ((ulong(f) * R + kh) * R + kw) * C + c);
}

// The tile at `group` of class k into acc (this SIMD group's 32x32 block).
static inline void class_tile(device const float* x, device const float* w,
                              thread const Class& k, uint H, uint W, uint C, uint OH, uint OW,
                              uint F, uint R, uint2 group, uint tid, uint sg,
                              threadgroup float* As, threadgroup float* Bs,
                              thread simdgroup_float8x8 (&acc)[4][4]) {
  const uint m0 = group.y * BM, f0 = group.x * BN;
  const uint sm = (sg / 2) * 32, sn = (sg % 2) * 32;
  const uint r = tid / 4, kq = (tid % 4) * 4;
  const Pixel p0 = decode(m0 + r, k, H, W, C, OH, OW, F);
  const Pixel p1 = decode(m0 + r + 32, k, H, W, C, OH, OW, F);

  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

  float4 a0 = gather4(x, p0, kq, k, W, C), a1 = gather4(x, p1, kq, k, W, C);
  float4 b0 = weight4(w, f0 + r, kq, k, F, C, R), b1 = weight4(w, f0 + r + 32, kq, k, F, C, R);

  for (uint k0 = 0; k0 < k.K; k0 += BK) {
    *reinterpret_cast<threadgroup float4*>(&As[r * LD + kq]) = a0;
    *reinterpret_cast<threadgroup float4*>(&As[(r + 32) * LD + kq]) = a1;
    *reinterpret_cast<threadgroup float4*>(&Bs[r * LD + kq]) = b0;
    *reinterpret_cast<threadgroup float4*>(&Bs[(r + 32) * LD + kq]) = b1;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    if (k0 + BK < k.K) {  // next slice in flight while this one is multiplied
      a0 = gather4(x, p0, k0 + BK + kq, k, W, C);
      a1 = gather4(x, p1, k0 + BK + kq, k, W, C);
      b0 = weight4(w, f0 + r, k0 + BK + kq, k, F, C, R);
      b1 = weight4(w, f0 + r + 32, k0 + BK + kq, k, F, C, R);
    }

    for (uint kk = 0; kk < BK; kk += 8) {
      simdgroup_float8x8 a[4], b[4];
      for (uint i = 0; i < 4; ++i) simdgroup_load(a[i], As, LD, ulong2(kk, sm + 8 * i));
      // Bs holds filters as rows ([f][k]); the transposed load makes it B[k][f].
      for (uint j = 0; j < 4; ++j)
        simdgroup_load(b[j], Bs + (sn + 8 * j) * LD + kk, LD, ulong2(0, 0), true);
      for (uint i = 0; i < 4; ++i)
        for (uint j = 0; j < 4; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);  // As/Bs are rewritten next slice
  }
}

// Where a lane's two elements of every 8x8 accumulator sit (Apple's fragment
// layout): row fr, columns fc and fc + 1.
static inline uint2 fragment_origin(uint lane) {
  const uint q = lane / 4;
  return uint2((q & 2) * 2 + (lane % 2) * 2, (q & 4) + (lane / 2) % 4);
}

// ---- end of the core --------------------------------------------------------

// The clamps keep NaN, as MLX's clip does (Metal's clamp would not).
static inline float clip1(float v) { return v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v); }

static inline float fused(float v, float b, float scale, float div) {
  return clip1(clip1(v + b) * scale) / div;
}

kernel void conv_transpose2d_clamp_scale_div_gemm_f32(device const float* x [[buffer(0)]],
                                                      device const float* w [[buffer(1)]],
                                                      device const float* bias [[buffer(2)]],
                                                      device float* y [[buffer(3)]],
                                                      constant uint& N [[buffer(4)]],
                                                      constant uint& C [[buffer(5)]],
                                                      constant uint& F [[buffer(6)]],
                                                      constant uint& H [[buffer(7)]],
                                                      constant uint& W [[buffer(8)]],
                                                      constant uint& OH [[buffer(9)]],
                                                      constant uint& OW [[buffer(10)]],
                                                      constant uint& R [[buffer(11)]],
                                                      constant float& scale [[buffer(12)]],
                                                      constant float& div [[buffer(13)]],
                                                      uint3 group [[threadgroup_position_in_grid]],
                                                      uint tid [[thread_index_in_threadgroup]],
                                                      uint sg [[simdgroup_index_in_threadgroup]],
                                                      uint lane [[thread_index_in_simdgroup]]) {
  const Class k = make_class(group.z, H, W, C, R, N);
  if (group.y * BM >= k.OUT) return;  // a smaller class: the whole threadgroup leaves
  threadgroup float As[BM * LD];
  threadgroup float Bs[BN * LD];
  simdgroup_float8x8 acc[4][4];
  class_tile(x, w, k, H, W, C, OH, OW, F, R, group.xy, tid, sg, As, Bs, acc);

  // Each lane stores its two elements of every accumulator, fused, at its
  // pixel's place in y (classes interleave in y: pixels are decoded again).
  const uint2 o = fragment_origin(lane);
  const uint mb = group.y * BM + (sg / 2) * 32 + o.y, fb = group.x * BN + (sg % 2) * 32 + o.x;
  for (uint i = 0; i < 4; ++i) {
    const Pixel p = decode(mb + 8 * i, k, H, W, C, OH, OW, F);
    if (!p.valid) continue;
    for (uint j = 0; j < 4; ++j) {
      const uint f = fb + 8 * j;
      const float2 v = acc[i][j].thread_elements();
      device float* out = y + p.out + f;
      if ((F & 1) == 0 && f + 2 <= F) {
        *reinterpret_cast<device float2*>(out) =
            float2(fused(v.x, bias[f], scale, div), fused(v.y, bias[f + 1], scale, div));
      } else {
        if (f < F) out[0] = fused(v.x, bias[f], scale, div);
        if (f + 1 < F) out[1] = fused(v.y, bias[f + 1], scale, div);
      }
    }
  }
}

kernel void conv_transpose2d_clamp_scale_div_frame_f32(device const float* x [[buffer(0)]],
                                                       device const float* w [[buffer(1)]],
                                                       device const float* bias [[buffer(2)]],
                                                       device float* y [[buffer(3)]],
                                                       constant uint& N [[buffer(4)]],
                                                       constant uint& C [[buffer(5)]],
                                                       constant uint& F [[buffer(6)]],
                                                       constant uint& H [[buffer(7)]],
                                                       constant uint& W [[buffer(8)]],
                                                       constant uint& OH [[buffer(9)]],
                                                       constant uint& OW [[buffer(10)]],
                                                       constant uint& R [[buffer(11)]],
                                                       constant float& scale [[buffer(12)]],
                                                       constant float& div [[buffer(13)]],
                                                       uint3 gid [[thread_position_in_grid]]) {
  // gid.y enumerates one image's frame: E = R - S rows at the top and the
  // bottom (all OW columns), then the E columns at the left and the right of
  // the rows between.
  const uint E = R - S, f = gid.x * 4, n = gid.z;
  uint oh, ow;
  if (gid.y < 2 * E * OW) {
    const uint r = gid.y / OW;
    oh = r < E ? r : S * H + (r - E);
    ow = gid.y % OW;
  } else {
    const uint q = gid.y - 2 * E * OW, c = q % (2 * E);
    oh = E + q / (2 * E);
    ow = c < E ? c : S * W + (c - E);
  }
  float4 acc = float4(0.0f);
  for (uint kh = oh % S; kh < R && kh <= oh; kh += S) {
    const uint ih = (oh - kh) / S;
    if (ih >= H) continue;
    for (uint kw = ow % S; kw < R && kw <= ow; kw += S) {
      const uint iw = (ow - kw) / S;
      if (iw >= W) continue;
      device const float* xp = x + ((ulong(n) * H + ih) * W + iw) * C;
      device const float* wp = w + ((ulong(f) * R + kh) * R + kw) * C;
      const ulong fs = ulong(R) * R * C;  // one filter to the next
      for (uint c = 0; c < C; c += 4) {
        const float4 xv = *reinterpret_cast<device const float4*>(xp + c);
        acc += float4(dot(xv, *reinterpret_cast<device const float4*>(wp + c)),
                      dot(xv, *reinterpret_cast<device const float4*>(wp + fs + c)),
                      dot(xv, *reinterpret_cast<device const float4*>(wp + 2 * fs + c)),
                      dot(xv, *reinterpret_cast<device const float4*>(wp + 3 * fs + c)));
      }
    }
  }
  device float* out = y + ((ulong(n) * OH + oh) * OW + ow) * F + f;
  for (uint e = 0; e < 4; ++e) out[e] = fused(acc[e], bias[f + e], scale, div);
}
