/**
 * Unbound pointer arguments: as on Metal (MLX's gemv and steel GEMM leave an
 * unused bias unbound), a dispatch may leave a `device T*` argument unbound
 * when the kernel does not use it. A kernel that does use it faults with an
 * error naming the argument, whatever offset it adds, and the device keeps
 * working; references and values must still be bound.
 */
import {
  assert,
  assertClose,
  assertDeviceStillWorks,
  assertEquals,
  bytesOf,
  f32,
  failure,
  msl,
  openSim,
  random,
  runKernel,
  runOnce,
  u32,
} from "./_sim_lib.ts";

// y = A x (+ bias when has_bias), one thread per row, as MLX's gemv.
const GEMV = msl(`
kernel void gemv(device const float* A [[buffer(0)]],
                 device const float* x [[buffer(1)]],
                 device const float* bias [[buffer(2)]],
                 device float* y [[buffer(3)]],
                 constant uint& n [[buffer(4)]],
                 constant uint& has_bias [[buffer(5)]],
                 uint row [[thread_position_in_grid]]) {
  float acc = 0.0f;
  for (uint k = 0; k < n; ++k) acc += A[row * n + k] * x[k];
  y[row] = has_bias ? acc + bias[row] : acc;
}`);

const ROWS = 8, COLS = 5;

function gemvInputs() {
  const next = random(7);
  const A = Float32Array.from({ length: ROWS * COLS }, () => next() * 2 - 1);
  const x = Float32Array.from({ length: COLS }, () => next() * 2 - 1);
  const bias = Float32Array.from({ length: ROWS }, () => next() * 2 - 1);
  const expected = (withBias: boolean) =>
    Array.from({ length: ROWS }, (_, r) => {
      let acc = 0;
      for (let k = 0; k < COLS; k++) acc = Math.fround(acc + Math.fround(A[r * COLS + k] * x[k]));
      return withBias ? Math.fround(acc + bias[r]) : acc;
    });
  return { A, x, bias, expected };
}

const UNBOUND_FIX = "fix: bind a buffer at index ";

Deno.test("sim: an unused pointer argument may stay unbound (gemv without bias)", async () => {
  using sim = await openSim();
  const { A, x, bias, expected } = gemvInputs();
  const common = [
    { index: 0, data: A },
    { index: 1, data: x },
    { index: 3, length: ROWS * 4 },
    { index: 4, bytes: new Uint32Array([COLS]) },
  ];
  const spec = { grid: [ROWS, 1, 1], group: [4, 1, 1] } as const;
  let out = await runKernel(sim, GEMV, "gemv", [
    ...common,
    { index: 5, bytes: new Uint32Array([0]) },
  ], spec);
  assertClose(f32(out.get(3)), expected(false), 1e-6);
  // Bound, the same argument is read: the unbound run did not ignore it.
  out = await runKernel(sim, GEMV, "gemv", [
    ...common,
    { index: 2, data: bias },
    { index: 5, bytes: new Uint32Array([1]) },
  ], spec);
  assertClose(f32(out.get(3)), expected(true), 1e-6);
});

Deno.test("sim: reading an unbound pointer faults naming the argument", async () => {
  using sim = await openSim();
  const { A, x } = gemvInputs();
  const e = await failure(runKernel(sim, GEMV, "gemv", [
    { index: 0, data: A },
    { index: 1, data: x },
    { index: 3, length: ROWS * 4 },
    { index: 4, bytes: new Uint32Array([COLS]) },
    { index: 5, bytes: new Uint32Array([1]) },
  ], { grid: [ROWS, 1, 1], group: [4, 1, 1] }));
  assertEquals(e.status, "execution");
  assertEquals(
    e.message,
    "kernel 'gemv' read [[buffer(2)]] 'bias', which is not bound (byte offset 0 through it), " +
      "in thread (0,0,0) of threadgroup (0,0,0) \u2014 fix: bind a buffer at index 2 " +
      "(Metal leaves unbound arguments undefined)",
  );
  await assertDeviceStillWorks(sim);
});

Deno.test("sim: a write through one of two unbound pointers names that one", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void scatter(device float* out [[buffer(0)]],
                    device float* unused [[buffer(2)]],
                    device float* extra [[buffer(3)]],
                    uint i [[thread_position_in_grid]]) {
  out[i] = 1.0f;
  if (i == 5) extra[i] = 2.0f;
}`);
  const e = await failure(
    runKernel(sim, src, "scatter", [{ index: 0, length: 64 }], {
      grid: [16, 1, 1],
      group: [8, 1, 1],
    }),
  );
  assertEquals(e.status, "execution");
  assert(
    e.message.startsWith(
      "kernel 'scatter' wrote to [[buffer(3)]] 'extra', which is not bound (byte offset 20 " +
        "through it), in thread (5,0,0) of threadgroup (0,0,0)",
    ),
    e.message,
  );
  assert(e.message.includes(`${UNBOUND_FIX}3 `), e.message);
  assert(!e.message.includes("\n"), e.message);
  await assertDeviceStillWorks(sim);
});

// Offsets a kernel forms with a 32-bit index (signed or unsigned) times the
// largest vector (ulong4, 32 bytes), read and written: all land in the
// unbound pointer's reservation, never in real memory.
Deno.test("sim: far offsets from an unbound pointer, both ways, fault naming it", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void reach(device ulong* out [[buffer(0)]],
                  device ulong4* p [[buffer(1)]],
                  constant int& i [[buffer(2)]],
                  constant uint& u [[buffer(3)]],
                  constant uint& mode [[buffer(4)]]) {
  if (mode == 0) out[0] = p[i].x;
  else if (mode == 1) out[0] = p[u].y;
  else if (mode == 2) p[i] = ulong4(7);
  else p[u].w = 7;
}`);
  using pipeline = await sim.compile(src, "reach", { source_name: "reach.metal" });
  const cases: { mode: number; i: number; u: number; offset: bigint; verb: string }[] = [
    { mode: 0, i: -1, u: 0, offset: -32n, verb: "read" },
    { mode: 0, i: -(2 ** 31), u: 0, offset: -(2n ** 31n) * 32n, verb: "read" },
    { mode: 0, i: 2 ** 31 - 1, u: 0, offset: (2n ** 31n - 1n) * 32n, verb: "read" },
    { mode: 1, i: 0, u: 2 ** 32 - 1, offset: (2n ** 32n - 1n) * 32n + 8n, verb: "read" },
    { mode: 2, i: -(2 ** 31), u: 0, offset: -(2n ** 31n) * 32n, verb: "wrote to" },
    { mode: 3, i: 0, u: 2 ** 32 - 1, offset: (2n ** 32n - 1n) * 32n + 24n, verb: "wrote to" },
  ];
  for (const c of cases) {
    const e = await failure(runOnce(sim, pipeline, [
      { index: 0, length: 8 },
      { index: 2, bytes: new Int32Array([c.i]) },
      { index: 3, bytes: new Uint32Array([c.u]) },
      { index: 4, bytes: new Uint32Array([c.mode]) },
    ], { grid: [1, 1, 1], group: [1, 1, 1] }));
    assertEquals(e.status, "execution");
    assertEquals(
      e.message,
      `kernel 'reach' ${c.verb} [[buffer(1)]] 'p', which is not bound (byte offset ${c.offset} ` +
        "through it), in thread (0,0,0) of threadgroup (0,0,0) \u2014 fix: bind a buffer at " +
        "index 1 (Metal leaves unbound arguments undefined)",
      `mode ${c.mode}, i ${c.i}, u ${c.u}: ${e.message}`,
    );
  }
  await assertDeviceStillWorks(sim);
});

// Another timing: a kernel saves the unbound pointer's address, and a later
// dispatch, with that index bound, uses it. The fault must not blame the
// (now bound) argument.
Deno.test("sim: an unbound pointer's address used by a later dispatch is not misnamed", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void leak(device ulong* out [[buffer(0)]], device float* p [[buffer(1)]]) {
  out[0] = (ulong)p;
}
kernel void use(device const ulong* saved [[buffer(0)]], device float* p [[buffer(1)]]) {
  p[0] = *(device float*)saved[0];
}`);
  using leak = await sim.compile(src, "leak", { source_name: "leak.metal" });
  using use = await sim.compile(src, "use", { source_name: "leak.metal" });
  using saved = sim.buffer(8);
  using p = sim.buffer(4);
  {
    using cmd = sim.command();
    cmd.setPipeline(leak);
    cmd.setBuffer(0, saved);
    cmd.dispatch("threads", [1, 1, 1], [1, 1, 1]);
    await cmd.run(1, 1);
  }
  assert(u32(saved.read())[1] !== 0, "the leaked address is a real pointer");
  using cmd = sim.command();
  cmd.setPipeline(use);
  cmd.setBuffer(0, saved);
  cmd.setBuffer(1, p);
  cmd.dispatch("threads", [1, 1, 1], [1, 1, 1]);
  const e = await failure(cmd.run(1, 1));
  assertEquals(e.status, "execution");
  assert(e.message.startsWith("kernel 'use' faulted: SIGSEGV"), e.message);
  assert(e.message.includes("(not inside any bound buffer)"), e.message);
  assert(!e.message.includes("not bound"), e.message);
  await assertDeviceStillWorks(sim);
});

Deno.test("sim: an unbound reference faults only when used (as MLX's gemv leaves alpha); a value must be bound", async () => {
  using sim = await openSim();
  const src = msl(`
struct Params { uint n; float scale; };
kernel void scale(device float* y [[buffer(0)]],
                  constant uint& n [[buffer(1)]],
                  Params p [[buffer(2)]],
                  device float* unused [[buffer(3)]],
                  constant float& alpha [[buffer(4)]],
                  uint i [[thread_position_in_grid]]) {
  if (i < n) y[i] *= p.scale;
}`);
  using pipeline = await sim.compile(src, "scale", { source_name: "scale.metal" });
  using y = sim.buffer(16);
  const params = new DataView(new ArrayBuffer(8));
  params.setUint32(0, 4, true);
  params.setFloat32(4, 3, true);
  {
    // A by-value argument is read on entry: refused before the run.
    using cmd = sim.command();
    cmd.setPipeline(pipeline);
    cmd.setBuffer(0, y);
    cmd.setBytes(1, bytesOf(new Uint32Array([4])));
    const e = await failure(
      Promise.resolve().then(() => cmd.dispatch("threads", [4, 1, 1], [4, 1, 1])),
    );
    assertEquals(e.status, "argument");
    assertEquals(
      e.message,
      "kernel 'scale' reads [[buffer(2)]] 'p' but nothing is bound at index 2",
    );
  }
  {
    // `n` unbound, and read: the run faults naming it.
    using cmd = sim.command();
    cmd.setPipeline(pipeline);
    cmd.setBuffer(0, y);
    cmd.setBytes(2, new Uint8Array(params.buffer));
    cmd.dispatch("threads", [4, 1, 1], [4, 1, 1]);
    const e = await failure(cmd.run(1, 1));
    assertEquals(e.status, "execution");
    assert(e.message.includes("read [[buffer(1)]] 'n', which is not bound"), e.message);
    await assertDeviceStillWorks(sim);
  }
  // `alpha` (a reference) and `unused` (a pointer) unbound and never used: it runs.
  using cmd = sim.command();
  cmd.setPipeline(pipeline);
  cmd.setBuffer(0, y);
  cmd.setBytes(1, bytesOf(new Uint32Array([4])));
  cmd.setBytes(2, new Uint8Array(params.buffer));
  y.write(new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer));
  cmd.dispatch("threads", [4, 1, 1], [4, 1, 1]);
  await cmd.run(1, 1);
  assertEquals(Array.from(f32(y.read())), [3, 6, 9, 12]);
});
