#include <metal_stdlib>
using namespace metal;

// y[N, OH, OW, F] = relu(conv2d(x[N, H, W, C], w[F, R, R, C]) + bias[F]):
// stride 1, no padding, channels last (MLX's layout).
//
// What makes it fast: the convolution is an implicit GEMM on simdgroup_matrix
// (the core below), and the bias and ReLU are applied to the accumulators in
// registers on the way out: y is written once and never read back, where
// conv2d followed by two element-wise ops would write and re-read it twice.

// ---- Implicit-GEMM convolution core (the design of conv2d.metal) ----------
// Y[OUT, F] = A[OUT, KG] @ B[KG, F] on simdgroup_matrix, never materialising
// im2col: a row of A is one output pixel's receptive field (KG = taps * C,
// k = tap * C + c) gathered from x on the fly, and B[k, f] = w[f, k] (w is
// already [F, KG] row-major). Each threadgroup of 128 threads computes a
// 64-pixel x 64-filter tile; each SIMD group a 32x32 block as 4x4
// simdgroup_float8x8 accumulators (16 multiply-accumulates per 4+4 fragment
// loads). KG is walked in slices of 16: each thread gathers one float4 of
// channels for two pixels (C % 4 == 0 keeps a float4 inside one tap and
// 16-byte aligned; otherwise element by element) and one float4 of two
// filters' weights, staged in threadgroup memory; the next slice is gathered
// into registers while the current one is multiplied. A pixel's position is
// decoded once per thread, not per slice. Edge tiles read zeros.

constant constexpr uint BM = 64, BN = 64, BK = 16;
constant constexpr uint LD = BK + 4;  // row pad: fragment loads hit more banks

struct Geometry {  // 3-D; a 2-D conv has D = KD = OD = 1
  uint N, C, F, D, H, W, KD, KH, KW, OD, OH, OW;
};

// One output pixel's receptive-field origin in x.
struct Pixel {
  uint d, h, w;
  ulong base;  // offset of image n in x
  bool valid;
};

static inline Pixel decode(uint m, thread const Geometry& g) {
  Pixel p;
  p.valid = m < g.N * g.OD * g.OH * g.OW;
  if (!p.valid) m = 0;
  p.w = m % g.OW;
  p.h = (m / g.OW) % g.OH;
  p.d = (m / (g.OW * g.OH)) % g.OD;
  p.base = ulong(m / (g.OW * g.OH * g.OD)) * g.D * g.H * g.W * g.C;
  return p;
}

// x at pixel p's tap for depth index k (k = tap * C + c).
static inline device const float* x_ptr(device const float* x, Pixel p, uint k,
                                        thread const Geometry& g) {
  const uint tap = k / g.C, c = k % g.C;
  const uint kw = tap % g.KW, kh = (tap / g.KW) % g.KH, kd = tap / (g.KW * g.KH);
  return x + p.base + ((ulong(p.d + kd) * g.H + p.h + kh) * g.W + p.w + kw) * g.C + c;
}

// A[m, k..k+3]: channels c..c+3 of one tap when C % 4 == 0, else element-wise.
static inline float4 gather4(device const float* x, Pixel p, uint k, thread const Geometry& g,
                             uint KG) {
  float4 v = float4(0.0f);
  if (!p.valid) return v;
  if ((g.C & 3) == 0) {
    return k < KG ? *reinterpret_cast<device const float4*>(x_ptr(x, p, k, g)) : v;
  }
  for (uint j = 0; j < 4 && k + j < KG; ++j) v[j] = *x_ptr(x, p, k + j, g);
  return v;
}

// w[f, k..k+3] (w is [F, KG] row-major), zero past its edges.
static inline float4 weight4(device const float* w, uint f, uint k, uint F, uint KG) {
  if (f >= F) return float4(0.0f);
  device const float* p = w + ulong(f) * KG + k;
  if ((KG & 3) == 0 && k + 4 <= KG) return *reinterpret_cast<device const float4*>(p);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && k + j < KG; ++j) v[j] = p[j];
  return v;
}

// The 64x64 tile at `group` into acc (this SIMD group's 32x32 block).
static inline void conv_tile(device const float* x, device const float* w,
                             thread const Geometry& g, uint2 group, uint tid, uint sg,
                             threadgroup float* As, threadgroup float* Bs,
                             thread simdgroup_float8x8 (&acc)[4][4]) {
  const uint KG = g.KD * g.KH * g.KW * g.C;
  const uint m0 = group.y * BM, f0 = group.x * BN;
  const uint sm = (sg / 2) * 32, sn = (sg % 2) * 32;  // this SIMD group's block
  const uint r = tid / 4, kq = (tid % 4) * 4;         // load role: rows r, r + 32 at k offset kq
  const Pixel p0 = decode(m0 + r, g), p1 = decode(m0 + r + 32, g);

  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

  float4 a0 = gather4(x, p0, kq, g, KG), a1 = gather4(x, p1, kq, g, KG);
  float4 b0 = weight4(w, f0 + r, kq, g.F, KG), b1 = weight4(w, f0 + r + 32, kq, g.F, KG);

  for (uint k0 = 0; k0 < KG; k0 += BK) {
    *reinterpret_cast<threadgroup float4*>(&As[r * LD + kq]) = a0;
    *reinterpret_cast<threadgroup float4*>(&As[(r + 32) * LD + kq]) = a1;
    *reinterpret_cast<threadgroup float4*>(&Bs[r * LD + kq]) = b0;
    *reinterpret_cast<threadgroup float4*>(&Bs[(r + 32) * LD + kq]) = b1;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    if (k0 + BK < KG) {  // next slice in flight while this one is multiplied
      a0 = gather4(x, p0, k0 + BK + kq, g, KG);
      a1 = gather4(x, p1, k0 + BK + kq, g, KG);
      b0 = weight4(w, f0 + r, k0 + BK + kq, g.F, KG);
      b1 = weight4(w, f0 + r + 32, k0 + BK + kq, g.F, KG);
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

// ReLU after the bias, NaN kept as MLX's maximum keeps it (Metal's max would
// return 0 for NaN).
static inline float fused(float v, float b) {
  const float z = v + b;
  return z < 0.0f ? 0.0f : z;
}

kernel void conv2d_relu_bias_f32(device const float* x [[buffer(0)]],
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
                                 uint2 group [[threadgroup_position_in_grid]],
                                 uint tid [[thread_index_in_threadgroup]],
                                 uint sg [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float As[BM * LD];
  threadgroup float Bs[BN * LD];
  const Geometry g = {N, C, F, 1, H, W, 1, R, R, 1, OH, OW};
  simdgroup_float8x8 acc[4][4];
  conv_tile(x, w, g, group, tid, sg, As, Bs, acc);

  // y is [OUT, F] row-major: each lane stores its two elements of every
  // accumulator, fused, with edge masks.
  const uint OUT = N * OH * OW;
  const uint2 o = fragment_origin(lane);
  const uint mb = group.y * BM + (sg / 2) * 32 + o.y, fb = group.x * BN + (sg % 2) * 32 + o.x;
  for (uint i = 0; i < 4; ++i) {
    const uint m = mb + 8 * i;
    if (m >= OUT) continue;
    for (uint j = 0; j < 4; ++j) {
      const uint f = fb + 8 * j;
      const float2 v = acc[i][j].thread_elements();
      device float* out = y + ulong(m) * F + f;
      if ((F & 1) == 0 && f + 2 <= F) {
        *reinterpret_cast<device float2*>(out) = float2(fused(v.x, bias[f]), fused(v.y, bias[f + 1]));
      } else {
        if (f < F) out[0] = fused(v.x, bias[f]);
        if (f + 1 < F) out[1] = fused(v.y, bias[f + 1]);
      }
    }
  }
}
