/**
 * Threadgroup memory in the simulator: kernel-scope `threadgroup` arrays and
 * scalars are shared by the threads of one group and fresh (poisoned) for
 * each group; barriers order the phases; [[threadgroup(n)]] allocations are
 * sized by the dispatch; a barrier that only some threads reach is an error.
 */
import { assert, assertEquals, f32, openSim, runOnce, u32 } from "./_sim_lib.ts";
import { BridgeError } from "../src/backend/bridge.ts";

Deno.test("sim: a threadgroup array is shared by the group (reverse within group)", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void reverse_groups(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                           uint gid [[thread_position_in_grid]],
                           uint tid [[thread_position_in_threadgroup]],
                           uint n [[threads_per_threadgroup]]) {
  threadgroup float tile[256];
  tile[tid] = x[gid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  y[gid] = tile[n - 1 - tid];
}`;
  using p = await sim.compile(src, "reverse_groups");
  assertEquals(p.facts().staticThreadgroupMemoryLength, 1024);
  const n = 1000; // 3 full groups of 256 and a partial one of 232
  const x = Float32Array.from({ length: n }, (_, i) => i);
  const y = f32(
    (await runOnce(sim, p, [{ index: 0, data: x }, { index: 1, length: n * 4 }], {
      grid: [n, 1, 1],
      group: [256, 1, 1],
    })).get(1),
  );
  const expected = Array.from({ length: n }, (_, i) => {
    const g = Math.floor(i / 256), size = Math.min(256, n - g * 256);
    return g * 256 + (size - 1 - (i - g * 256));
  });
  assertEquals(Array.from(y), expected);
});

Deno.test("sim: threadgroup scalars and several declarations in one statement", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void group_max(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                      uint gid [[thread_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                      uint tg [[threadgroup_position_in_grid]]) {
  threadgroup float best, seen[64], *unused_pointer_is_per_thread;
  (void)unused_pointer_is_per_thread;
  seen[tid] = x[gid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) {
    float m = seen[0];
    for (uint i = 1; i < 64; ++i) m = max(m, seen[i]);
    best = m;
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 5) y[tg] = best;
}`;
  // Mixed statement: the simulator asks for separate statements.
  const err = await sim.compile(src, "group_max", { source_name: "gm.metal" }).catch((e) => e);
  assert(err instanceof BridgeError && err.status === "compile", String(err));
  assert(/separate statements/.test(err.message), err.message);

  using p = await sim.compile(
    src.replace("best, seen[64], *unused_pointer_is_per_thread", "best, seen[64]")
      .replace(
        "threadgroup float best,",
        "threadgroup float* unused_pointer_is_per_thread;\n  threadgroup float best,",
      ),
    "group_max",
  );
  assertEquals(p.facts().staticThreadgroupMemoryLength, 16 + 256);
  const x = Float32Array.from({ length: 256 }, (_, i) => (i * 37) % 101);
  const y = f32(
    (await runOnce(sim, p, [{ index: 0, data: x }, { index: 1, length: 16 }], {
      grid: [256, 1, 1],
      group: [64, 1, 1],
    })).get(1),
  );
  for (let g = 0; g < 4; g++) {
    assertEquals(y[g], Math.max(...x.subarray(g * 64, g * 64 + 64)));
  }
});

Deno.test("sim: threadgroup memory starts poisoned (NaN) in every group", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void peek(device float* y [[buffer(0)]], device uint* bits [[buffer(1)]],
                 uint tid [[thread_index_in_threadgroup]], uint tg [[threadgroup_position_in_grid]]) {
  threadgroup float scratch[4];
  threadgroup uint word;
  if (tid == 0) {
    y[tg] = scratch[tg % 4];  // read before any write: poison
    bits[tg] = word;
    scratch[tg % 4] = 1.0f;   // must not leak into the next group
    word = 7;
  }
}`;
  using p = await sim.compile(src, "peek");
  const out = await runOnce(sim, p, [{ index: 0, length: 32 }, { index: 1, length: 32 }], {
    grid: [8 * 4, 1, 1],
    group: [4, 1, 1],
  });
  for (const v of f32(out.get(0))) assert(Number.isNaN(v), `expected NaN, got ${v}`);
  assertEquals(Array.from(u32(out.get(1))), new Array(8).fill(0xffffffff));
});

Deno.test("sim: [[threadgroup(n)]] memory sized by the dispatch", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void rotate(device const uint* x [[buffer(0)]], device uint* y [[buffer(1)]],
                   threadgroup uint* shared [[threadgroup(0)]],
                   uint gid [[thread_position_in_grid]], uint tid [[thread_index_in_threadgroup]],
                   uint n [[threads_per_threadgroup]]) {
  shared[tid] = x[gid];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  y[gid] = shared[(tid + 1) % n];
}`;
  using p = await sim.compile(src, "rotate");
  const x = Uint32Array.from({ length: 96 }, (_, i) => i * 10);
  const base = { grid: [96, 1, 1], group: [48, 1, 1] } as const;
  const y = u32(
    (await runOnce(sim, p, [{ index: 0, data: x }, { index: 1, length: 96 * 4 }], {
      ...base,
      threadgroupMemory: [{ index: 0, length: 48 * 4 }],
    })).get(1),
  );
  assertEquals(
    Array.from(y),
    Array.from(x, (_, i) => x[Math.floor(i / 48) * 48 + ((i % 48) + 1) % 48]),
  );
  const err = await runOnce(sim, p, [{ index: 0, data: x }, { index: 1, length: 96 * 4 }], base)
    .catch((e) => e);
  assert(err instanceof BridgeError && err.status === "argument", String(err));
  assert(/threadgroup\(0\)/.test(err.message), err.message);
});

Deno.test("sim: a barrier reached by only some threads is an error; the device goes on", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void half_barrier(device float* y [[buffer(0)]], uint tid [[thread_index_in_threadgroup]],
                         uint gid [[thread_position_in_grid]]) {
  if (tid < 16) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  y[gid] = 1.0f;
}`;
  using p = await sim.compile(src, "half_barrier");
  const err = await runOnce(sim, p, [{ index: 0, length: 256 }], {
    grid: [64, 1, 1],
    group: [64, 1, 1],
  }).catch((e) => e);
  assert(err instanceof BridgeError && err.status === "execution", String(err));
  assert(/barrier reached by only some threads/.test(err.message), err.message);
  assert(/threadgroup \(0,0,0\) in kernel 'half_barrier'/.test(err.message), err.message);

  // The same device runs the next kernel.
  const ok = await runOnce(sim, p, [{ index: 0, length: 64 }], {
    grid: [16, 1, 1],
    group: [16, 1, 1],
  });
  assertEquals(Array.from(f32(ok.get(0))), new Array(16).fill(1));
});

Deno.test("sim: a threadgroup variable outside the kernel function is a compile error", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
static float group_total(float v, uint tid) {
  threadgroup float scratch[64];
  scratch[tid] = v;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  return scratch[0];
}
kernel void uses_helper(device float* y [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  y[tid] = group_total(1.0f, tid);
}`;
  const err = await sim.compile(src, "uses_helper", { source_name: "helper.metal" }).catch((e) =>
    e
  );
  assert(err instanceof BridgeError && err.status === "compile", String(err));
  assert(
    /helper\.metal:5: error: threadgroup variable 'scratch' is declared in function 'group_total'/
      .test(err.message),
    err.message,
  );
});

Deno.test("sim: a threadgroup length set for an earlier step counts only for kernels that declare it", async () => {
  using sim = await openSim();
  const src = `
#include <metal_stdlib>
using namespace metal;
kernel void fill(device float* y [[buffer(0)]], threadgroup float* scratch [[threadgroup(0)]],
                 uint tid [[thread_position_in_threadgroup]]) {
  scratch[tid] = float(tid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  y[tid] = scratch[tid];
}
kernel void big_static(device float* y [[buffer(0)]], uint tid [[thread_position_in_threadgroup]]) {
  threadgroup float tile[4096];   // 16 KB of static threadgroup memory
  tile[tid] = 2.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  y[tid] += tile[tid];
}`;
  using fill = await sim.compile(src, "fill");
  using big = await sim.compile(src, "big_static");
  using y = sim.buffer(64 * 4);
  using cmd = sim.command();
  cmd.setPipeline(fill);
  cmd.setBuffer(0, y);
  cmd.setThreadgroupMemory(0, 24 * 1024); // 24 KB: with big_static's 16 KB it would be 40 KB
  cmd.dispatch("threads", [64, 1, 1], [64, 1, 1]);
  cmd.setPipeline(big);
  cmd.dispatch("threads", [64, 1, 1], [64, 1, 1]);
  await cmd.run(1, 1);
  assertEquals(Array.from(f32(y.read())), Array.from({ length: 64 }, (_, i) => i + 2));
});
