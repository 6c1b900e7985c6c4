#include <metal_stdlib>
using namespace metal;

// y[1] = sum over n of (mean over voxels of (max over filters of
// conv3d(x, w) / div) + bias): x[N, D, H, W, C], w[F, R, R, R, C], stride 1,
// no padding, channels last; div > 0 and bias are the Model's constants.
//
// What makes it fast: the convolution (the compute) is an implicit GEMM on
// simdgroup_matrix (the core below), and its [OUT, F] output never reaches
// memory: each 64x64 tile is reduced in registers to the max over its 64
// filters per pixel (shuffles across the lanes that share a row, then one
// threadgroup exchange between the two SIMD groups that split the filters),
// so dispatch 1 writes 4 bytes per pixel and filter tile, not 4*F. Dispatch 2
// (one threadgroup) takes the max over filter tiles, the means and the sum.
// Dividing by div > 0 is monotonic, also in float32, so max(v / div) =
// max(v) / div exactly and the division waits for dispatch 2.

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

// max that keeps NaN, as MLX does (Metal's max drops it).
static inline float max_nan(float m, float v) { return (m >= v || isnan(m)) ? m : v; }

kernel void conv3d_div_pool_sum_conv_f32(device const float* x [[buffer(0)]],
                                         device const float* w [[buffer(1)]],
                                         device float* pmax [[buffer(2)]],
                                         constant uint& N [[buffer(3)]],
                                         constant uint& C [[buffer(4)]],
                                         constant uint& F [[buffer(5)]],
                                         constant uint& D [[buffer(6)]],
                                         constant uint& H [[buffer(7)]],
                                         constant uint& W [[buffer(8)]],
                                         constant uint& OD [[buffer(9)]],
                                         constant uint& OH [[buffer(10)]],
                                         constant uint& OW [[buffer(11)]],
                                         constant uint& R [[buffer(12)]],
                                         uint2 group [[threadgroup_position_in_grid]],
                                         uint2 groups [[threadgroups_per_grid]],
                                         uint tid [[thread_index_in_threadgroup]],
                                         uint sg [[simdgroup_index_in_threadgroup]],
                                         uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float As[BM * LD];
  threadgroup float Bs[BN * LD];
  threadgroup float half_max[2][BM];  // per tile row, one per SIMD-group column
  const Geometry g = {N, C, F, D, H, W, R, R, R, OD, OH, OW};
  simdgroup_float8x8 acc[4][4];
  conv_tile(x, w, g, group, tid, sg, As, Bs, acc);

  // Each lane's 8 values of a row (4 accumulators x 2 columns), filters past
  // F masked out, then the lanes that hold the same row: they differ in lane
  // bits 0 and 3 (Apple's fragment layout).
  const uint2 o = fragment_origin(lane);
  const uint fb = group.x * BN + (sg % 2) * 32 + o.x;
  for (uint i = 0; i < 4; ++i) {
    float m = -INFINITY;
    for (uint j = 0; j < 4; ++j) {
      const float2 v = acc[i][j].thread_elements();
      const uint f = fb + 8 * j;
      if (f < F) m = max_nan(m, v.x);
      if (f + 1 < F) m = max_nan(m, v.y);
    }
    m = max_nan(m, simd_shuffle_xor(m, 1));
    m = max_nan(m, simd_shuffle_xor(m, 8));
    if ((lane & 9) == 0) half_max[sg % 2][(sg / 2) * 32 + 8 * i + o.y] = m;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  const uint OUT = N * OD * OH * OW;
  const uint m = group.y * BM + tid;
  if (tid < BM && m < OUT) {
    pmax[ulong(m) * groups.x + group.x] = max_nan(half_max[0][tid], half_max[1][tid]);
  }
}

// Sum over the threadgroup (at most 1024 threads): simd_sum, then one slot
// per SIMD group summed by every SIMD group.
static inline float threadgroup_sum(float v, threadgroup float* red, uint lane, uint sg,
                                    uint n_sg) {
  v = simd_sum(v);
  if (lane == 0) red[sg] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  v = simd_sum(lane < n_sg ? red[lane] : 0.0f);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return v;
}

// One threadgroup: per image n, the max over the T filter tiles of each
// voxel, divided, summed (strided per thread, then the threadgroup), meaned.
kernel void conv3d_div_pool_sum_final_f32(device const float* pmax [[buffer(0)]],
                                          device float* y [[buffer(1)]],
                                          constant uint& N [[buffer(2)]],
                                          constant uint& V [[buffer(3)]],
                                          constant uint& T [[buffer(4)]],
                                          constant float& div [[buffer(5)]],
                                          constant float& bias [[buffer(6)]],
                                          uint tid [[thread_index_in_threadgroup]],
                                          uint tg_size [[threads_per_threadgroup]],
                                          uint lane [[thread_index_in_simdgroup]],
                                          uint sg [[simdgroup_index_in_threadgroup]],
                                          uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32];
  float total = 0.0f;
  for (uint n = 0; n < N; ++n) {
    float s = 0.0f;
    for (uint v = tid; v < V; v += tg_size) {
      device const float* p = pmax + (ulong(n) * V + v) * T;
      float m = p[0];
      for (uint t = 1; t < T; ++t) m = max_nan(m, p[t]);
      s += m / div;
    }
    total += threadgroup_sum(s, red, lane, sg, n_sg) / float(V) + bias;
  }
  if (tid == 0) y[0] = total;
}
