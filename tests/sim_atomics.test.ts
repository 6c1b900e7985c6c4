/**
 * Atomics in the simulator, on device and threadgroup memory: atomic_int,
 * atomic_uint and atomic_float with the _explicit functions and
 * memory_order_relaxed, exchange and compare-exchange; threadgroups run in
 * parallel, so the results hold only if the operations are atomic.
 */
import { assert, assertEquals, f32, i32, msl, openSim, runKernel, u32 } from "./_sim_lib.ts";

Deno.test("sim atomics: every read-modify-write on device and threadgroup memory", async () => {
  using sim = await openSim({ workers: 2 });
  const src = msl(`
kernel void atomics(device atomic_int* ai [[buffer(0)]], device atomic_uint* au [[buffer(1)]],
                    device atomic_float* af [[buffer(2)]], device int* res [[buffer(3)]],
                    uint gid [[thread_position_in_grid]],
                    uint tid [[thread_index_in_threadgroup]],
                    uint tg [[threadgroup_position_in_grid]]) {
  atomic_fetch_add_explicit(&ai[0], 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&ai[1], 2, memory_order_relaxed);
  atomic_fetch_max_explicit(&ai[2], int(gid), memory_order_relaxed);
  atomic_fetch_min_explicit(&ai[3], -int(gid), memory_order_relaxed);
  atomic_fetch_or_explicit(&au[0], 1u << (gid % 32), memory_order_relaxed);
  atomic_fetch_and_explicit(&au[1], ~(1u << (gid % 16)), memory_order_relaxed);
  atomic_fetch_xor_explicit(&au[2], gid, memory_order_relaxed);
  atomic_fetch_max_explicit(&au[3], gid * 3, memory_order_relaxed);
  atomic_fetch_add_explicit(&af[0], 0.5f, memory_order_relaxed);
  // compare-exchange: exactly one thread claims the slot
  int expected = 0;
  bool won = atomic_compare_exchange_weak_explicit(&ai[4], &expected, int(gid) + 1,
                                                   memory_order_relaxed, memory_order_relaxed);
  atomic_fetch_add_explicit(&ai[5], won ? 1 : 0, memory_order_relaxed);
  // a lock-free float maximum built from compare-exchange
  float v = float((gid * 7919) % 1000);
  float old = atomic_load_explicit(&af[1], memory_order_relaxed);
  while (v > old && !atomic_compare_exchange_weak_explicit(&af[1], &old, v, memory_order_relaxed,
                                                           memory_order_relaxed)) {
  }
  int prev = atomic_exchange_explicit(&ai[6], int(gid), memory_order_relaxed);
  atomic_fetch_add_explicit(&ai[7], prev >= 0 ? 1 : 0, memory_order_relaxed);
  // threadgroup atomics: count the group's threads
  threadgroup atomic_uint count;
  threadgroup atomic_int sum;
  if (tid == 0) {
    atomic_store_explicit(&count, 0u, memory_order_relaxed);
    atomic_store_explicit(&sum, 0, memory_order_relaxed);
  }
  threadgroup_barrier(mem_flags::mem_threadgroup);
  atomic_fetch_add_explicit(&count, 1u, memory_order_relaxed);
  atomic_fetch_add_explicit(&sum, int(tid), memory_order_relaxed);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (tid == 0) {
    res[2 * tg] = int(atomic_load_explicit(&count, memory_order_relaxed));
    res[2 * tg + 1] = atomic_load_explicit(&sum, memory_order_relaxed);
  }
}`);
  const n = 4000, group = 100, groups = n / group;
  const out = await runKernel(sim, src, "atomics", [
    { index: 0, data: new Int32Array([0, 0, -1, 1, 0, 0, 0, 0]) },
    { index: 1, data: new Uint32Array([0, 0xffffffff, 0, 0]) },
    { index: 2, data: new Float32Array([0, -1]) },
    { index: 3, length: 2 * groups * 4 },
  ], { grid: [n, 1, 1], group: [group, 1, 1] });
  const ai = i32(out.get(0)), au = u32(out.get(1)), af = f32(out.get(2));
  let xor = 0;
  for (let g = 0; g < n; g++) xor ^= g;
  let fmax = -1;
  for (let g = 0; g < n; g++) fmax = Math.max(fmax, (g * 7919) % 1000);
  assertEquals(ai[0], n);
  assertEquals(ai[1], -2 * n);
  assertEquals(ai[2], n - 1);
  assertEquals(ai[3], -(n - 1));
  assertEquals(au[0], 0xffffffff);
  assertEquals(au[1], 0xffff0000);
  assertEquals(au[2], xor >>> 0);
  assertEquals(au[3], (n - 1) * 3);
  assertEquals(af[0], n * 0.5);
  assert(ai[4] >= 1 && ai[4] <= n, `claimed by thread ${ai[4] - 1}`);
  assertEquals(ai[5], 1, "exactly one compare-exchange won");
  assertEquals(af[1], fmax);
  assert(ai[6] >= 0 && ai[6] < n, "the last exchange left a thread id");
  assertEquals(ai[7], n, "every exchange returned the previous value");
  const res = i32(out.get(3));
  for (let g = 0; g < groups; g++) {
    assertEquals([res[2 * g], res[2 * g + 1]], [group, (group * (group - 1)) / 2], `group ${g}`);
  }
});
