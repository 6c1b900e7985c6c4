#include <metal_stdlib>
using namespace metal;

// C[M, N] = A[M, K] @ B[K, N] (square: M = N = K), row-major float32. Same design
// as rect_mm.metal.
//
// What makes it fast: a 64x64 tile of C per threadgroup of 128 threads (4
// SIMD groups in a 2x2 layout); each SIMD group owns a 32x32 block as 4x4
// simdgroup_float8x8 accumulators, so every 8-deep step loads 4 A and 4 B
// fragments from threadgroup memory and issues 16 multiply-accumulates (each
// fragment reused 4 times). K is walked in slices of 16; a slice of A (64x16)
// and B (16x64) is staged in threadgroup memory with float4 global loads, and
// the next slice is loaded into registers while the current one is consumed.
// Any M, N, K: loads past the matrix read zeros; the edge stores are masked.

constant constexpr uint BM = 64, BN = 64, BK = 16;
constant constexpr uint A_LD = BK + 4;  // row pad: fragment loads hit more banks
constant constexpr uint B_LD = BN + 4;

// src[row, col..col+3] of a rows x cols row-major matrix, zero past its edges.
static inline float4 load4(device const float* src, uint row, uint col, uint rows, uint cols) {
  if (row >= rows) return float4(0.0f);
  device const float* p = src + ulong(row) * cols + col;
  if ((cols & 3) == 0 && col + 4 <= cols) return *reinterpret_cast<device const float4*>(p);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && col + j < cols; ++j) v[j] = p[j];
  return v;
}

kernel void sqr_mm_f32(device const float* A [[buffer(0)]],
                        device const float* B [[buffer(1)]],
                        device float* C [[buffer(2)]],
                        constant uint& M [[buffer(3)]],
                        constant uint& N [[buffer(4)]],
                        constant uint& K [[buffer(5)]],
                        uint2 group [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint sg [[simdgroup_index_in_threadgroup]],
                        uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float As[BM * A_LD];
  threadgroup float Bs[BK * B_LD];

  const uint m0 = group.y * BM, n0 = group.x * BN;
  const uint sm = (sg / 2) * 32, sn = (sg % 2) * 32;  // this SIMD group's block
  // Load roles (128 threads, 2 float4 of each slice apiece): A rows ar and
  // ar + 32 at column ak; B rows bk and bk + 8 at column bn.
  const uint ar = tid / 4, ak = (tid % 4) * 4;
  const uint bk = tid / 16, bn = (tid % 16) * 4;

  simdgroup_float8x8 acc[4][4];
  for (uint i = 0; i < 4; ++i)
    for (uint j = 0; j < 4; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);

  float4 a0 = load4(A, m0 + ar, ak, M, K), a1 = load4(A, m0 + ar + 32, ak, M, K);
  float4 b0 = load4(B, bk, n0 + bn, K, N), b1 = load4(B, bk + 8, n0 + bn, K, N);

  for (uint k0 = 0; k0 < K; k0 += BK) {
    *reinterpret_cast<threadgroup float4*>(&As[ar * A_LD + ak]) = a0;
    *reinterpret_cast<threadgroup float4*>(&As[(ar + 32) * A_LD + ak]) = a1;
    *reinterpret_cast<threadgroup float4*>(&Bs[bk * B_LD + bn]) = b0;
    *reinterpret_cast<threadgroup float4*>(&Bs[(bk + 8) * B_LD + bn]) = b1;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    if (k0 + BK < K) {  // next slice in flight while this one is multiplied
      a0 = load4(A, m0 + ar, k0 + BK + ak, M, K);
      a1 = load4(A, m0 + ar + 32, k0 + BK + ak, M, K);
      b0 = load4(B, k0 + BK + bk, n0 + bn, K, N);
      b1 = load4(B, k0 + BK + bk + 8, n0 + bn, K, N);
    }

    for (uint kk = 0; kk < BK; kk += 8) {
      simdgroup_float8x8 a[4], b[4];
      for (uint i = 0; i < 4; ++i) simdgroup_load(a[i], As, A_LD, ulong2(kk, sm + 8 * i));
      for (uint j = 0; j < 4; ++j) simdgroup_load(b[j], Bs, B_LD, ulong2(sn + 8 * j, kk));
      for (uint i = 0; i < 4; ++i)
        for (uint j = 0; j < 4; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);  // As/Bs are rewritten next slice
  }

  // Each lane holds elements (r, c) and (r, c + 1) of every 8x8 accumulator
  // (Apple's fragment layout), stored straight to C with edge masks.
  const uint q = lane / 4;
  const uint fr = (q & 4) + (lane / 2) % 4, fc = (q & 2) * 2 + (lane % 2) * 2;
  for (uint i = 0; i < 4; ++i) {
    const uint row = m0 + sm + 8 * i + fr;
    if (row >= M) continue;
    for (uint j = 0; j < 4; ++j) {
      const uint col = n0 + sn + 8 * j + fc;
      const float2 v = acc[i][j].thread_elements();
      device float* p = C + ulong(row) * N + col;
      if ((N & 1) == 0 && col + 2 <= N) {
        *reinterpret_cast<device float2*>(p) = v;
      } else {
        if (col < N) p[0] = v.x;
        if (col + 1 < N) p[1] = v.y;
      }
    }
  }
}
