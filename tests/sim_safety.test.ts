/**
 * What the simulator catches so that "correct on the simulator" means
 * something: reads and writes past a buffer (which buffer, which offset,
 * which thread), past threadgroup memory, misaligned vector access, a
 * missing barrier (threads of a group run in a changing order between
 * barriers), threads at different barriers. Each is an error naming the
 * kernel; the device keeps working.
 */
import {
  assert,
  assertClose,
  assertDeviceStillWorks,
  assertEquals,
  f32,
  failure,
  msl,
  openSim,
  random,
  runKernel,
} from "./_sim_lib.ts";

const WRITE = msl(`
kernel void write_at(device float* out [[buffer(0)]], constant int& k [[buffer(1)]],
                     uint i [[thread_position_in_grid]]) {
  out[int(i) + k] = 1.0f;
}`);

Deno.test("sim safety: a write one element past the end faults: buffer, offset, thread", async () => {
  using sim = await openSim();
  // 16 floats: thread 16 writes element 16, the first byte after the data
  const e = await failure(runKernel(sim, WRITE, "write_at", [
    { index: 0, length: 64 },
    { index: 1, bytes: new Int32Array([0]) },
  ], { grid: [17, 1, 1], group: [17, 1, 1] }));
  assertEquals(e.status, "execution");
  assert(e.message.startsWith("kernel 'write_at' faulted: SIGSEGV"), e.message);
  assert(
    /writing 0x[0-9a-f]+ \(0 bytes past the end of buffer\(0\) 'out', 64 bytes long; byte offset 64\) in thread \(16,0,0\) of threadgroup \(0,0,0\)/
      .test(e.message),
    e.message,
  );
  await assertDeviceStillWorks(sim);
});

Deno.test("sim safety: small overruns and underruns within the last page are reported", async () => {
  using sim = await openSim();
  // 10 floats: element 10 lies in the slack after the data (not a whole
  // 16 bytes), caught by the canary around every buffer
  let e = await failure(runKernel(sim, WRITE, "write_at", [
    { index: 0, length: 40 },
    { index: 1, bytes: new Int32Array([0]) },
  ], { grid: [11, 1, 1], group: [11, 1, 1] }));
  assertEquals(e.status, "execution");
  assertEquals(
    e.message,
    "kernel 'write_at' wrote past the end of buffer(0) 'out', 40 bytes long, at byte offset 40 " +
      "(the write stayed within the buffer's memory page, so no fault named the thread)",
  );
  e = await failure(runKernel(sim, WRITE, "write_at", [
    { index: 0, length: 40 },
    { index: 1, bytes: new Int32Array([-1]) },
  ], { grid: [4, 1, 1], group: [4, 1, 1] }));
  assert(/wrote 4 bytes before the start of buffer\(0\) 'out'/.test(e.message), e.message);
  await assertDeviceStillWorks(sim);
});

Deno.test("sim safety: a read far past the end faults, naming the buffer read", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void gather(device const float* x [[buffer(0)]], device const uint* idx [[buffer(1)]],
                   device float* y [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  y[i] = x[idx[i]];
}`);
  const e = await failure(runKernel(sim, src, "gather", [
    { index: 0, length: 256 },
    { index: 1, data: new Uint32Array([0, 1, 5000000, 2]) },
    { index: 2, length: 16 },
  ], { grid: [4, 1, 1], group: [4, 1, 1] }));
  assert(
    /reading 0x[0-9a-f]+ \(\d+ bytes past the end of buffer\(0\) 'x', 256 bytes long; byte offset 20000000\) in thread \(2,0,0\)/
      .test(e.message),
    e.message,
  );
  await assertDeviceStillWorks(sim);
});

Deno.test("sim safety: past the end of threadgroup memory faults", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void tg_over(device float* y [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {
  threadgroup float t[16];
  threadgroup float* p = t;  // through a pointer: no array bound to check, the guard faults
  p[i * 64] = 1.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  y[i] = t[0];
}`);
  const e = await failure(runKernel(sim, src, "tg_over", [{ index: 0, length: 64 }], {
    grid: [4, 1, 1],
    group: [4, 1, 1],
  }));
  assert(
    /past the end of threadgroup memory, 64 bytes long\) in thread \(1,0,0\)/.test(e.message),
    e.message,
  );
});

Deno.test("sim safety: misaligned vector access is reported as such", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void whole(device const float* x [[buffer(0)]], device float4* y [[buffer(1)]]) {
  y[0] = *reinterpret_cast<device const float4*>(x + 1);
}
kernel void one(device const float* x [[buffer(0)]], device float* y [[buffer(1)]]) {
  y[0] = reinterpret_cast<device const float4*>(x + 1)->x;
}`);
  for (const fn of ["whole", "one"]) {
    const e = await failure(
      runKernel(sim, src, fn, [{ index: 0, length: 64 }, { index: 1, length: 16 }], {
        grid: [1, 1, 1],
        group: [1, 1, 1],
      }),
    );
    assertEquals(e.status, "execution");
    assert(
      new RegExp(
        `^kernel '${fn}' made a misaligned load of '(const )?(device )?float4'.* at 0x[0-9a-f]+: it needs 16-byte alignment \\(byte offset 4 of buffer\\(0\\) 'x', 64 bytes long\\), at ${fn}\\.metal:\\d+:\\d+ in thread \\(0,0,0\\)`,
      ).test(e.message),
      e.message,
    );
  }
  await assertDeviceStillWorks(sim);
});

Deno.test("sim safety: a missing barrier shows (cumsum without its trailing barrier)", async () => {
  using sim = await openSim();
  const good = Deno.readTextFileSync(new URL("../kernels/common/cumsum.metal", import.meta.url));
  const trailing = "threadgroup_barrier(mem_flags::mem_threadgroup);  // sg_total is rewritten";
  assert(good.includes(trailing), "cumsum.metal changed: update this test");
  const bad = good.replace(trailing, "// (barrier removed)");
  const rows = 4, C = 2053;
  const rnd = random(9);
  const x = Float32Array.from({ length: rows * C }, () => rnd() * 2 - 1);
  const want: number[] = [];
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < C; c++) want.push(s += x[r * C + c]);
  }
  const run = (src: string) =>
    runKernel(sim, src, "cumsum_f32", [
      { index: 0, data: x },
      { index: 1, data: new Float32Array(rows * C).fill(NaN) },
      { index: 2, bytes: new Uint32Array([C]) },
    ], { mode: "threadgroups", grid: [rows, 1, 1], group: [256, 1, 1] });
  assertClose(f32((await run(good)).get(1)), want, 1e-3);
  const y = f32((await run(bad)).get(1));
  let wrong = 0;
  for (let i = 0; i < y.length; i++) if (!(Math.abs(y[i] - want[i]) < 1e-2)) wrong++;
  assert(wrong > 0, "the race went unnoticed");
});

Deno.test("sim safety: threads of a group at different barriers is an error", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void two_barriers(device float* y [[buffer(0)]], uint tid [[thread_index_in_threadgroup]]) {
  if (tid < 16) {
    threadgroup_barrier(mem_flags::mem_threadgroup);
  } else {
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  y[tid] = 1.0f;
}`);
  const e = await failure(runKernel(sim, src, "two_barriers", [{ index: 0, length: 256 }], {
    grid: [64, 1, 1],
    group: [64, 1, 1],
  }));
  assertEquals(e.status, "execution");
  assert(
    /^threads of threadgroup \(0,0,0\) in kernel 'two_barriers' wait at different barriers: 16 at two_barriers\.metal:6 .* 48 elsewhere, e\.g\. thread \(16,0,0\) at two_barriers\.metal:8/
      .test(e.message),
    e.message,
  );
  await assertDeviceStillWorks(sim);
});

// MLX's own layer_norm writes thread_x[i] for i < 0 in the threads past a
// row's end: on a GPU that silently writes other memory. The simulator
// reports such an index, into a thread's array or a threadgroup array, with
// the kernel's line and the thread.
Deno.test("sim safety: an index outside a thread or threadgroup array is an error naming it", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void pad(device float* o [[buffer(0)]], constant int& n [[buffer(1)]],
                uint lid [[thread_position_in_threadgroup]]) {
  float x[8] = {0};
  const int m = n - int(lid) * 8;
  for (int i = m; i < 8; i++) x[i] = 1.0f;   // i < 0 past the row's end
  float s = 0;
  for (int i = 0; i < 8; i++) s += x[i];
  o[lid] = s;
}
kernel void shared_tile(device float* o [[buffer(0)]], constant int& n [[buffer(1)]],
                        uint lid [[thread_position_in_threadgroup]]) {
  threadgroup float tile[32];
  tile[lid] = float(lid);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  o[lid] = tile[lid + uint(n)];
}`);
  // In bounds: n = 32 * 8 leaves every thread whole.
  const ok = await runKernel(sim, src, "pad", [{ index: 0, length: 32 * 4 }, {
    index: 1,
    data: new Int32Array([256]),
  }], { grid: [32, 1, 1], group: [32, 1, 1] });
  assert(new Float32Array(ok.get(0)!.buffer).every((v) => v === 0));
  const run = (fn: string, n: number) =>
    failure(runKernel(sim, src, fn, [{ index: 0, length: 32 * 4 }, {
      index: 1,
      data: new Int32Array([n]),
    }], { grid: [32, 1, 1], group: [32, 1, 1] }));
  let e = await run("pad", 240); // thread 31: m = 240 - 248 = -8
  assertEquals(e.status, "execution");
  assert(
    /^kernel 'pad' used index -8 of an array of type 'thread float\[8\]', outside it, at pad\.metal:8:\d+ in thread \(31,0,0\)/
      .test(e.message),
    e.message,
  );
  e = await run("shared_tile", 1);
  assert(
    /^kernel 'shared_tile' used index 32 of an array of type '(threadgroup )?float\[32\]', outside it, at shared_tile\.metal:\d+:\d+ in thread \(31,0,0\)/
      .test(e.message),
    e.message,
  );
  await assertDeviceStillWorks(sim);
});
