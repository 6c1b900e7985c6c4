#include <metal_stdlib>
using namespace metal;

// y[N, OH, OW, F] = conv_transpose2d(x[N, H, W, C], w[F, R, R, C]) as MLX
// defines it (channels-last, w [C_out, R, R, C_in]): every input pixel (ih,
// iw) adds x[n, ih, iw, :] . w[f, kh, kw, :] to output (ih*S - P + kh*DIL,
// iw*S - P + kw*DIL); OH = (H - 1)*S - 2P + DIL*(R - 1) + 1.
//
// What makes it fast: it is run as S*S ordinary convolutions, one per output
// phase (oh % S, ow % S) - grid z - so no multiply ever touches an inserted
// zero (a transposed conv done as a conv over the zero-dilated input wastes
// 1 - 1/S^2 of its MACs; 3/4 here). Within a phase, an output pixel's
// contributions come from a fixed subset of taps (those with
// (oh + P - kh*DIL) % S == 0), each from one input pixel: an implicit GEMM
// Y_phase[pixels, F] = A[pixels, taps*C] @ B[taps*C, F], run on
// simdgroup_matrix exactly as conv2d.metal runs its GEMM (64x64 tile per
// threadgroup of 128 threads, 4x4 8x8 accumulators per SIMD group, K slices
// of 16 staged in threadgroup memory with float4 gathers, the next slice in
// registers while this one is multiplied).
//
// A tap whose input pixel lies outside x (at the borders) is a zero in A; a
// zero times a non-finite weight would be NaN where the definition has no
// product at all. So each threadgroup notes whether any weight it staged is
// non-finite, and only then recomputes its outputs directly over the taps
// that exist (a path that ordinary data never takes).

constant constexpr uint BM = 64, BN = 64, BK = 16;
constant constexpr uint LD = BK + 4;  // row pad: fragment loads hit more banks

constant constexpr uint MAX_TAPS = 16;  // taps per phase and dim: R / S rounded up

struct Geometry {
  uint N, C, F, H, W, OH, OW, R, S, P, DIL;
};

// One phase's taps along one dim: kh with (phase + P - kh*DIL) % S == 0.
struct Taps {
  uint k[MAX_TAPS];
  uint count;
};

static inline Taps phase_taps(uint phase, thread const Geometry& g) {
  Taps t;
  t.count = 0;
  for (uint k = 0; k < g.R && t.count < MAX_TAPS; ++k)
    if ((phase + g.P + g.S * g.R * g.DIL - k * g.DIL) % g.S == 0) t.k[t.count++] = k;
  return t;
}

// An output pixel of the phase, as the numerators of its input coordinates.
struct Pixel {
  int h, w;    // oh + P, ow + P: ih = (h - kh*DIL) / S
  ulong base;  // offset of image n in x
  bool valid;
};

static inline Pixel decode(uint m, uint ph, uint pw, uint OHp, uint OWp, thread const Geometry& g) {
  Pixel p;
  p.valid = m < g.N * OHp * OWp;
  if (!p.valid) m = 0;
  const uint j = m % OWp, i = (m / OWp) % OHp, n = m / (OWp * OHp);
  p.h = int(ph + i * g.S + g.P);
  p.w = int(pw + j * g.S + g.P);
  p.base = ulong(n) * g.H * g.W * g.C;
  return p;
}

// A[m, k..k+3] of the phase's GEMM, k = (th * taps_w + tw) * C + c.
static inline float4 gather4(device const float* x, Pixel p, uint k, thread const Geometry& g,
                             thread const Taps& th, thread const Taps& tw, uint KG) {
  float4 v = float4(0.0f);
  const uint n4 = (g.C & 3) == 0 ? 1 : 4;  // one float4, or 4 single channels
  for (uint e = 0; e < n4; ++e) {
    const uint kk = k + e;
    if (kk >= KG || !p.valid) break;
    const uint tap = kk / g.C, c = kk % g.C;
    const int nh = p.h - int(th.k[tap / tw.count] * g.DIL), nw = p.w - int(tw.k[tap % tw.count] * g.DIL);
    if (nh < 0 || nw < 0) continue;
    const uint ih = uint(nh) / g.S, iw = uint(nw) / g.S;  // exact: the phase picked the taps
    if (ih >= g.H || iw >= g.W) continue;
    device const float* px = x + p.base + (ulong(ih) * g.W + iw) * g.C + c;
    if (n4 == 1) return *reinterpret_cast<device const float4*>(px);
    v[e] = *px;
  }
  return v;
}

// B[k..k+3, f] = w[f, kh, kw, c..c+3] for the phase's taps, zero past the edges.
static inline float4 weight4(device const float* w, uint f, uint k, thread const Geometry& g,
                             thread const Taps& th, thread const Taps& tw, uint KG) {
  float4 v = float4(0.0f);
  if (f >= g.F) return v;
  const uint n4 = (g.C & 3) == 0 ? 1 : 4;
  for (uint e = 0; e < n4; ++e) {
    const uint kk = k + e;
    if (kk >= KG) break;
    const uint tap = kk / g.C, c = kk % g.C;
    device const float* pw = w + ((ulong(f) * g.R + th.k[tap / tw.count]) * g.R + tw.k[tap % tw.count]) * g.C + c;
    if (n4 == 1) return *reinterpret_cast<device const float4*>(pw);
    v[e] = *pw;
  }
  return v;
}

// y[pixel, f] summed over the taps that reach an input pixel, in scalar
// order: the path for non-finite weights.
static inline float direct(device const float* x, device const float* w, Pixel p, uint f,
                           thread const Geometry& g, thread const Taps& th, thread const Taps& tw) {
  float s = 0.0f;
  for (uint a = 0; a < th.count; ++a) {
    const int nh = p.h - int(th.k[a] * g.DIL);
    if (nh < 0 || uint(nh) / g.S >= g.H) continue;
    for (uint b = 0; b < tw.count; ++b) {
      const int nw = p.w - int(tw.k[b] * g.DIL);
      if (nw < 0 || uint(nw) / g.S >= g.W) continue;
      device const float* px = x + p.base + (ulong(uint(nh) / g.S) * g.W + uint(nw) / g.S) * g.C;
      device const float* pk = w + ((ulong(f) * g.R + th.k[a]) * g.R + tw.k[b]) * g.C;
      for (uint c = 0; c < g.C; ++c) s = fma(px[c], pk[c], s);
    }
  }
  return s;
}

static inline void phase_tile(device const float* x, device const float* w, device float* y,
                              thread const Geometry& g, uint3 group, uint tid, uint sg, uint lane,
                              threadgroup float* As, threadgroup float* Bs,
                              threadgroup bool& nonfinite_w) {
  const uint ph = group.z / g.S, pw = group.z % g.S;
  const uint OHp = (g.OH - ph + g.S - 1) / g.S, OWp = (g.OW - pw + g.S - 1) / g.S;  // phase extents
  const uint OUT = g.N * OHp * OWp;
  const uint m0 = group.y * BM, f0 = group.x * BN;
  if (m0 >= OUT) return;  // the whole threadgroup: this phase has fewer pixels
  const Taps th = phase_taps(ph, g), tw = phase_taps(pw, g);
  const uint KG = th.count * tw.count * g.C;
  const uint sm = (sg / 2) * 32, sn = (sg % 2) * 32;  // this SIMD group's block
  const uint r = tid / 4, kq = (tid % 4) * 4;         // load role: rows r, r + 32 at k offset kq
  const Pixel p0 = decode(m0 + r, ph, pw, OHp, OWp, g), p1 = decode(m0 + r + 32, ph, pw, OHp, OWp, g);

  simdgroup_float8x8 acc[4][4];
  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

  if (tid == 0) nonfinite_w = false;
  threadgroup_barrier(mem_flags::mem_threadgroup);

  float4 a0 = gather4(x, p0, kq, g, th, tw, KG), a1 = gather4(x, p1, kq, g, th, tw, KG);
  float4 b0 = weight4(w, f0 + r, kq, g, th, tw, KG), b1 = weight4(w, f0 + r + 32, kq, g, th, tw, KG);

  for (uint k0 = 0; k0 < KG; k0 += BK) {
    *reinterpret_cast<threadgroup float4*>(&As[r * LD + kq]) = a0;
    *reinterpret_cast<threadgroup float4*>(&As[(r + 32) * LD + kq]) = a1;
    *reinterpret_cast<threadgroup float4*>(&Bs[r * LD + kq]) = b0;
    *reinterpret_cast<threadgroup float4*>(&Bs[(r + 32) * LD + kq]) = b1;
    if (any(!isfinite(b0)) || any(!isfinite(b1))) nonfinite_w = true;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    if (k0 + BK < KG) {  // next slice in flight while this one is multiplied
      a0 = gather4(x, p0, k0 + BK + kq, g, th, tw, KG);
      a1 = gather4(x, p1, k0 + BK + kq, g, th, tw, KG);
      b0 = weight4(w, f0 + r, k0 + BK + kq, g, th, tw, KG);
      b1 = weight4(w, f0 + r + 32, k0 + BK + kq, g, th, tw, KG);
    }

    for (uint kk = 0; kk < BK; kk += 8) {
      simdgroup_float8x8 a[4], b[4];
      for (uint i = 0; i < 4; ++i) simdgroup_load(a[i], As, LD, ulong2(kk, sm + 8 * i));
      // Bs holds filters as rows ([f][k]); the transposed load makes it B[k][f].
      for (uint j = 0; j < 4; ++j) simdgroup_load(b[j], Bs + (sn + 8 * j) * LD + kk, LD, ulong2(0, 0), true);
      for (uint i = 0; i < 4; ++i)
        for (uint j = 0; j < 4; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);  // As/Bs are rewritten next slice
  }

  // Each lane stores its two elements of every accumulator (Apple's 8x8
  // fragment layout) to the phase's pixels, with edge masks. A phase no tap
  // reaches (S > R) stores zeros, as the definition says.
  const bool exact_path = nonfinite_w;  // read after the loop's last barrier
  const uint q = lane / 4;
  const uint fr = (q & 4) + (lane / 2) % 4, fc = (q & 2) * 2 + (lane % 2) * 2;
  for (uint i = 0; i < 4; ++i) {
    const uint m = m0 + sm + 8 * i + fr;
    if (m >= OUT) continue;
    const Pixel p = decode(m, ph, pw, OHp, OWp, g);
    const uint oj = m % OWp, oi = (m / OWp) % OHp, n = m / (OWp * OHp);
    const ulong pix = (ulong(n) * g.OH + ph + oi * g.S) * g.OW + pw + oj * g.S;
    for (uint j = 0; j < 4; ++j) {
      const uint f = f0 + sn + 8 * j + fc;
      float2 v = acc[i][j].thread_elements();
      if (exact_path) {
        if (f < g.F) v.x = direct(x, w, p, f, g, th, tw);
        if (f + 1 < g.F) v.y = direct(x, w, p, f + 1, g, th, tw);
      }
      device float* out = y + pix * g.F + f;
      if ((g.F & 1) == 0 && f + 2 <= g.F) {
        *reinterpret_cast<device float2*>(out) = v;
      } else {
        if (f < g.F) out[0] = v.x;
        if (f + 1 < g.F) out[1] = v.y;
      }
    }
  }
}

kernel void conv_transpose2d_f32(device const float* x [[buffer(0)]],
                                 device const float* w [[buffer(1)]],
                                 device float* y [[buffer(2)]],
                                 constant uint& N [[buffer(3)]],
                                 constant uint& C [[buffer(4)]],
                                 constant uint& F [[buffer(5)]],
                                 constant uint& H [[buffer(6)]],
                                 constant uint& W [[buffer(7)]],
                                 constant uint& OH [[buffer(8)]],
                                 constant uint& OW [[buffer(9)]],
                                 constant uint& R [[buffer(10)]],
                                 constant uint& stride [[buffer(11)]],
                                 constant uint& padding [[buffer(12)]],
                                 constant uint& dilation [[buffer(13)]],
                                 uint3 group [[threadgroup_position_in_grid]],
                                 uint tid [[thread_index_in_threadgroup]],
                                 uint sg [[simdgroup_index_in_threadgroup]],
                                 uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float As[BM * LD];
  threadgroup float Bs[BN * LD];
  threadgroup bool nonfinite_w;
  const Geometry g = {N, C, F, H, W, OH, OW, R, stride, padding, dilation};
  phase_tile(x, w, y, g, group, tid, sg, lane, As, Bs, nonfinite_w);
}
