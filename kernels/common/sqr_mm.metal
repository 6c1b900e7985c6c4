#include <metal_stdlib>
using namespace metal;

// C[M, N] = A[M, K] @ B[K, N], row-major float32.
//
// One threadgroup of 256 threads per 64x64 tile of C; K is walked in slices
// of 16. Each slice of A (64x16) and B (16x64) is staged in threadgroup
// memory, and each thread accumulates a 4x4 register micro-tile: per k it
// reads one float4 of A (its 4 rows) and one float4 of B (its 4 columns)
// and does 4 float4 FMAs - 16 FMAs for 2 threadgroup loads.
//
// The next slice's global loads are issued into registers before the
// current slice is consumed (register double buffering), so their latency
// hides behind the FMAs; one barrier pair per slice.
//
// On hardware the inner k loop is where simdgroup_matrix belongs: each SIMD
// group would own a 32x16 block of the tile as 4x2 simdgroup_float8x8
// accumulators, simdgroup_load its A/B fragments from As/Bs and
// simdgroup_multiply_accumulate. The simulator's first version has no
// simdgroup_matrix, so this is the portable register-tiled form.
//
// Any M, N, K: edge tiles load zeros past the matrix and store with bounds
// checks; float4 global access is used when the row length keeps quads
// 16-byte aligned (K % 4 == 0 for A, N % 4 == 0 for B and C).

constant constexpr uint BM = 64;
constant constexpr uint BN = 64;
constant constexpr uint BK = 16;

// A[row, k..k+3], zero past the edges.
static inline float4 load_a(device const float* A, uint row, uint k, uint M, uint K) {
  if (row >= M) return float4(0.0f);
  device const float* p = A + ulong(row) * K + k;
  if ((K & 3) == 0 && k + 4 <= K) return *reinterpret_cast<device const float4*>(p);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && k + j < K; ++j) v[j] = p[j];
  return v;
}

// B[k, col..col+3], zero past the edges.
static inline float4 load_b(device const float* B, uint k, uint col, uint K, uint N) {
  if (k >= K) return float4(0.0f);
  device const float* p = B + ulong(k) * N + col;
  if ((N & 3) == 0 && col + 4 <= N) return *reinterpret_cast<device const float4*>(p);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && col + j < N; ++j) v[j] = p[j];
  return v;
}

kernel void sqr_mm_f32(device const float* A [[buffer(0)]],
                       device const float* B [[buffer(1)]],
                       device float* C [[buffer(2)]],
                       constant uint& M [[buffer(3)]],
                       constant uint& N [[buffer(4)]],
                       constant uint& K [[buffer(5)]],
                       uint2 group [[threadgroup_position_in_grid]],
                       uint tid [[thread_index_in_threadgroup]]) {
  // A's slice is stored k-major (As[k][m]) so a thread's 4 rows at one k are
  // one float4; rows are padded by one float4 to spread the transposing
  // stores over more banks while keeping float4 alignment.
  threadgroup float4 As[BK][BM / 4 + 1];
  threadgroup float4 Bs[BK][BN / 4];

  const uint m0 = group.y * BM;
  const uint n0 = group.x * BN;
  // Compute role (the roles assume exactly 256 threads per threadgroup, as
  // the registry dispatches): a 16x16 grid of threads, each owning rows
  // 4ty..4ty+3 and columns 4tx..4tx+3 of the tile.
  const uint tx = tid % 16;
  const uint ty = tid / 16;
  // Load roles: each thread moves one float4 of each slice. A: 4 threads per
  // row (64 contiguous bytes); B: 16 threads per row (256 contiguous bytes).
  const uint a_row = tid / 4;
  const uint a_k = (tid % 4) * 4;
  const uint b_k = tid / 16;
  const uint b_col = (tid % 16) * 4;

  float4 acc0 = float4(0.0f), acc1 = float4(0.0f), acc2 = float4(0.0f), acc3 = float4(0.0f);
  float4 a_next = load_a(A, m0 + a_row, a_k, M, K);
  float4 b_next = load_b(B, b_k, n0 + b_col, K, N);

  for (uint k0 = 0; k0 < K; k0 += BK) {
    As[a_k + 0][a_row / 4][a_row % 4] = a_next.x;
    As[a_k + 1][a_row / 4][a_row % 4] = a_next.y;
    As[a_k + 2][a_row / 4][a_row % 4] = a_next.z;
    As[a_k + 3][a_row / 4][a_row % 4] = a_next.w;
    Bs[b_k][b_col / 4] = b_next;
    threadgroup_barrier(mem_flags::mem_threadgroup);

    if (k0 + BK < K) {
      a_next = load_a(A, m0 + a_row, k0 + BK + a_k, M, K);
      b_next = load_b(B, k0 + BK + b_k, n0 + b_col, K, N);
    }

    for (uint k = 0; k < BK; ++k) {
      const float4 a = As[k][ty];
      const float4 b = Bs[k][tx];
      acc0 = fma(float4(a.x), b, acc0);
      acc1 = fma(float4(a.y), b, acc1);
      acc2 = fma(float4(a.z), b, acc2);
      acc3 = fma(float4(a.w), b, acc3);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);  // As/Bs are overwritten next slice
  }

  const uint col = n0 + tx * 4;
  const float4 acc[4] = {acc0, acc1, acc2, acc3};
  for (uint i = 0; i < 4; ++i) {
    const uint row = m0 + ty * 4 + i;
    if (row >= M || col >= N) continue;
    device float* p = C + ulong(row) * N + col;
    if ((N & 3) == 0 && col + 4 <= N) {
      *reinterpret_cast<device float4*>(p) = acc[i];
    } else {
      for (uint j = 0; j < 4 && col + j < N; ++j) p[j] = acc[i][j];
    }
  }
}
