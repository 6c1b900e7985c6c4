/**
 * SIMD-group functions in the simulator: reductions, prefix sums and
 * shuffles over SIMD groups of 32 consecutive threads (partial last groups:
 * the threads present), and a softmax row kernel combining them with
 * threadgroup memory and barriers.
 */
import {
  assertClose,
  assertEquals,
  f32,
  fixture,
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
    // shuffle_down leaves a lane's own value where the source lane is absent
    let t = [...lanes];
    for (let off = 16; off > 0; off >>= 1) {
      t = t.map((val, l) => val + (l + off < width ? t[l + off] : val));
    }
    assertClose([f[4 * i], f[4 * i + 1], f[4 * i + 2], f[4 * i + 3]], [
      sum,
      Math.max(...lanes),
      lanes.slice(0, lane + 1).reduce((a, b) => a + b, 0),
      t[lane],
    ], 1e-6);
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
