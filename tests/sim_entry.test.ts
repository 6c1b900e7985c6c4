/**
 * Kernel entry points in the simulator: every thread-position attribute in
 * its uint/uint2/uint3 forms, constant structs, function constants,
 * template kernels named by host_name, helpers from an included header, and
 * several kernels in one file; expected values computed here.
 */
import {
  assert,
  assertEquals,
  f32,
  failure,
  fixture,
  FIXTURES,
  halfBits,
  halfValue,
  msl,
  openSim,
  runKernel,
  runOnce,
  toHalf,
  u16,
  u32,
} from "./_sim_lib.ts";

Deno.test("sim entry: every thread-position attribute, partial edge groups", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void attrs(device uint* o [[buffer(0)]],
                  uint2 gid [[thread_position_in_grid]],
                  uint3 gid3 [[thread_position_in_grid]],
                  uint tid [[thread_index_in_threadgroup]],
                  ushort2 lid [[thread_position_in_threadgroup]],
                  uint2 tgpos [[threadgroup_position_in_grid]],
                  uint2 tpg [[threads_per_threadgroup]],
                  uint2 grid [[threads_per_grid]],
                  uint3 groups [[threadgroups_per_grid]],
                  uint2 dtpg [[dispatch_threads_per_threadgroup]],
                  uint lane [[thread_index_in_simdgroup]],
                  ushort sg [[simdgroup_index_in_threadgroup]],
                  uint tps [[threads_per_simdgroup]],
                  uint sgs [[simdgroups_per_threadgroup]],
                  uint dsgs [[dispatch_simdgroups_per_threadgroup]],
                  uint tew [[thread_execution_width]],
                  ushort ql [[thread_index_in_quadgroup]],
                  uint qi [[quadgroup_index_in_threadgroup]],
                  uint qs [[quadgroups_per_threadgroup]]) {
  device uint* r = o + (gid.y * grid.x + gid.x) * 16;
  r[0] = gid3.x; r[1] = gid3.y; r[2] = gid3.z; r[3] = tid;
  r[4] = lid.x | (uint(lid.y) << 8); r[5] = tgpos.x | (tgpos.y << 8);
  r[6] = tpg.x | (tpg.y << 8); r[7] = grid.x | (grid.y << 8);
  r[8] = groups.x | (groups.y << 8) | (groups.z << 16); r[9] = dtpg.x | (dtpg.y << 8);
  r[10] = lane | (uint(sg) << 8); r[11] = tps | (tew << 8);
  r[12] = sgs | (dsgs << 8); r[13] = uint(ql) | (qi << 8) | (qs << 16);
  r[14] = 77; r[15] = 99;
}`);
  const G = [40, 3], T = [24, 2]; // 2x2 groups; the edge ones partial in x and y
  const o = u32(
    (await runKernel(sim, src, "attrs", [{ index: 0, length: G[0] * G[1] * 16 * 4 }], {
      grid: [G[0], G[1], 1],
      group: [T[0], T[1], 1],
    })).get(0),
  );
  for (let y = 0; y < G[1]; y++) {
    for (let x = 0; x < G[0]; x++) {
      const gx = Math.floor(x / T[0]), gy = Math.floor(y / T[1]);
      const tx = Math.min(T[0], G[0] - gx * T[0]), ty = Math.min(T[1], G[1] - gy * T[1]);
      const lx = x - gx * T[0], ly = y - gy * T[1];
      const tid = ly * tx + lx, size = tx * ty;
      const want = [
        x,
        y,
        0,
        tid,
        lx | (ly << 8),
        gx | (gy << 8),
        tx | (ty << 8),
        G[0] | (G[1] << 8),
        2 | (2 << 8) | (1 << 16),
        T[0] | (T[1] << 8),
        (tid % 32) | (Math.floor(tid / 32) << 8),
        32 | (32 << 8),
        Math.ceil(size / 32) | (Math.ceil((T[0] * T[1]) / 32) << 8),
        (tid % 4) | (Math.floor(tid / 4) << 8) | (Math.ceil(size / 4) << 16),
        77,
        99,
      ];
      const i = y * G[0] + x;
      assertEquals(Array.from(o.subarray(16 * i, 16 * i + 16)), want, `thread (${x},${y})`);
    }
  }
});

Deno.test("sim entry: a constant struct (nested, float4 member) and a constant array", async () => {
  using sim = await openSim();
  const src = msl(`
struct Inner { float2 scale; int shift; };
struct Params { uint n; Inner in; float4 bias; };
kernel void params(device float4* y [[buffer(0)]], constant Params& p [[buffer(1)]],
                   constant float* lut [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  if (i >= p.n) return;
  y[i] = float4(p.in.scale, float(p.in.shift), lut[i % 4]) * float(i) + p.bias;
  if (i == 0) y[p.n] = float4(sizeof(Params), alignof(Params), offsetof(Params, bias), 0);
}`);
  const params = new ArrayBuffer(48), dv = new DataView(params);
  dv.setUint32(0, 5, true);
  dv.setFloat32(8, 1.5, true);
  dv.setFloat32(12, -2, true);
  dv.setInt32(16, 7, true);
  [0.25, 0.5, 0.75, 1].forEach((v, k) => dv.setFloat32(32 + 4 * k, v, true));
  const y = f32(
    (await runKernel(sim, src, "params", [
      { index: 0, length: 6 * 16 },
      { index: 1, bytes: new Uint8Array(params) },
      { index: 2, data: new Float32Array([10, 20, 30, 40]) },
    ], { grid: [8, 1, 1], group: [8, 1, 1] })).get(0),
  );
  for (let i = 0; i < 5; i++) {
    assertEquals(Array.from(y.subarray(4 * i, 4 * i + 4)), [
      1.5 * i + 0.25,
      -2 * i + 0.5,
      7 * i + 0.75,
      [10, 20, 30, 40][i % 4] * i + 1,
    ]);
  }
  assertEquals(Array.from(y.subarray(20, 24)), [48, 16, 32, 0]);
});

Deno.test("sim entry: function constants by name and by index, defined or not", async () => {
  using sim = await openSim();
  const src = msl(`
constant bool use_bias [[function_constant(0)]];
constant int scale [[function_constant(1)]];
constant float offset [[function_constant(2)]];
constant uint missing [[function_constant(3)]];
constant bool has_missing = is_function_constant_defined(missing);
kernel void fc(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  float v = float(i) * scale;
  if (use_bias) v += offset;
  y[i] = v + (has_missing ? 1000.0f + missing : 0.0f);
}`);
  const run = async (constants: string) =>
    Array.from(f32(
      (await runKernel(sim, src, "fc", [{ index: 0, length: 16 }], {
        grid: [4, 1, 1],
        group: [4, 1, 1],
      }, { function_constants: constants })).get(0),
    ));
  assertEquals(await run("use_bias=true, 1=3, offset=0.25"), [0.25, 3.25, 6.25, 9.25]);
  assertEquals(await run("0=false,scale=2,3=5"), [1005, 1007, 1009, 1011]);
  const e = await failure(
    sim.compile(src, "fc", { function_constants: "scale=2);system(0" }),
  );
  assertEquals(e.status, "compile");
  // Refused before the simulator by the type check (metal_function_constants.test.ts
  // reaches the simulator's own literal check through a type not known there).
  assert(/not a literal|is not a number/.test(e.message), e.message);
});

Deno.test("sim entry: template kernels by host_name, helpers from a header, two kernels in a file", async () => {
  using sim = await openSim();
  const src = fixture("templated.metal");
  const opts = { source_name: "templated.metal", include_dir: FIXTURES };
  const x = Float32Array.from({ length: 8 }, (_, i) => i - 3);
  const y0 = Float32Array.from({ length: 8 }, (_, i) => 0.5 * i);
  const spec = { grid: [8, 1, 1], group: [8, 1, 1] } as const;
  const a = new Float32Array([1.5]);
  using pf = await sim.compile(src, "axpy_float", opts);
  const yf = f32(
    (await runOnce(
      sim,
      pf,
      [{ index: 0, data: x }, { index: 1, data: y0 }, { index: 2, bytes: a }],
      spec,
    ))
      .get(1),
  );
  assertEquals(Array.from(yf), Array.from(x, (v, i) => Math.fround(1.5 * v + y0[i])));
  using ph = await sim.compile(src, "axpy_half", opts);
  const xh = Uint16Array.from(x, (v) => halfBits(v)), yh = Uint16Array.from(y0, (v) => halfBits(v));
  const rh = u16(
    (await runOnce(sim, ph, [{ index: 0, data: xh }, { index: 1, data: yh }, {
      index: 2,
      bytes: a,
    }], spec))
      .get(1),
  );
  assertEquals(Array.from(rh, halfValue), Array.from(x, (v, i) => toHalf(toHalf(1.5 * v) + y0[i])));
  using pt = await sim.compile(src, "twice", opts);
  const rt = f32((await runOnce(sim, pt, [{ index: 0, data: y0 }], spec)).get(0));
  assertEquals(Array.from(rt), Array.from(y0, (v) => 2 * v + 1));
  const e = await failure(sim.compile(src, "axpy", opts));
  assertEquals(
    e.message,
    "no kernel function 'axpy' in templated.metal (kernels in the file: axpy_float, axpy_half, twice)",
  );
});

Deno.test("sim entry: parameters without [[buffer(n)]] take the first free index, in order", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void implicit(const device float* a, device float* out, constant float& k [[buffer(0)]],
                     threadgroup float* scratch, uint i [[thread_position_in_grid]]) {
  scratch[i] = a[i] * k;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[i] = scratch[3 - i];
}`);
  const out = await runKernel(sim, src, "implicit", [
    { index: 0, bytes: new Float32Array([10]) },
    { index: 1, data: new Float32Array([1, 2, 3, 4]) },
    { index: 2, length: 16 },
  ], { grid: [4, 1, 1], group: [4, 1, 1], threadgroupMemory: [{ index: 0, length: 16 }] });
  assertEquals(Array.from(f32(out.get(2))), [40, 30, 20, 10]);
});
