/**
 * SIMD-group functions in the simulator: reductions, prefix sums and
 * shuffles over SIMD groups of 32 consecutive threads (partial last groups:
 * the threads present), and a softmax row kernel combining them with
 * threadgroup memory and barriers.
 */
import {
  assert,
  assertClose,
  assertEquals,
  f32,
  fixture,
  i32,
  openSim,
  random,
  runOnce,
  u32,
} from "./_sim_lib.ts";

const SIMD_SRC = `
#include <metal_stdlib>
using namespace metal;
kernel void simd_ops(device const float* x [[buffer(0)]], device float4* out [[buffer(1)]],
                     device uint4* iout [[buffer(2)]],
                     uint gid [[thread_position_in_grid]],
                     uint lane [[thread_index_in_simdgroup]],
                     uint sg [[simdgroup_index_in_threadgroup]]) {
  float v = x[gid];
  // tree reduction with shuffle_down: lane 0 ends with the sum of its group
  float t = v;
  for (ushort off = 16; off > 0; off /= 2) t += simd_shuffle_down(t, off);
  out[gid] = float4(simd_sum(v), simd_max(v), simd_prefix_inclusive_sum(v), t);
  iout[gid] = uint4(simd_prefix_exclusive_sum(1u), simd_shuffle_xor(lane, 1u),
                    simd_broadcast(lane * 10u, 3), sg);
}`;

Deno.test("sim: simd_sum, simd_max, prefix sums and shuffles over groups of 32", async () => {
  using sim = await openSim();
  using p = await sim.compile(SIMD_SRC, "simd_ops", { source_name: "simd.metal" });
  // Threadgroups of 80 threads: SIMD groups of 32, 32 and 16 lanes.
  const n = 160, group = 80;
  const rnd = random(7);
  const x = Float32Array.from({ length: n }, () => Math.round(rnd() * 100) / 4);
  const out = await runOnce(sim, p, [
    { index: 0, data: x },
    { index: 1, length: n * 16 },
    { index: 2, length: n * 16 },
  ], { grid: [n, 1, 1], group: [group, 1, 1] });
  const f = f32(out.get(1)), u = u32(out.get(2));
  for (let i = 0; i < n; i++) {
    const local = i % group, sg = Math.floor(local / 32), lane = local % 32;
    const start = i - lane, width = Math.min(32, group - sg * 32);
    const lanes = Array.from(x.subarray(start, start + width));
    const sum = lanes.reduce((a, b) => a + b, 0);
    // shuffle_down past lane 31 leaves a lane's own value (MSL); reading a
    // lane missing from a partial SIMD group is undefined: poison (NaN)
    let t = [...lanes];
    for (let off = 16; off > 0; off >>= 1) {
      t = t.map((val, l) => val + (l + off >= 32 ? val : l + off < width ? t[l + off] : NaN));
    }
    assertClose([f[4 * i], f[4 * i + 1], f[4 * i + 2]], [
      sum,
      Math.max(...lanes),
      lanes.slice(0, lane + 1).reduce((a, b) => a + b, 0),
    ], 1e-6);
    if (Number.isNaN(t[lane])) assert(Number.isNaN(f[4 * i + 3]), `thread ${i}: poison expected`);
    else assertClose([f[4 * i + 3]], [t[lane]], 1e-6);
    assertEquals(Array.from(u.subarray(4 * i, 4 * i + 4)), [
      lane,
      (lane ^ 1) < width ? lane ^ 1 : lane,
      30,
      sg,
    ], `thread ${i}`);
  }
});

Deno.test("sim: collectives in divergent branches take part per branch", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void branches(device uint* out [[buffer(0)]], uint lane [[thread_index_in_simdgroup]]) {
  uint r;
  if (lane < 8) r = simd_sum(1u);        // 8 lanes take part
  else r = simd_sum(100u);               // the other 24
  out[lane] = r + simd_sum(0u);          // all 32 again
}`;
  using p = await sim.compile(src, "branches");
  const out = u32(
    (await runOnce(sim, p, [{ index: 0, length: 128 }], { grid: [32, 1, 1], group: [32, 1, 1] }))
      .get(0),
  );
  assertEquals(Array.from(out), Array.from({ length: 32 }, (_, l) => (l < 8 ? 8 : 2400)));
});

Deno.test("sim: softmax rows (simd_max/simd_sum, threadgroup arrays, barriers)", async () => {
  using sim = await openSim();
  using p = await sim.compile(fixture("softmax.metal"), "softmax_rows", {
    source_name: "softmax.metal",
  });
  assertEquals(p.facts().staticThreadgroupMemoryLength, 128 + 16 + 16);
  const rows = 6, cols = 1000;
  const rnd = random(3);
  const x = Float32Array.from({ length: rows * cols }, () => rnd() * 8 - 4);
  // 6 rows, one threadgroup each, 96 threads (3 SIMD groups)
  const y = f32(
    (await runOnce(sim, p, [
      { index: 0, data: x },
      { index: 1, data: new Float32Array(rows * cols).fill(NaN) },
      { index: 2, bytes: new Uint32Array([rows, cols]) },
    ], { mode: "threadgroups", grid: [rows, 1, 1], group: [96, 1, 1] })).get(1),
  );
  const expected: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = x.subarray(r * cols, (r + 1) * cols);
    const m = Math.max(...row);
    const e = Array.from(row, (v) => Math.exp(v - m));
    const s = e.reduce((a, b) => a + b, 0);
    expected.push(...e.map((v) => v / s));
  }
  assertClose(y, expected, 1e-5);
});

// Every SIMD-group and quad-group function, on integers (exact), over two
// full SIMD groups; expected values computed lane by lane here.
const ALL_OPS = `
#include <metal_stdlib>
using namespace metal;
kernel void all_ops(device const int* x [[buffer(0)]], device int* o [[buffer(1)]],
                    uint tid [[thread_index_in_threadgroup]],
                    uint lane [[thread_index_in_simdgroup]],
                    uint qlane [[thread_index_in_quadgroup]]) {
  int v = x[tid];
  device int* r = o + tid * 40;
  r[0] = simd_sum(v);
  r[1] = simd_product(v % 2 + 1);
  r[2] = simd_min(v);
  r[3] = simd_max(v);
  r[4] = simd_and(v | 0x100);
  r[5] = simd_or(v);
  r[6] = simd_xor(v);
  r[7] = simd_prefix_inclusive_sum(v);
  r[8] = simd_prefix_exclusive_sum(v);
  r[9] = simd_prefix_inclusive_product(v % 2 + 1);
  r[10] = simd_prefix_exclusive_product(v % 2 + 1);
  r[11] = simd_shuffle(v, ushort((lane * 7) % 32));
  r[12] = simd_shuffle_up(v, 3);
  r[13] = simd_shuffle_down(v, 5);
  r[14] = simd_shuffle_xor(v, 6);
  r[15] = simd_shuffle_rotate_up(v, 3);
  r[16] = simd_shuffle_rotate_down(v, 5);
  r[17] = simd_broadcast(v, 9);
  r[18] = simd_broadcast_first(v);
  r[19] = simd_all(v > -1000) + 2 * simd_all(v > 0);
  r[20] = simd_any(v == x[5]) + 2 * simd_any(v > 1000);
  r[21] = int(uint(ulong(simd_ballot(v % 3 == 0))));
  r[22] = -1;
  r[23] = -1;
  if (lane >= 4) {
    r[22] = simd_is_first();
    r[23] = int(uint(ulong(simd_active_threads_mask())));
  }
  r[24] = simd_shuffle_and_fill_down(v, v + 1000, 3);
  r[25] = simd_shuffle_and_fill_up(v, v + 1000, 2, 8);
  r[26] = quad_sum(v);
  r[27] = quad_shuffle_xor(v, 1);
  r[28] = quad_broadcast(v, 2);
  r[29] = quad_prefix_exclusive_sum(v);
  r[30] = quad_all(v > 0) + 2 * quad_any(v % 5 == 0);
  r[31] = int(ushort(quad_ballot(v % 2 == 0)));
  r[32] = quad_shuffle_down(v, 1);
  r[33] = quad_max(v) - quad_min(v);
  r[34] = quad_broadcast_first(v);
  simdgroup_barrier(mem_flags::mem_none);
  r[35] = int(qlane);
}`;

Deno.test("sim: every simd_* and quad_* function, lane by lane", async () => {
  using sim = await openSim();
  using p = await sim.compile(ALL_OPS, "all_ops", { source_name: "all_ops.metal" });
  const n = 64;
  const x = Int32Array.from({ length: n }, (_, i) => ((i * 37) % 23) - 7);
  const o = i32(
    (await runOnce(sim, p, [{ index: 0, data: x }, { index: 1, length: n * 40 * 4 }], {
      grid: [n, 1, 1],
      group: [n, 1, 1],
    })).get(1),
  );
  for (let t = 0; t < n; t++) {
    const lane = t % 32, base = t - lane, q = lane & ~3, ql = lane & 3;
    const L = (l: number) => x[base + l]; // SIMD group's lane l
    const lanes = Array.from({ length: 32 }, (_, l) => L(l));
    const p2 = (v: number) => (v % 2) + 1; // C's % keeps the sign, as JavaScript's
    const prod = (vs: number[]) => vs.reduce((a, b) => Math.imul(a, b), 1);
    const quad = [0, 1, 2, 3].map((k) => L(q + k));
    const fillDown = lane + 3 < 32 ? L(lane + 3) : L(lane + 3 - 32) + 1000;
    const m8 = lane & ~7, l8 = lane & 7;
    const fillUp = l8 - 2 >= 0 ? L(m8 + l8 - 2) : L(m8 + l8 - 2 + 8) + 1000;
    const want = [
      lanes.reduce((a, b) => a + b, 0),
      prod(lanes.map(p2)),
      Math.min(...lanes),
      Math.max(...lanes),
      lanes.reduce((a, b) => a & (b | 0x100), -1),
      lanes.reduce((a, b) => a | b, 0),
      lanes.reduce((a, b) => a ^ b, 0),
      lanes.slice(0, lane + 1).reduce((a, b) => a + b, 0),
      lanes.slice(0, lane).reduce((a, b) => a + b, 0),
      prod(lanes.slice(0, lane + 1).map(p2)),
      prod(lanes.slice(0, lane).map(p2)),
      L((lane * 7) % 32),
      lane >= 3 ? L(lane - 3) : L(lane),
      lane + 5 < 32 ? L(lane + 5) : L(lane),
      L(lane ^ 6),
      L((lane + 29) % 32),
      L((lane + 5) % 32),
      L(9),
      L(0),
      1 + 2 * (lanes.every((v) => v > 0) ? 1 : 0),
      1 + 2 * (lanes.some((v) => v > 1000) ? 1 : 0),
      lanes.reduce((m, v, l) => (v % 3 === 0 ? m | (1 << l) : m), 0),
      lane >= 4 ? (lane === 4 ? 1 : 0) : -1,
      lane >= 4 ? (0xfffffff0 | 0) : -1,
      fillDown,
      fillUp,
      quad.reduce((a, b) => a + b, 0),
      L(q + (ql ^ 1)),
      L(q + 2),
      quad.slice(0, ql).reduce((a, b) => a + b, 0),
      (quad.every((v) => v > 0) ? 1 : 0) + 2 * (quad.some((v) => v % 5 === 0) ? 1 : 0),
      quad.reduce((m, v, k) => (v % 2 === 0 ? m | (1 << k) : m), 0),
      ql + 1 < 4 ? L(q + ql + 1) : L(lane),
      Math.max(...quad) - Math.min(...quad),
      L(q),
      ql,
    ];
    assertEquals(Array.from(o.subarray(40 * t, 40 * t + want.length)), want, `thread ${t}`);
  }
});
