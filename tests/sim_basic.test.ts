/**
 * The simulator runs MSL kernels as a Metal GPU would: element-wise kernels
 * with float4 loads, every thread-position form, both dispatch modes with
 * partial edge threadgroups, multi-step commands, half, atomics, timing.
 */
import {
  assert,
  assertClose,
  assertEquals,
  f32,
  fixture,
  FIXTURES,
  halfBits,
  halfValue,
  openSim,
  random,
  runOnce,
  toHalf,
  u32,
} from "./_sim_lib.ts";

Deno.test("sim: device info describes the simulator", async () => {
  using sim = await openSim();
  const info = sim.info();
  assertEquals(info.backend, "sim");
  assertEquals(info.timer, "cpu-monotonic");
  assertEquals(info.family, "sim");
  assertEquals(info.simd_width, 32);
  assertEquals(info.max_threads_per_threadgroup, 1024);
  assertEquals(info.max_threadgroup_memory, 32768);
  assertEquals(info.gpu_cores, 0);
  assert(/^MetalBench simulator \(\w+, clang \d+\.\d+\.\d+\)$/.test(info.name), info.name);
});

Deno.test("sim: float4 relu, partial last threadgroup", async () => {
  using sim = await openSim();
  using p = await sim.compile(fixture("relu.metal"), "relu_f32", { source_name: "relu.metal" });
  const facts = p.facts();
  assertEquals(facts.threadExecutionWidth, 32);
  assertEquals(facts.maxTotalThreadsPerThreadgroup, 1024);
  assertEquals(facts.staticThreadgroupMemoryLength, 0);
  const count4 = 1000; // 1000 threads in groups of 256: the last group has 232
  const rnd = random(1);
  const x = Float32Array.from({ length: count4 * 4 }, () => rnd() * 2 - 1);
  const out = await runOnce(sim, p, [
    { index: 0, data: x },
    { index: 1, data: new Float32Array(count4 * 4).fill(NaN) },
    { index: 2, bytes: new Uint32Array([count4]) },
  ], { grid: [count4, 1, 1], group: [256, 1, 1] });
  assertEquals(Array.from(f32(out.get(1))), Array.from(x, (v) => Math.max(v, 0)));
});

Deno.test("sim: 2-D and 3-D thread positions, uint/uint2/uint3/ushort forms", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void positions(device uint4* out [[buffer(0)]],
                      constant uint3& grid [[buffer(1)]],
                      uint3 gid [[thread_position_in_grid]],
                      ushort2 lid [[thread_position_in_threadgroup]],
                      uint3 tgid [[threadgroup_position_in_grid]],
                      uint lin [[thread_index_in_threadgroup]],
                      uint3 tpg [[threads_per_threadgroup]],
                      uint2 grid_size [[threads_per_grid]],
                      uint3 groups [[threadgroups_per_grid]]) {
  uint i = (gid.z * grid.y + gid.y) * grid.x + gid.x;
  out[2 * i] = uint4(gid, lin);
  out[2 * i + 1] = uint4(uint(lid.x) | (uint(lid.y) << 8) | (tgid.x << 16) | (tgid.z << 24),
                         tpg.x * 100 + tpg.y * 10 + tpg.z, grid_size.x * 1000 + grid_size.y,
                         groups.x * 100 + groups.y * 10 + groups.z);
}`;
  using p = await sim.compile(src, "positions");
  const grid = [10, 6, 3] as const, group = [4, 3, 2] as const;
  const n = grid[0] * grid[1] * grid[2];
  const out = u32(
    (await runOnce(sim, p, [
      { index: 0, length: n * 32 },
      { index: 1, bytes: new Uint32Array([...grid, 0]) },
    ], { grid, group })).get(0),
  );
  for (let z = 0; z < grid[2]; z++) {
    for (let y = 0; y < grid[1]; y++) {
      for (let x = 0; x < grid[0]; x++) {
        const i = (z * grid[1] + y) * grid[0] + x;
        const [gx, gy, gz] = [Math.floor(x / 4), Math.floor(y / 3), Math.floor(z / 2)];
        // edge groups are partial: their actual size (threads_per_threadgroup)
        const tx = Math.min(4, grid[0] - gx * 4), ty = Math.min(3, grid[1] - gy * 3);
        const tz = Math.min(2, grid[2] - gz * 2);
        const [lx, ly, lz] = [x % 4, y % 3, z % 2];
        const lin = (lz * ty + ly) * tx + lx;
        assertEquals(Array.from(out.subarray(8 * i, 8 * i + 8)), [
          x,
          y,
          z,
          lin,
          lx | (ly << 8) | (gx << 16) | (gz << 24),
          tx * 100 + ty * 10 + tz,
          10 * 1000 + 6,
          3 * 100 + 2 * 10 + 2,
        ], `thread (${x},${y},${z})`);
      }
    }
  }
});

Deno.test("sim: dispatchThreads edge groups are partial, dispatchThreadgroups are whole", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void sizes(device uint2* out [[buffer(0)]],
                  uint gid [[thread_position_in_grid]],
                  uint tpg [[threads_per_threadgroup]],
                  uint dtpg [[dispatch_threads_per_threadgroup]],
                  uint grid [[threads_per_grid]],
                  uint sgs [[simdgroups_per_threadgroup]]) {
  if (gid < 200) out[gid] = uint2(tpg * 1000 + dtpg, grid * 100 + sgs);
}`;
  using p = await sim.compile(src, "sizes");
  const threads = u32(
    (await runOnce(sim, p, [{ index: 0, length: 200 * 8 }], {
      mode: "threads",
      grid: [100, 1, 1],
      group: [64, 1, 1],
    })).get(0),
  );
  for (let i = 0; i < 100; i++) {
    const tpg = i < 64 ? 64 : 36; // the second group holds the last 36 threads
    assertEquals([threads[2 * i], threads[2 * i + 1]], [
      tpg * 1000 + 64,
      100 * 100 + Math.ceil(tpg / 32),
    ]);
  }
  assertEquals(threads[200], 0, "no thread beyond the grid");
  const groups = u32(
    (await runOnce(sim, p, [{ index: 0, length: 200 * 8 }], {
      mode: "threadgroups",
      grid: [2, 1, 1],
      group: [64, 1, 1],
    })).get(0),
  );
  for (let i = 0; i < 128; i++) {
    assertEquals([groups[2 * i], groups[2 * i + 1]], [64 * 1000 + 64, 128 * 100 + 2]);
  }
  assertEquals(groups[2 * 128], 0);
});

Deno.test("sim: a two-step command; step 2 reads step 1's output", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void scale(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                  constant float& k [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  y[i] = x[i] * k;
}
kernel void add_one(device const float* y [[buffer(0)]], device float* z [[buffer(1)]],
                    uint i [[thread_position_in_grid]]) {
  z[i] = y[i] + 1.0f;
}`;
  using scale = await sim.compile(src, "scale", { source_name: "two_steps.metal" });
  using addOne = await sim.compile(src, "add_one", { source_name: "two_steps.metal" });
  const n = 300;
  const x = Float32Array.from({ length: n }, (_, i) => i * 0.5);
  using bx = sim.buffer(n * 4);
  using by = sim.buffer(n * 4);
  using bz = sim.buffer(n * 4);
  bx.write(new Uint8Array(x.buffer));
  using cmd = sim.command();
  cmd.setPipeline(scale);
  cmd.setBuffer(0, bx);
  cmd.setBuffer(1, by);
  cmd.setBytes(2, new Uint8Array(new Float32Array([3]).buffer));
  cmd.dispatch("threads", [n, 1, 1], [128, 1, 1]);
  cmd.setPipeline(addOne);
  cmd.setBuffer(0, by);
  cmd.setBuffer(1, bz);
  cmd.dispatch("threads", [n, 1, 1], [128, 1, 1]);
  await cmd.run(1, 1);
  assertEquals(Array.from(f32(bz.read())), Array.from(x, (v) => v * 3 + 1));
});

Deno.test("sim: run fills one time per sample, per repetition of the batch", async () => {
  using sim = await openSim();
  using p = await sim.compile(fixture("relu.metal"), "relu_f32", { source_name: "relu.metal" });
  const count4 = 4096;
  using a = sim.buffer(count4 * 16);
  using b = sim.buffer(count4 * 16);
  using cmd = sim.command();
  cmd.setPipeline(p);
  cmd.setBuffer(0, a);
  cmd.setBuffer(1, b);
  cmd.setBytes(2, new Uint8Array(new Uint32Array([count4]).buffer));
  cmd.dispatch("threads", [count4, 1, 1], [256, 1, 1]);
  const { wallNs, deviceNs } = await cmd.run(5, 3);
  assertEquals(wallNs.length, 5);
  assertEquals(deviceNs.length, 5);
  // Device time is the runner's CPU time over all its worker threads (plus
  // a few microseconds of its reply): at most workers x the wall time.
  const workers = Number(sim.info().workers);
  for (let i = 0; i < 5; i++) {
    assert(wallNs[i] > 0 && deviceNs[i] > 0, `sample ${i}: ${wallNs[i]} ${deviceNs[i]}`);
    assert(
      deviceNs[i] <= wallNs[i] * workers + 20_000,
      `sample ${i}: ${deviceNs[i]} > ${workers} x ${wallNs[i]}`,
    );
  }
});

Deno.test("sim: half arithmetic rounds to half; math on vectors; gelu", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void halves(device const half* x [[buffer(0)]], device half* y [[buffer(1)]],
                   device float4* v [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  half h = x[i];
  y[i] = h * 3.0h + 0.25h;
  if (i == 0) {
    float4 a = float4(1.0f, -2.0f, 0.5f, 4.0f);
    v[0] = fast::exp(a) + precise::tanh(a) + rsqrt(abs(a)) + fma(a, a, 1.0f);
    v[1] = float4(a.wzyx.xy, clamp(a.zw, 0.0f, 1.0f));
    v[2] = float4(half4(a)) + select(float4(0.0f), float4(1.0f), a > 0.0f);
    float g = 0.5f * a.y * (1.0f + tanh(0.7978845608f * (a.y + 0.044715f * a.y * a.y * a.y)));
    v[3] = float4(g, length(a), dot(a, a), as_type<float>(0x3f800000u));
  }
}`;
  using p = await sim.compile(src, "halves");
  const n = 64;
  // half bits of 0.1 * i, computed exactly as float16 would store them
  const xs = Array.from({ length: n }, (_, i) => toHalf(i * 0.1));
  const out = await runOnce(sim, p, [
    { index: 0, data: new Uint16Array(xs.map(halfBits)) },
    { index: 1, length: n * 2 },
    { index: 2, length: 64 },
  ], { grid: [n, 1, 1], group: [32, 1, 1] });
  const y = new Uint16Array(out.get(1)!.buffer);
  for (let i = 0; i < n; i++) {
    const expected = toHalf(toHalf(xs[i] * 3) + 0.25); // rounded after each operation
    assertEquals(halfValue(y[i]), expected, `element ${i}`);
  }
  const v = f32(out.get(2));
  const a = [1, -2, 0.5, 4];
  assertClose(
    v.subarray(0, 4),
    a.map((t) => Math.exp(t) + Math.tanh(t) + 1 / Math.sqrt(Math.abs(t)) + t * t + 1),
    1e-5,
  );
  assertEquals(Array.from(v.subarray(4, 8)), [4, 0.5, 0.5, 1]);
  assertEquals(Array.from(v.subarray(8, 12)), [2, -2, 1.5, 5]);
  const g = 0.5 * -2 * (1 + Math.tanh(0.7978845608 * (-2 + 0.044715 * -8)));
  assertClose(v.subarray(12, 16), [g, Math.sqrt(21.25), 21.25, 1], 1e-6);
});

Deno.test("sim: device atomics add across threadgroups", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void count(device atomic_uint* total [[buffer(0)]], device atomic_float* sum [[buffer(1)]],
                  uint i [[thread_position_in_grid]]) {
  atomic_fetch_add_explicit(total, 1u, memory_order_relaxed);
  atomic_fetch_add_explicit(sum, float(i & 7), memory_order_relaxed);
}`;
  using p = await sim.compile(src, "count");
  const n = 10000;
  const out = await runOnce(sim, p, [{ index: 0, length: 4 }, { index: 1, length: 4 }], {
    grid: [n, 1, 1],
    group: [100, 1, 1],
  });
  assertEquals(u32(out.get(0))[0], n);
  assertEquals(f32(out.get(1))[0], (n / 8) * 28);
});

Deno.test("sim: MSL spellings: [[kernel]], #include via include_dir, constant arrays, literals", async () => {
  using sim = await openSim();
  const src = `#include <metal_stdlib>
#include "helpers.h"
using namespace metal;
constant float COEF[4] = {1.0f, 2.0f, 3.0f, 4.0f};
constexpr constant uint TILE = 8;
[[kernel]] void spellings(device float* o [[buffer(0)]], device atomic_uint* count [[buffer(1)]],
                          uint i [[thread_position_in_grid]],
                          uint thread_index_in_threadgroup [[thread_index_in_threadgroup]]) {
  const uint tid = thread_index_in_threadgroup;  // a parameter named like its attribute
  threadgroup atomic_uint local_count;
  threadgroup float tile[TILE][TILE];
  if (tid == 0) atomic_store_explicit(&local_count, 0u, memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  atomic_fetch_add_explicit(&local_count, 1u, memory_order_relaxed);
  tile[tid % TILE][tid / TILE] = float(tid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) {
    atomic_fetch_add_explicit(count, atomic_load_explicit(&local_count, memory_order_relaxed),
                              memory_order_relaxed);
  }
  bfloat b = bfloat(1.5f) * bfloat(2.0f);
  half h = 0.5h + 1h;
  o[i] = twice(COEF[i % 4]) + group_sum(1.0f) + float(b) + float(h) + tile[1][0];
}`;
  using p = await sim.compile(src, "spellings", {
    source_name: "spellings.metal",
    include_dir: FIXTURES,
  });
  assertEquals(p.facts().staticThreadgroupMemoryLength, 16 + 256);
  const out = await runOnce(sim, p, [{ index: 0, length: 128 * 4 }, { index: 1, length: 4 }], {
    grid: [128, 1, 1],
    group: [64, 1, 1],
  });
  const o = f32(out.get(0));
  for (let i = 0; i < 128; i++) assertEquals(o[i], 2 * (1 + (i % 4)) + 32 + 3 + 1.5 + 1);
  assertEquals(u32(out.get(1))[0], 128);
});
