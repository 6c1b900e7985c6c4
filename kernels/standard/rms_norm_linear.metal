#include <metal_stdlib>
using namespace metal;

// RMS norm then a bias-free linear layer, as two dispatches:
//   1. rms_norm_linear_norm_f32: h[M, K] = x * rsqrt(mean(x^2) + eps) * w,
//      one threadgroup per row (float4 loads, row kept in registers,
//      simd_sum + threadgroup array for the sum of squares).
//   2. rms_norm_linear_matmul_f32: y[M, N] = h @ W, the tiled GEMM of
//      common/sqr_mm.metal (64x64 tiles, BK 16, 256 threads, 4x4 register
//      micro-tiles, register double buffering).
// The split costs one extra write and read of h (M*K floats, 4 MB at the
// bench size); a fused kernel would instead scale the rows of
// each A slice by their rsqrt while staging it in threadgroup memory (the
// norm's scale commutes with the matmul: y = diag(rstd) (x*w) @ W).

constant constexpr uint ROW_CACHE = 2;

// x[i..i+3] of a row: one float4 load when the row starts 16-byte aligned and
// the quad is whole; element by element otherwise (the last partial quad, or
// every quad of a row whose start is not a multiple of 4 floats, which
// happens when K % 4 != 0). Missing elements read as 0.
static inline float4 load_quad(device const float* row, uint i, uint n, bool aligned) {
  if (aligned && i + 4 <= n) return *reinterpret_cast<device const float4*>(row + i);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && i + j < n; ++j) v[j] = row[i + j];
  return v;
}

static inline void store_quad(device float* row, uint i, uint n, bool aligned, float4 v) {
  if (aligned && i + 4 <= n) {
    *reinterpret_cast<device float4*>(row + i) = v;
    return;
  }
  for (uint j = 0; j < 4 && i + j < n; ++j) row[i + j] = v[j];
}

// Dispatch 1. The row is read from memory once: each thread keeps its quads
// in registers (ROW_CACHE quads; longer rows stream the remainder again).
kernel void rms_norm_linear_norm_f32(device const float* x [[buffer(0)]],
                                     device const float* w [[buffer(1)]],
                                     device float* h [[buffer(2)]],
                                     constant uint& K [[buffer(3)]],
                                     constant float& eps [[buffer(4)]],
                                     uint r [[threadgroup_position_in_grid]],
                                     uint tid [[thread_index_in_threadgroup]],
                                     uint tg_size [[threads_per_threadgroup]],
                                     uint lane [[thread_index_in_simdgroup]],
                                     uint sg [[simdgroup_index_in_threadgroup]],
                                     uint n_sg [[simdgroups_per_threadgroup]]) {
  threadgroup float red[32];  // one slot per SIMD group (at most 1024 / 32)

  const ulong start = ulong(r) * K;
  device const float* row = x + start;
  device float* out = h + start;
  const bool aligned = (start & 3) == 0;
  const uint stride = tg_size * 4;

  float4 cache[ROW_CACHE];
  float ss = 0.0f;
  for (uint c = 0; c < ROW_CACHE; ++c) {
    const uint i = c * stride + tid * 4;
    cache[c] = i < K ? load_quad(row, i, K, aligned) : float4(0.0f);
    ss += dot(cache[c], cache[c]);
  }
  for (uint i = ROW_CACHE * stride + tid * 4; i < K; i += stride) {
    const float4 v = load_quad(row, i, K, aligned);
    ss += dot(v, v);
  }
  // Sum of squares: simd_sum, one slot per SIMD group, and every SIMD group
  // sums the slots itself (no second barrier and broadcast).
  ss = simd_sum(ss);
  if (lane == 0) red[sg] = ss;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  ss = simd_sum(lane < n_sg ? red[lane] : 0.0f);
  const float rstd = rsqrt(ss / float(K) + eps);

  // w starts at index 0 of its own buffer: its quads are always aligned.
  for (uint c = 0; c < ROW_CACHE; ++c) {
    const uint i = c * stride + tid * 4;
    if (i >= K) break;
    store_quad(out, i, K, aligned, cache[c] * rstd * load_quad(w, i, K, true));
  }
  for (uint i = ROW_CACHE * stride + tid * 4; i < K; i += stride) {
    store_quad(out, i, K, aligned, load_quad(row, i, K, aligned) * rstd * load_quad(w, i, K, true));
  }
}

// Dispatch 2: y = h @ W. A[M, K] = h, B[K, N] = W; see common/sqr_mm.metal
// for the design notes (and where simdgroup_matrix goes on hardware).
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

kernel void rms_norm_linear_matmul_f32(device const float* A [[buffer(0)]],
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
