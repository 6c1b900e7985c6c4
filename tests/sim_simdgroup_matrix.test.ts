/**
 * simdgroup_matrix in the simulator: Apple's fragment layout (the one MLX's
 * steel GEMM computes from the lane id), loads and stores with stride,
 * origin and transpose, multiply-accumulate in float, half and bfloat, and a
 * tiled matmul built from them, each checked against values computed here.
 */
import {
  assertClose,
  assertEquals,
  bfloatBits,
  f32,
  halfBits,
  halfValue,
  msl,
  openSim,
  random,
  runKernel,
  toBfloat,
  toHalf,
  u16,
} from "./_sim_lib.ts";

const SIMD = { grid: [32, 1, 1], group: [32, 1, 1] } as const;

/** Row-major 8x8 product plus c: a * b + c. */
function mma(a: number[][], b: number[][], c: number[][]): number[][] {
  return a.map((row, r) =>
    row.map((_, j) => c[r][j] + [...Array(8).keys()].reduce((s, k) => s + a[r][k] * b[k][j], 0))
  );
}
const grid8 = (f: (r: number, c: number) => number) =>
  Array.from({ length: 8 }, (_, r) => Array.from({ length: 8 }, (_, c) => f(r, c)));

Deno.test("simdgroup_matrix: thread_elements() follows Apple's lane layout", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void layout(device const float* m [[buffer(0)]], device float* out [[buffer(1)]],
                   uint lane [[thread_index_in_simdgroup]]) {
  simdgroup_float8x8 a;
  simdgroup_load(a, m);
  out[2 * lane] = a.thread_elements()[0];
  out[2 * lane + 1] = a.thread_elements()[1];
  simdgroup_float8x8 d = simdgroup_float8x8(5.0f);       // diagonal
  out[64 + 2 * lane] = d.thread_elements()[0];
  out[64 + 2 * lane + 1] = d.thread_elements()[1];
}`);
  const m = Float32Array.from({ length: 64 }, (_, i) => i); // element (r, c) = 8r + c
  const out = f32(
    (await runKernel(sim, src, "layout", [{ index: 0, data: m }, { index: 1, length: 512 }], SIMD))
      .get(1),
  );
  for (let l = 0; l < 32; l++) {
    // MLX steel (mma.h): qid = lane / 4; sm = (qid & 4) + (lane / 2) % 4;
    // sn = (qid & 2) * 2 + (lane % 2) * 2; the lane holds (sm, sn), (sm, sn + 1)
    const qid = l >> 2, sm = (qid & 4) + ((l >> 1) % 4), sn = (qid & 2) * 2 + (l % 2) * 2;
    assertEquals([out[2 * l], out[2 * l + 1]], [8 * sm + sn, 8 * sm + sn + 1], `lane ${l}`);
    assertEquals(
      [out[64 + 2 * l], out[65 + 2 * l]],
      [sm === sn ? 5 : 0, sm === sn + 1 ? 5 : 0],
      `diagonal, lane ${l}`,
    );
  }
});

Deno.test("simdgroup_matrix: load/store with stride, origin and transpose; float mma", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void mma_f32(device const float* A [[buffer(0)]], device const float* B [[buffer(1)]],
                    device float* D [[buffer(2)]]) {
  simdgroup_float8x8 a, b, c = make_filled_simdgroup_matrix<float, 8, 8>(0.5f), d;
  simdgroup_load(a, A, 16, ulong2(8, 0));          // columns 8..15 of a 8x16 matrix
  simdgroup_load(b, B, 8, ulong2(0, 0), true);     // B transposed
  simdgroup_multiply_accumulate(d, a, b, c);
  simdgroup_store(d, D, 24, ulong2(16, 8));        // rows 8..15, columns 16..23 of 16x24
  simdgroup_multiply(c, a, a);
  simdgroup_store(c, D, 24, ulong2(0, 0), true);   // a*a, transposed, at the origin
}`);
  const rnd = random(11);
  const A = Float32Array.from({ length: 128 }, () => Math.round(rnd() * 16 - 8) / 4);
  const B = Float32Array.from({ length: 64 }, () => Math.round(rnd() * 16 - 8) / 4);
  const D = f32(
    (await runKernel(sim, src, "mma_f32", [
      { index: 0, data: A },
      { index: 1, data: B },
      { index: 2, data: new Float32Array(16 * 24).fill(-1) },
    ], SIMD)).get(2),
  );
  const a = grid8((r, c) => A[r * 16 + 8 + c]);
  const bt = grid8((r, c) => B[c * 8 + r]);
  const d = mma(a, bt, grid8(() => 0.5));
  const aa = mma(a, a, grid8(() => 0));
  for (let r = 0; r < 16; r++) {
    for (let c = 0; c < 24; c++) {
      let want = -1;
      if (r >= 8 && c >= 16) want = d[r - 8][c - 16];
      else if (r < 8 && c < 8) want = aa[c][r];
      assertEquals(D[r * 24 + c], want, `D[${r}][${c}]`);
    }
  }
});

Deno.test("simdgroup_matrix: half and bfloat inputs, float and half accumulators", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void mma_low(device const half* H [[buffer(0)]], device const bfloat* Bf [[buffer(1)]],
                    device float* F [[buffer(2)]], device half* Hout [[buffer(3)]]) {
  simdgroup_half8x8 a, b;
  simdgroup_load(a, H);
  simdgroup_load(b, H + 64);
  simdgroup_float8x8 acc = make_filled_simdgroup_matrix<float, 8, 8>(1.0f);
  simdgroup_multiply_accumulate(acc, a, b, acc);          // half x half -> float
  simdgroup_store(acc, F);
  simdgroup_half8x8 h = make_filled_simdgroup_matrix<half, 8, 8>(0.0h);
  simdgroup_multiply_accumulate(h, a, b, h);              // in half
  simdgroup_store(h, Hout);
  simdgroup_bfloat8x8 x, y;
  simdgroup_load(x, Bf);
  simdgroup_load(y, Bf + 64);
  simdgroup_float8x8 z;
  simdgroup_multiply(z, x, y);
  simdgroup_store(z, F + 64);
}`);
  const rnd = random(5);
  const hv = Array.from({ length: 128 }, () => toHalf(rnd() * 4 - 2));
  const bv = Array.from({ length: 128 }, () => toBfloat(rnd() * 4 - 2));
  const hbits = Uint16Array.from(hv, (v) => halfBits(v));
  const bbits = Uint16Array.from(bv, (v) => bfloatBits(v));
  const out = await runKernel(sim, src, "mma_low", [
    { index: 0, data: hbits },
    { index: 1, data: bbits },
    { index: 2, length: 128 * 4 },
    { index: 3, length: 64 * 2 },
  ], SIMD);
  const F = f32(out.get(2));
  const a = grid8((r, c) => hv[r * 8 + c]), b = grid8((r, c) => hv[64 + r * 8 + c]);
  const want = mma(a, b, grid8(() => 1)).flat();
  assertClose(F.subarray(0, 64), want, 1e-5);
  const Hout = u16(out.get(3));
  assertClose(Array.from(Hout, halfValue), mma(a, b, grid8(() => 0)).flat(), 2e-3);
  const x = grid8((r, c) => bv[r * 8 + c]), y = grid8((r, c) => bv[64 + r * 8 + c]);
  assertClose(F.subarray(64, 128), mma(x, y, grid8(() => 0)).flat(), 1e-5);
});

Deno.test("simdgroup_matrix: a tiled matmul (threadgroup staging, barriers, 4 SIMD groups)", async () => {
  using sim = await openSim();
  // C[M,N] = A[M,K] @ B[K,N]; 32x32 tiles per threadgroup of 128 threads,
  // each SIMD group a 16x16 block (2x2 fragments), K in slices of 8.
  const src = msl(`
kernel void sg_gemm(device const float* A [[buffer(0)]], device const float* B [[buffer(1)]],
                    device float* C [[buffer(2)]], constant uint3& dims [[buffer(3)]],
                    uint2 tg [[threadgroup_position_in_grid]],
                    uint tid [[thread_index_in_threadgroup]],
                    uint sg [[simdgroup_index_in_threadgroup]]) {
  const uint M = dims.x, N = dims.y, K = dims.z;
  threadgroup float As[32 * 8];
  threadgroup float Bs[8 * 32];
  simdgroup_float8x8 acc[2][2];
  for (uint i = 0; i < 2; ++i)
    for (uint j = 0; j < 2; ++j) acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
  const uint r0 = (sg / 2) * 16, c0 = (sg % 2) * 16;
  for (uint k0 = 0; k0 < K; k0 += 8) {
    for (uint e = tid; e < 256; e += 128) {
      uint r = e / 8, k = e % 8;   // A slice: 32 rows x 8
      As[e] = A[(tg.y * 32 + r) * K + k0 + k];
      uint kb = e / 32, c = e % 32; // B slice: 8 rows x 32
      Bs[e] = B[(k0 + kb) * N + tg.x * 32 + c];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    simdgroup_float8x8 a[2], b[2];
    for (uint i = 0; i < 2; ++i) simdgroup_load(a[i], As, 8, ulong2(0, r0 + 8 * i));
    for (uint j = 0; j < 2; ++j) simdgroup_load(b[j], Bs, 32, ulong2(c0 + 8 * j, 0));
    for (uint i = 0; i < 2; ++i)
      for (uint j = 0; j < 2; ++j) simdgroup_multiply_accumulate(acc[i][j], a[i], b[j], acc[i][j]);
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  for (uint i = 0; i < 2; ++i)
    for (uint j = 0; j < 2; ++j)
      simdgroup_store(acc[i][j], C + (tg.y * 32 + r0 + 8 * i) * N + tg.x * 32 + c0 + 8 * j, N);
  (void)M;
}`);
  const M = 64, N = 96, K = 40;
  const rnd = random(21);
  const A = Float32Array.from({ length: M * K }, () => rnd() * 2 - 1);
  const B = Float32Array.from({ length: K * N }, () => rnd() * 2 - 1);
  const C = f32(
    (await runKernel(sim, src, "sg_gemm", [
      { index: 0, data: A },
      { index: 1, data: B },
      { index: 2, data: new Float32Array(M * N).fill(NaN) },
      { index: 3, bytes: new Uint32Array([M, N, K, 0]) },
    ], { mode: "threadgroups", grid: [N / 32, M / 32, 1], group: [128, 1, 1] })).get(2),
  );
  const want = new Float64Array(M * N);
  for (let r = 0; r < M; r++) {
    for (let c = 0; c < N; c++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[r * K + k] * B[k * N + c];
      want[r * N + c] = s;
    }
  }
  assertClose(C, want, 1e-5);
});
