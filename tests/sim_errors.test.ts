/**
 * What a user sees when a kernel is wrong: compile errors with file:line,
 * an unknown kernel name, a kernel that never ends (time-out) or writes far
 * out of bounds (fault) — each an error naming the kernel, after which the
 * same device keeps working.
 */
import { Bridge, BridgeError } from "../src/backend/bridge.ts";
import {
  assert,
  assertDeviceStillWorks,
  assertEquals,
  fixture,
  openSim,
  runOnce,
  SIM_LIB,
} from "./_sim_lib.ts";

async function failure(p: Promise<unknown>): Promise<BridgeError> {
  const e = await p.then(() => undefined, (e) => e);
  assert(e instanceof BridgeError, `expected a BridgeError, got ${e}`);
  return e;
}

Deno.test("sim: a compile error keeps the compiler's file:line text", async () => {
  using sim = await openSim();
  const src = `#include <metal_stdlib>
using namespace metal;

kernel void broken(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = undefined_name * 2.0f;
}`;
  const e = await failure(sim.compile(src, "broken", { source_name: "broken.metal" }));
  assertEquals(e.status, "compile");
  assert(
    /broken\.metal:5:\d+: error: use of undeclared identifier 'undefined_name'/.test(e.message),
    e.message,
  );
});

Deno.test("sim: an unknown kernel name lists the kernels of the file", async () => {
  using sim = await openSim();
  const e = await failure(
    sim.compile(fixture("relu.metal"), "relu", { source_name: "relu.metal" }),
  );
  assertEquals(e.status, "compile");
  assertEquals(
    e.message,
    "no kernel function 'relu' in relu.metal (kernels in the file: relu_f32)",
  );
});

Deno.test("sim: an endless loop times out; the next dispatch on the device works", async () => {
  using sim = await openSim({ timeout_ms: 1500 });
  const src = `#include <metal_stdlib>
using namespace metal;
kernel void spin(device uint* flag [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  while (flag[0] == 0) { flag[1] = i; }
}`;
  using p = await sim.compile(src, "spin", { source_name: "spin.metal" });
  const started = performance.now();
  const e = await failure(runOnce(sim, p, [{ index: 0, length: 8 }], {
    grid: [64, 1, 1],
    group: [32, 1, 1],
  }));
  const took = performance.now() - started;
  assertEquals(e.status, "timeout");
  assertEquals(e.message, "kernel 'spin' did not finish within 1.5 s (an endless loop?); stopped");
  assert(took >= 1400 && took < 6000, `stopped after ${took} ms`);
  await assertDeviceStillWorks(sim);
  // and the spinning kernel itself, once its loop can end
  const out = await runOnce(sim, p, [{ index: 0, data: new Uint32Array([1, 0]) }], {
    grid: [64, 1, 1],
    group: [32, 1, 1],
  });
  assertEquals(Array.from(new Uint32Array(out.get(0)!.buffer)), [1, 0]);
});

Deno.test("sim: a far out-of-bounds write is a fault naming kernel, buffer and thread", async () => {
  using sim = await openSim();
  const src = `#include <metal_stdlib>
using namespace metal;
kernel void oob(device float* out [[buffer(0)]], uint gid [[thread_position_in_grid]]) {
  if (gid == 37) out[gid + 100000000] = 1.0f;
  else out[gid] = 2.0f;
}`;
  using p = await sim.compile(src, "oob", { source_name: "oob.metal" });
  const e = await failure(runOnce(sim, p, [{ index: 0, length: 64 * 4 }], {
    grid: [64, 1, 1],
    group: [32, 1, 1],
  }));
  assertEquals(e.status, "execution");
  assert(e.message.startsWith("kernel 'oob' faulted: SIGSEGV"), e.message);
  assert(/past the end of buffer\(0\) 'out', 256 bytes long/.test(e.message), e.message);
  assert(/in thread \(5,0,0\) of threadgroup \(1,0,0\)/.test(e.message), e.message);
  await assertDeviceStillWorks(sim);
});

Deno.test("sim: dispatch checks bindings; capture needs Metal", async () => {
  using sim = await openSim();
  using p = await sim.compile(fixture("relu.metal"), "relu_f32", { source_name: "relu.metal" });
  using cmd = sim.command();
  cmd.setPipeline(p);
  using a = sim.buffer(64);
  cmd.setBuffer(0, a);
  cmd.setBuffer(1, a);
  // An unbound reference may be dispatched, as on Metal; reading it faults.
  {
    using unbound = sim.command();
    unbound.setPipeline(p);
    unbound.setBuffer(0, a);
    unbound.setBuffer(1, a);
    unbound.dispatch("threads", [4, 1, 1], [4, 1, 1]);
    const u = await failure(unbound.run(1, 1));
    assertEquals(u.status, "execution");
    assert(u.message.includes("read [[buffer(2)]] 'count4', which is not bound"), u.message);
  }
  let e: Awaited<ReturnType<typeof failure>>;
  cmd.setBytes(2, new Uint8Array(2));
  e = await failure(Promise.resolve().then(() => cmd.dispatch("threads", [4, 1, 1], [4, 1, 1])));
  assert(/reads 4 bytes from \[\[buffer\(2\)\]\] 'count4' but only 2 are bound/.test(e.message));
  cmd.setBytes(2, new Uint8Array(4));
  e = await failure(Promise.resolve().then(() => cmd.dispatch("threads", [4, 1, 1], [2048, 1, 1])));
  assertEquals(e.status, "argument");
  cmd.dispatch("threads", [4, 1, 1], [4, 1, 1]);
  e = await failure(cmd.capture("/tmp/never.gputrace"));
  assertEquals(e.status, "unsupported");
});

Deno.test("sim: a missing compiler is 'unavailable' with the fix in one line", () => {
  let e: unknown;
  try {
    Bridge.open(SIM_LIB, { cxx: "/nonexistent/clang++" }).close();
  } catch (err) {
    e = err;
  }
  assert(e instanceof BridgeError && e.status === "unavailable", String(e));
  assert(!e.message.includes("\n") && /apt-get install clang-19/.test(e.message), e.message);
});
