#include <metal_stdlib>
using namespace metal;

// B[N, M] = transpose of A[M, N]. One threadgroup of 32 x 8 threads per
// 32 x 32 tile: each thread moves 4 elements in and 4 out. Fast because both
// the reads of A and the writes of B are coalesced (a SIMD group touches 32
// consecutive floats of one row), the turn happens in threadgroup memory,
// and the tile's rows are padded to 33 floats so the column reads hit 32
// different banks.
constant constexpr uint TILE = 32;

kernel void transpose_2d_f32(device const float* A [[buffer(0)]],
                             device float* B [[buffer(1)]],
                             constant uint& M [[buffer(2)]],
                             constant uint& N [[buffer(3)]],
                             uint2 tg [[threadgroup_position_in_grid]],
                             uint2 t [[thread_position_in_threadgroup]],
                             uint2 tg_dim [[threads_per_threadgroup]]) {
  threadgroup float tile[TILE][TILE + 1];
  const uint col0 = tg.x * TILE;  // first column of A in this tile
  const uint row0 = tg.y * TILE;  // first row of A in this tile

  for (uint k = t.y; k < TILE; k += tg_dim.y) {
    const uint r = row0 + k, c = col0 + t.x;
    if (r < M && c < N) tile[k][t.x] = A[ulong(r) * N + c];
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint k = t.y; k < TILE; k += tg_dim.y) {
    const uint r = col0 + k, c = row0 + t.x;  // row and column of B
    if (r < N && c < M) B[ulong(r) * M + c] = tile[t.x][k];
  }
}
