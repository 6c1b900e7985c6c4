#include <metal_stdlib>
using namespace metal;

// C[M, N] = A[M, K] @ B[K, N], row-major (the square matmul; any M, N, K).
// bfloat in and out, float accumulation (as MLX does).
//
// What makes it fast: the structure of rect_mm.metal (64x64 tile per
// threadgroup of 128 threads, each SIMD group a 32x32 block of 4x4 8x8
// accumulators, K slices of 16 staged in threadgroup memory, the next slice
// in registers while this one is multiplied), with half the bytes: global
// loads move 4 bfloats (8 bytes) each and threadgroup memory holds
// bfloat, so each slice costs half the traffic of float32. Fragments are
// widened to float as they leave threadgroup memory (each lane reads its two
// elements of Apple's 8x8 layout), so the products and sums run in float32
// simdgroup_float8x8 multiply-accumulates and round once, on the store.

constant constexpr uint BM = 64, BN = 64, BK = 16;
constant constexpr uint A_LD = BK + 4;  // row pad: fragment reads hit more banks
constant constexpr uint B_LD = BN + 4;

typedef bfloat4 T4;
typedef bfloat2 T2;

// src[row, col..col+3] of a rows x cols row-major matrix, zero past its edges.
static inline T4 load4(device const bfloat* src, uint row, uint col, uint rows, uint cols) {
  if (row >= rows) return T4(bfloat(0.0f));
  device const bfloat* p = src + ulong(row) * cols + col;
  if ((cols & 3) == 0 && col + 4 <= cols) return *reinterpret_cast<device const T4*>(p);
  T4 v = T4(bfloat(0.0f));
  for (uint j = 0; j < 4 && col + j < cols; ++j) v[j] = p[j];
  return v;
}

// The lane's two elements (fr, fc), (fr, fc + 1) of the 8x8 block at (r0, c0), as float.
static inline void load_frag(thread simdgroup_float8x8& f, threadgroup const bfloat* s, uint ld,
                             uint r0, uint c0, uint fr, uint fc) {
  threadgroup const bfloat* p = s + (r0 + fr) * ld + c0 + fc;
  f.thread_elements()[0] = float(p[0]);
  f.thread_elements()[1] = float(p[1]);
}

kernel void sqr_mm_bf16(device const bfloat* A [[buffer(0)]],
                        device const bfloat* B [[buffer(1)]],
                        device bfloat* C [[buffer(2)]],
                        constant uint& M [[buffer(3)]],
                        constant uint& N [[buffer(4)]],
                        constant uint& K [[buffer(5)]],
                        uint3 group [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint sg [[simdgroup_index_in_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]]) {
  threadgroup bfloat As[BM * A_LD];
  threadgroup bfloat Bs[BK * B_LD];
  const uint m0 = group.y * BM, n0 = group.x * BN;
  const uint sm = (sg / 2) * 32, sn = (sg % 2) * 32;  // this SIMD group's block
  const uint ar = tid / 4, ak = (tid % 4) * 4;        // A rows ar, ar + 32
  const uint bk = tid / 16, bn = (tid % 16) * 4;      // B rows bk, bk + 8
  const uint q = lane / 4;
  const uint fr = (q & 4) + (lane / 2) % 4, fc = (q & 2) * 2 + (lane % 2) * 2;

  simdgroup_float8x8 acc[4][4];
  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

  T4 a0 = load4(A, m0 + ar, ak, M, K), a1 = load4(A, m0 + ar + 32, ak, M, K);
  T4 b0 = load4(B, bk, n0 + bn, K, N), b1 = load4(B, bk + 8, n0 + bn, K, N);

  for (uint k0 = 0; k0 < K; k0 += BK) {
    *reinterpret_cast<threadgroup T4*>(&As[ar * A_LD + ak]) = a0;
    *reinterpret_cast<threadgroup T4*>(&As[(ar + 32) * A_LD + ak]) = a1;
    *reinterpret_cast<threadgroup T4*>(&Bs[bk * B_LD + bn]) = b0;
    *reinterpret_cast<threadgroup T4*>(&Bs[(bk + 8) * B_LD + bn]) = b1;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    if (k0 + BK < K) {  // next slice in flight while this one is multiplied
      a0 = load4(A, m0 + ar, k0 + BK + ak, M, K);
      a1 = load4(A, m0 + ar + 32, k0 + BK + ak, M, K);
      b0 = load4(B, k0 + BK + bk, n0 + bn, K, N);
      b1 = load4(B, k0 + BK + bk + 8, n0 + bn, K, N);
    }

    for (uint kk = 0; kk < BK; kk += 8) {
      simdgroup_float8x8 a[4], b[4];
      for (uint i = 0; i < 4; ++i) load_frag(a[i], As, A_LD, sm + 8 * i, kk, fr, fc);
      for (uint j = 0; j < 4; ++j) load_frag(b[j], Bs, B_LD, kk, sn + 8 * j, fr, fc);
      for (uint i = 0; i < 4; ++i)
        for (uint j = 0; j < 4; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);  // As/Bs are rewritten next slice
  }

  for (uint i = 0; i < 4; ++i) {
    const uint row = m0 + sm + 8 * i + fr;
    if (row >= M) continue;
    for (uint j = 0; j < 4; ++j) {
      const uint col = n0 + sn + 8 * j + fc;
      const float2 f = acc[i][j].thread_elements();
      const T2 v = bfloat2(bfloat(f.x), bfloat(f.y));
      device bfloat* p = C + ulong(row) * N + col;
      if ((N & 1) == 0 && col + 2 <= N) {
        *reinterpret_cast<device T2*>(p) = v;
      } else {
        if (col < N) p[0] = v.x;
        if (col + 1 < N) p[1] = v.y;
      }
    }
  }
}
