/**
 * What real hand-written kernels rely on, beyond the MSL spec: their own
 * one-letter macros (`#define H 4`) that must not reach the simulator's
 * generated code, and errors that still point at the kernel's own lines.
 * Each result is checked against a computation done here in TypeScript.
 */
import { BridgeError } from "../src/backend/bridge.ts";
import {
  assert,
  assertEquals,
  f32,
  i32,
  msl,
  openSim,
  random,
  runKernel,
  runOnce,
  toBfloat,
  toHalf,
  u32,
} from "./_sim_lib.ts";

// Per-head scaled row sums, the shape of an attention kernel's first step:
// H heads of N rows of K values, T threads per row. The macros are the
// names hand-written kernels use; d, g, c, t and `buffers` are the names
// generated glue code is most likely to use.
const HEADS = msl(`
#define H 4
#define T 4
#define N 8
#define K 16
#define F float
#define d 1
#define g 2
#define c 3
#define t 5
#define buffers 0
#define threadgroup_args 0
#define MB_SIM_EXPORT static
#define mb_kernel_rt 0
#define __mb_F int
#define \\
  SCALE(x) ((x) * 0.5f)

kernel void head_sums(device const F* in [[buffer(0)]],
                      device F* out [[buffer(1)]],
                      uint3 gid [[thread_position_in_grid]]) {
  // T threads per row (H * N rows); the first of each sums the row's K values.
  if (gid.y != 0 || gid.x % T != 0) return;
  F s = 0;
  for (uint k = 0; k < K; ++k) s += in[(gid.x / T) * K + k];
  out[gid.x / T] = SCALE(s);
}`);

Deno.test("sim: a kernel's own macros (H, T, N, K, d, t, buffers) do not reach our generated code", async () => {
  using sim = await openSim();
  const rows = 4 * 8, k = 16;
  const next = random(11);
  const input = Float32Array.from({ length: rows * k }, () => Math.round(next() * 64) / 8);
  const out = await runKernel(sim, HEADS, "head_sums", [
    { index: 0, data: input },
    { index: 1, length: rows * 4 },
  ], { grid: [rows * 4, 1, 1], group: [32, 1, 1] });
  const expected = Array.from({ length: rows }, (_, r) => {
    let s = 0;
    for (let i = 0; i < k; i++) s += input[r * k + i]; // eighths: float32 sums are exact
    return s * 0.5;
  });
  assertEquals(Array.from(f32(out.get(1))), expected);
});

Deno.test("sim: macros from a header the kernel includes do not reach our generated code either", async () => {
  using sim = await openSim();
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tiles.h`, "#pragma once\n#define T 4\n#  define d 2\n");
    const src = msl(`#include "tiles.h"
kernel void tiles(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = float(i * T + d);
}`);
    const out = await runKernel(sim, src, "tiles", [{ index: 0, length: 16 }], {
      grid: [4, 1, 1],
      group: [4, 1, 1],
    }, { include_dir: dir });
    assertEquals(Array.from(f32(out.get(0))), [2, 6, 10, 14]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sim: with a kernel's one-letter macros, an error points at the kernel's line, not our cache", async () => {
  using sim = await openSim();
  const src = msl(`#define H 4
#define T 4
kernel void bad(device float* out [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  out[i] = H * T * missing_name;
}`);
  const e = await sim.compile(src, "bad", { source_name: "bad.metal" }).then(
    () => undefined,
    (e) => e,
  );
  assert(e instanceof BridgeError, `expected a BridgeError, got ${e}`);
  assert(
    /bad\.metal:6:\d+: error: use of undeclared identifier 'missing_name'/.test(e.message),
    e.message,
  );
  assert(!/sim-test-cache|__mb_entry|\/tmp\/|build-/.test(e.message), e.message);
});

// Float to integer conversion: Apple GPUs saturate (NaN -> 0, negative ->
// 0 for unsigned, out of range -> the type's min or max), and kernels that
// quantize or compute indices rely on it; x86 would give 0x80000000 or wrap.
Deno.test("sim: float, half and bfloat to integer casts saturate as on the GPU", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void quantize(device const float* x [[buffer(0)]],
                     device int* s [[buffer(1)]],
                     device uint* u [[buffer(2)]],
                     device int* narrow [[buffer(3)]],
                     uint i [[thread_position_in_grid]]) {
  float v = x[i];
  s[i] = int(v);
  u[i] = (uint)v;
  narrow[4 * i + 0] = static_cast<uchar>(v);
  narrow[4 * i + 1] = short(v);
  narrow[4 * i + 2] = int(half(v));
  narrow[4 * i + 3] = (uint)bfloat(v);
}`);
  const xs = [NaN, -5.75, 3e9, -3e9, 1e20, -1e20, 300.5, 70000, Infinity, -Infinity, 42.9, -0.5];
  const n = xs.length;
  const out = await runKernel(sim, src, "quantize", [
    { index: 0, data: new Float32Array(xs) },
    { index: 1, length: n * 4 },
    { index: 2, length: n * 4 },
    { index: 3, length: n * 16 },
  ], { grid: [n, 1, 1], group: [n, 1, 1] });
  // trunc(-0.5) is -0: + 0 makes it the 0 an int holds
  const sat = (v: number, lo: number, hi: number) =>
    Number.isNaN(v) ? 0 : Math.min(hi, Math.max(lo, Math.trunc(v) + 0));
  const f = (v: number) => Math.fround(v);
  const I32: [number, number] = [-(2 ** 31), 2 ** 31 - 1], U32: [number, number] = [0, 2 ** 32 - 1];
  assertEquals(Array.from(i32(out.get(1))), xs.map((v) => sat(f(v), ...I32)));
  assertEquals(Array.from(u32(out.get(2))), xs.map((v) => sat(f(v), ...U32)));
  const narrow = Array.from(i32(out.get(3)));
  for (let k = 0; k < n; k++) {
    const v = f(xs[k]);
    assertEquals(narrow.slice(4 * k, 4 * k + 4), [
      sat(v, 0, 255),
      sat(v, -32768, 32767),
      sat(toHalf(v), ...I32), // half: 70000 and beyond round to infinity
      sat(toBfloat(v), ...U32) | 0, // stored in an int: the uint's bits
    ], `x = ${xs[k]}`);
  }
});

// The same through vector conversions: constructors, static_cast, C-style
// casts and templates (x86's packed conversions would give 0x80000000).
Deno.test("sim: vector float-to-integer conversions saturate component by component", async () => {
  using sim = await openSim();
  const src = msl(`
template <typename V, typename U> V to(U x) { return static_cast<V>(x); }
kernel void vq(device const float4* x [[buffer(0)]], device int4* s [[buffer(1)]],
               device uint4* u [[buffer(2)]], device int4* narrow [[buffer(3)]],
               uint i [[thread_position_in_grid]]) {
  float4 v = x[i];
  s[2 * i] = int4(v);
  s[2 * i + 1] = to<int4>(v);
  u[2 * i] = static_cast<uint4>(v);
  u[2 * i + 1] = (uint4)v;
  uchar4 c = uchar4(v);
  short4 h = short4(half4(v));
  narrow[2 * i] = int4(c);
  narrow[2 * i + 1] = int4(h);
}`);
  const xs = [NaN, -5.75, 3e9, -3e9, 1e20, -1e20, 300.5, 70000, Infinity, -Infinity, 42.9, -0.5];
  const n = xs.length / 4;
  const out = await runKernel(sim, src, "vq", [
    { index: 0, data: new Float32Array(xs) },
    { index: 1, length: n * 32 },
    { index: 2, length: n * 32 },
    { index: 3, length: n * 32 },
  ], { grid: [n, 1, 1], group: [n, 1, 1] });
  const sat = (v: number, lo: number, hi: number) =>
    Number.isNaN(v) ? 0 : Math.min(hi, Math.max(lo, Math.trunc(v) + 0));
  const f = (v: number) => Math.fround(v);
  const s = Array.from(i32(out.get(1))), u = Array.from(u32(out.get(2)));
  const narrow = Array.from(i32(out.get(3)));
  for (let k = 0; k < xs.length; k++) {
    const g = Math.floor(k / 4), c = k % 4, v = f(xs[k]);
    const at = (arr: number[], pair: number) => arr[(2 * g + pair) * 4 + c];
    const msg = `x = ${xs[k]}`;
    assertEquals([at(s, 0), at(s, 1)], [
      sat(v, -(2 ** 31), 2 ** 31 - 1),
      sat(v, -(2 ** 31), 2 ** 31 - 1),
    ], msg);
    assertEquals([at(u, 0), at(u, 1)], [sat(v, 0, 2 ** 32 - 1), sat(v, 0, 2 ** 32 - 1)], msg);
    assertEquals(
      [at(narrow, 0), at(narrow, 1)],
      [sat(v, 0, 255), sat(toHalf(v), -32768, 32767)],
      msg,
    );
  }
});

// A missing barrier that only some SIMD-group orders expose: SIMD group 0
// reads what SIMD group 3 wrote, so the result is right when group 3 ran
// first in that stretch and threadgroup memory's poison (NaN) otherwise.
// The same threadgroup, run again and again, must see both.
Deno.test("sim: repeated runs try different SIMD-group orders, so an order-dependent race shows", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void shift_rows(device const float* in [[buffer(0)]],
                       device float* out [[buffer(1)]],
                       uint lid [[thread_position_in_threadgroup]],
                       uint lane [[thread_index_in_simdgroup]]) {
  threadgroup float tile[128];
  // a collective: the threads run as SIMD groups (fibers), as on the GPU
  float v = in[lid] + simd_shuffle(in[lid], lane) * 0.0f;
  tile[lid] = v;
  // missing: threadgroup_barrier(mem_flags::mem_threadgroup);
  if (lid < 32) out[lid] = tile[lid + 96];
}`);
  using p = await sim.compile(src, "shift_rows", { source_name: "shift_rows.metal" });
  const input = Float32Array.from({ length: 128 }, (_, i) => i + 1);
  const expected = Array.from({ length: 32 }, (_, i) => i + 97);
  let right = 0, wrong = 0;
  for (let trial = 0; trial < 16; trial++) {
    const out = await runOnce(sim, p, [
      { index: 0, data: input },
      { index: 1, length: 32 * 4 },
    ], { grid: [128, 1, 1], group: [128, 1, 1] });
    const got = Array.from(f32(out.get(1)));
    if (got.every((v, i) => v === expected[i])) right++;
    else {
      assert(got.every(Number.isNaN), `a wrong run reads the poison: ${got}`);
      wrong++;
    }
  }
  assert(right > 0 && wrong > 0, `16 runs: ${right} right, ${wrong} wrong; expected both`);
});
