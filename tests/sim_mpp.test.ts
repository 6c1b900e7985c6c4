/**
 * Metal Performance Primitives in the simulator: matmul2d on one SIMD group
 * with cooperative tensors, the part MLX's NAX kernels use. Our kernels,
 * written in MLX's style (16x16 fragments loaded by the lane layout MLX's
 * BaseNAXFrag::get_coord encodes, copied into the cooperative tensors with
 * ct[i]), are checked against products computed here; what is not simulated
 * is refused in one line.
 */
import {
  assert,
  assertDeviceStillWorks,
  assertEquals,
  bfloatBits,
  bfloatValue,
  f32,
  failure,
  halfBits,
  halfValue,
  openSim,
  random,
  runKernel,
  u16,
} from "./_sim_lib.ts";

const INCLUDE = `#include <metal_stdlib>
#include <MetalPerformancePrimitives/MetalPerformancePrimitives.h>
using namespace metal;
`;

/** (row, col) of lane l's element i in a 16x16 fragment (MLX's get_coord). */
function fragPos(l: number, i: number): [number, number] {
  const q = l >> 2;
  return [((q & 4) | ((l >> 1) & 3)) + (i >> 2) * 8, ((q & 2) | (l & 1)) * 4 + (i & 3)];
}

// A fragment as MLX's NAX kernels hold it: 8 elements a lane, loaded and
// stored by the lane layout; mma() goes through matmul2d(16, 32, 16).
const FRAG = `
struct Frag {
  static short2 coord(ushort lane) { // (column, row) of the lane's element 0
    const short q = lane >> 2;
    return short2(((q & 2) | (lane & 1)) * 4, (q & 4) | ((lane >> 1) & 3));
  }
  template <typename T, typename P>
  static void load(thread vec<T, 8>& dst, P src, int ld, ushort lane) {
    const short2 c = coord(lane);
    for (short r = 0; r < 2; r++)
      for (short j = 0; j < 4; j++) dst[r * 4 + j] = T(src[(c.y + 8 * r) * ld + c.x + j]);
  }
  template <typename T, typename P>
  static void store(const thread vec<T, 8>& v, P dst, int ld, ushort lane) {
    const short2 c = coord(lane);
    for (short r = 0; r < 2; r++)
      for (short j = 0; j < 4; j++) dst[(c.y + 8 * r) * ld + c.x + j] = v[r * 4 + j];
  }
};

template <typename TA, typename TB, typename TC, bool TL, bool TR, bool ACC>
void mma(thread vec<TC, 8>& c0, thread vec<TC, 8>& c1, const thread vec<TA, 8>& a,
         const thread vec<TB, 8>& b0, const thread vec<TB, 8>& b1) {
  using md = mpp::tensor_ops::matmul2d_descriptor;
  constexpr auto desc = md(16, 32, 16, TL, TR, true,
                           ACC ? md::mode::multiply_accumulate : md::mode::multiply);
  mpp::tensor_ops::matmul2d<desc, metal::execution_simdgroup> op;
  auto ct_a = op.template get_left_input_cooperative_tensor<TA, TB, TC>();
  auto ct_b = op.template get_right_input_cooperative_tensor<TA, TB, TC>();
  auto ct_c = op.template get_destination_cooperative_tensor<
      metal::remove_addrspace_t<decltype(ct_a)>, metal::remove_addrspace_t<decltype(ct_b)>, TC>();
  for (short i = 0; i < 8; i++) {
    ct_a[i] = a[i];
    ct_b[i] = b0[i];
    ct_b[8 + i] = b1[i];
    if (ACC) { // multiply must not read the destination: left unset (NaN) there
      ct_c[i] = c0[i];
      ct_c[8 + i] = c1[i];
    }
  }
  op.run(ct_a, ct_b, ct_c);
  for (short i = 0; i < 8; i++) {
    c0[i] = ct_c[i];
    c1[i] = ct_c[8 + i];
  }
}
`;

type Elem = "float" | "half" | "bfloat";
interface Case {
  a: Elem;
  b: Elem;
  c: Elem;
  tl: boolean;
  tr: boolean;
  acc: boolean;
}

/** SIMD group g computes C[g] (16x32) = [C[g] +] sum over s of op(A[g][s]) op(B[g][s]). */
function gemmSource(k: Case): string {
  return `${INCLUDE}${FRAG}
using TA = ${k.a};
using TB = ${k.b};
using TC = ${k.c};
constant constexpr bool TL = ${k.tl}, TR = ${k.tr}, ACC = ${k.acc};
kernel void gemm(device const TA* A [[buffer(0)]], device const TB* B [[buffer(1)]],
                 device TC* C [[buffer(2)]], constant uint& steps [[buffer(3)]],
                 ushort lane [[thread_index_in_simdgroup]],
                 ushort sg [[simdgroup_index_in_threadgroup]]) {
  A += sg * steps * 256;
  B += sg * steps * 512;
  C += sg * 512;
  vec<TC, 8> c0 = vec<TC, 8>(TC(0)), c1 = c0;
  if (ACC) {
    Frag::load(c0, C, 32, lane);
    Frag::load(c1, C + 16, 32, lane);
  }
  for (uint s = 0; s < steps; s++) {
    vec<TA, 8> a;
    vec<TB, 8> b0, b1;
    Frag::load(a, A + s * 256, 16, lane); // M x K, or K x M stored
    if (TR) { // N x K stored: rows 0..15, then 16..31
      Frag::load(b0, B + s * 512, 16, lane);
      Frag::load(b1, B + s * 512 + 256, 16, lane);
    } else { // K x N: columns 0..15, then 16..31
      Frag::load(b0, B + s * 512, 32, lane);
      Frag::load(b1, B + s * 512 + 16, 32, lane);
    }
    mma<TA, TB, TC, TL, TR, ACC>(c0, c1, a, b0, b1);
  }
  Frag::store(c0, C, 32, lane);
  Frag::store(c1, C + 16, 32, lane);
}`;
}

/** Values exactly representable in `t`, and their bytes. */
function values(t: Elem, n: number, rnd: () => number): { v: number[]; bytes: ArrayBufferView } {
  const raw = Array.from({ length: n }, () => rnd() * 2 - 1);
  if (t === "float") {
    const a = Float32Array.from(raw);
    return { v: [...a], bytes: a };
  }
  const bits = Uint16Array.from(raw, t === "half" ? halfBits : bfloatBits);
  return { v: [...bits].map(t === "half" ? halfValue : bfloatValue), bytes: bits };
}

function toValues(t: Elem, bytes: Uint8Array | undefined): number[] {
  if (t === "float") return [...f32(bytes)];
  return [...u16(bytes)].map(t === "half" ? halfValue : bfloatValue);
}

async function checkGemm(k: Case, steps: number, seed: number) {
  using sim = await openSim();
  const groups = 2, rnd = random(seed);
  const A = values(k.a, groups * steps * 256, rnd);
  const B = values(k.b, groups * steps * 512, rnd);
  const C = values(k.c, groups * 512, rnd); // ignored by multiply
  const out = await runKernel(sim, gemmSource(k), "gemm", [
    { index: 0, data: A.bytes },
    { index: 1, data: B.bytes },
    { index: 2, data: C.bytes },
    { index: 3, bytes: new Uint32Array([steps]) },
  ], { grid: [32 * groups, 1, 1], group: [32 * groups, 1, 1] });
  const got = toValues(k.c, out.get(2));
  const label = JSON.stringify(k);
  for (let g = 0; g < groups; g++) {
    for (let m = 0; m < 16; m++) {
      for (let n = 0; n < 32; n++) {
        let want = k.acc ? C.v[g * 512 + m * 32 + n] : 0, mag = Math.abs(want);
        for (let s = 0; s < steps; s++) {
          const a0 = (g * steps + s) * 256, b0 = (g * steps + s) * 512;
          for (let kk = 0; kk < 16; kk++) {
            const a = A.v[a0 + (k.tl ? kk * 16 + m : m * 16 + kk)];
            const b = B.v[b0 + (k.tr ? n * 16 + kk : kk * 32 + n)];
            want += a * b;
            mag += Math.abs(a * b);
          }
        }
        // float32 accumulation of 16 * steps terms, rounded to TC after each step
        const terms = 16 * steps + 1;
        const round = k.c === "half" ? 2 ** -11 : k.c === "bfloat" ? 2 ** -8 : 2 ** -24;
        const tol = (terms * 2 ** -24 + steps * round) * mag + 1e-30;
        const v = got[g * 512 + m * 32 + n];
        assert(
          Math.abs(v - want) <= tol,
          `${label}: group ${g} C[${m}][${n}] = ${v}, expected ${want} (tolerance ${tol})`,
        );
      }
    }
  }
}

Deno.test("mpp: matmul2d 16x32x16, float, multiply_accumulate over K steps, two SIMD groups", async () => {
  await checkGemm({ a: "float", b: "float", c: "float", tl: false, tr: false, acc: true }, 3, 1);
});

Deno.test("mpp: matmul2d, half into float: multiply (destination not read), each transpose", async () => {
  for (const [tl, tr] of [[false, false], [true, false], [false, true], [true, true]]) {
    await checkGemm({ a: "half", b: "half", c: "float", tl, tr, acc: false }, 1, 2);
  }
});

Deno.test("mpp: matmul2d, half and bfloat accumulate: Q·Kᵀ as MLX's attention, half and bfloat destinations, mixed inputs", async () => {
  await checkGemm({ a: "half", b: "half", c: "float", tl: false, tr: true, acc: true }, 2, 3);
  await checkGemm({ a: "half", b: "half", c: "half", tl: false, tr: false, acc: true }, 2, 4);
  await checkGemm({ a: "bfloat", b: "bfloat", c: "float", tl: true, tr: true, acc: true }, 2, 5);
  await checkGemm({ a: "bfloat", b: "half", c: "bfloat", tl: true, tr: false, acc: true }, 1, 6);
  await checkGemm({ a: "float", b: "half", c: "float", tl: false, tr: true, acc: true }, 1, 7);
});

Deno.test("mpp: a cooperative tensor's elements sit where MLX's get_coord says, lane by lane", async () => {
  using sim = await openSim();
  // Left = identity, right(k, n) = 100k + n, destination read straight from
  // ct_c[i]: lane l's element 8f + i must be (row, 16f + col) of fragPos.
  const src = `${INCLUDE}
kernel void layout(device const float* B [[buffer(0)]], device float* out [[buffer(1)]],
                   ushort lane [[thread_index_in_simdgroup]]) {
  constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(16, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroup> op;
  auto a = op.get_left_input_cooperative_tensor<float, float, float>();
  auto b = op.get_right_input_cooperative_tensor<float, float, float>();
  auto c = op.get_destination_cooperative_tensor<decltype(a), decltype(b), float>();
  const short q = lane >> 2, row = (q & 4) | ((lane >> 1) & 3), col = ((q & 2) | (lane & 1)) * 4;
  for (short i = 0; i < 8; i++) {
    const short r = row + (i >> 2) * 8, k = col + (i & 3);
    a[i] = r == k ? 1.0f : 0.0f;
    b[i] = B[r * 32 + k];
    b[8 + i] = B[r * 32 + k + 16];
  }
  op.run(a, b, c);
  for (short i = 0; i < 16; i++) out[lane * 16 + i] = c[i];
  if (lane == 0) {
    out[512] = a.get_capacity();
    out[513] = b.get_capacity();
    out[514] = c.get_capacity();
    out[515] = c.is_valid_element(15) && !c.is_valid_element(16);
  }
}`;
  const B = Float32Array.from({ length: 512 }, (_, i) => 100 * Math.floor(i / 32) + (i % 32));
  const out = f32(
    (await runKernel(sim, src, "layout", [{ index: 0, data: B }, { index: 1, length: 516 * 4 }], {
      grid: [32, 1, 1],
      group: [32, 1, 1],
    })).get(1),
  );
  for (let l = 0; l < 32; l++) {
    for (let e = 0; e < 16; e++) {
      const [r, c] = fragPos(l, e % 8);
      assertEquals(out[l * 16 + e], 100 * r + c + 16 * (e >> 3), `lane ${l} element ${e}`);
    }
  }
  assertEquals([...out.subarray(512)], [8, 16, 16, 1]);
});

Deno.test("mpp: a kernel's own macros defined before the include do not reach the shim's names", async () => {
  using sim = await openSim();
  // Common macro names (sizes, letters, words) a kernel may define first.
  const macros = ["M 64", "N 64", "K 32", "A a_", "B b_", "C c_", "D d_", "E e_", "T t_", "W 8"]
    .concat(["L l_", "R r_", "LEFT 0", "RIGHT 1", "pos p_", "same s_", "clean c2_", "info i_"])
    .map((m) => `#define ${m}\n`).join("");
  const src = `${macros}${
    gemmSource({ a: "half", b: "half", c: "float", tl: false, tr: true, acc: true })
  }`;
  using p = await sim.compile(src, "gemm", { source_name: "macros.metal" });
  assert(p);
});

const MM_BODY = `
  constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(16, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroup> op;
  auto a = op.get_left_input_cooperative_tensor<float, float, float>();
  auto b = op.get_right_input_cooperative_tensor<float, float, float>();
  auto c = op.get_destination_cooperative_tensor<decltype(a), decltype(b), float>();
  for (short i = 0; i < 8; i++) a[i] = 1.0f;
  for (short i = 0; i < 16; i++) b[i] = 1.0f;`;

Deno.test("mpp: every lane takes part — a lane that does not (partial SIMD group) poisons the result", async () => {
  using sim = await openSim();
  const src = `${INCLUDE}
kernel void partial(device float* out [[buffer(0)]], ushort lane [[thread_index_in_simdgroup]]) {${MM_BODY}
  op.run(a, b, c);
  for (short i = 0; i < 16; i++) out[lane * 16 + i] = c[i];
}`;
  // 16 threads: lanes 16..31 hold rows 4..7 and 12..15 of both inputs
  const out = f32(
    (await runKernel(sim, src, "partial", [{ index: 0, length: 256 * 4 }], {
      grid: [16, 1, 1],
      group: [16, 1, 1],
    })).get(0),
  );
  assert(out.every(Number.isNaN), `expected NaN everywhere, got ${out.slice(0, 4)}`);
});

Deno.test("mpp: an index past a cooperative tensor's elements faults or does not compile", async () => {
  using sim = await openSim();
  // MLX's NAXFrag::mma with two A fragments writes ct_a[8 + i]: the left
  // input of 16x32x16 holds 8 elements a lane, so that must not pass silently.
  const runtime = `${INCLUDE}
kernel void past(device float* out [[buffer(0)]], constant int& n [[buffer(1)]],
                 ushort lane [[thread_index_in_simdgroup]]) {${MM_BODY}
  for (short i = 0; i < n; i++) a[i] = 2.0f;
  op.run(a, b, c);
  out[lane] = c[0];
}`;
  const e = await failure(runKernel(sim, runtime, "past", [
    { index: 0, length: 32 * 4 },
    { index: 1, bytes: new Int32Array([16]) },
  ], { grid: [32, 1, 1], group: [32, 1, 1] }));
  assertEquals(e.status, "execution");
  assert(e.message.startsWith("kernel 'past' faulted: SIGILL"), e.message);
  await assertDeviceStillWorks(sim);

  // A constant index is refused when compiled (half: the message must
  // survive the compile step's rewrites of half expressions too).
  const literal = `${INCLUDE}
kernel void lit(device half* out [[buffer(0)]]) {
  constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(16, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroup> op;
  auto a = op.get_left_input_cooperative_tensor<half, half, half>();
  a[8] = half(2);
  out[0] = a[0];
}`;
  const c = await failure(sim.compile(literal, "lit", { source_name: "lit.metal" }));
  assertEquals(c.status, "compile");
  assert(
    /lit\.metal:9:\d+: error: cooperative tensor index out of range/.test(c.message),
    c.message,
  );
});

Deno.test("mpp: a kernel that silences the refusal still does not run a shape the simulator does not know", async () => {
  using sim = await openSim();
  const src = `${INCLUDE}
#pragma clang diagnostic ignored "-Wuser-defined-warnings"
kernel void hush(device float* out [[buffer(0)]], ushort lane [[thread_index_in_simdgroup]]) {
  constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(32, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroup> op;
  auto a = op.get_left_input_cooperative_tensor<float, float, float>();
  out[lane] = a.get_capacity();
}`;
  const e = await failure(runKernel(sim, src, "hush", [{ index: 0, length: 128 }], {
    grid: [32, 1, 1],
    group: [32, 1, 1],
  }));
  assert(e.message.startsWith("kernel 'hush' faulted: SIGILL"), e.message);
});

Deno.test("mpp: lanes of two different matmul2d types meeting at one call site fault", async () => {
  using sim = await openSim();
  // The same line of a template, instantiated twice: the lanes' collectives
  // meet (one call site) but their operands differ in type.
  const src = `${INCLUDE}
template <typename T> float step() {
  constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(16, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroup> op;
  auto a = op.get_left_input_cooperative_tensor<T, T, float>();
  auto b = op.get_right_input_cooperative_tensor<T, T, float>();
  auto c = op.get_destination_cooperative_tensor<decltype(a), decltype(b), float>();
  for (short i = 0; i < 8; i++) a[i] = T(1);
  for (short i = 0; i < 16; i++) b[i] = T(1);
  op.run(a, b, c);
  return c[0];
}
kernel void mixed(device float* out [[buffer(0)]], ushort lane [[thread_index_in_simdgroup]]) {
  out[lane] = lane < 16 ? step<float>() : step<half>();
}`;
  const e = await failure(runKernel(sim, src, "mixed", [{ index: 0, length: 128 }], {
    grid: [32, 1, 1],
    group: [32, 1, 1],
  }));
  assert(e.message.startsWith("kernel 'mixed' faulted: SIGILL"), e.message);
});

Deno.test("mpp: what is not simulated is refused in one line naming the feature", async () => {
  using sim = await openSim();
  const cases: [string, string, RegExp][] = [
    [
      "scope",
      `constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(16, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroups<4>> op;
  auto a = op.get_left_input_cooperative_tensor<half, half, float>();`,
      /error: matmul2d: only metal::execution_simdgroup is simulated .* — fix: /,
    ],
    [
      "shape",
      `constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(32, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroup> op;
  auto a = op.get_left_input_cooperative_tensor<half, half, float>();`,
      /error: matmul2d: the simulator knows the cooperative-tensor lane layout only of matmul2d_descriptor\(16, 32, 16, \.\.\.\) .* — fix: /,
    ],
    [
      "tensor",
      `tensor<device float, dextents<int, 2>, tensor_inline> t(o, dextents<int, 2>(16, 16));`,
      /error: '.*' is unavailable: metal::(tensor|dextents) \(Metal 4 tensors\) is not simulated — fix: /,
    ],
    [
      "int8",
      `constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(16, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroup> op;
  auto a = op.get_left_input_cooperative_tensor<int8_t, int8_t, int>();`,
      /error: matmul2d with int8_t operands is not simulated — fix: /,
    ],
    [
      "types",
      `constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(16, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroup> op;
  auto a = op.get_left_input_cooperative_tensor<float, float, half>();`,
      /error: matmul2d: this \(left, right, destination\) element type combination is not one Metal supports — fix: /,
    ],
    [
      "load",
      `constexpr auto desc = mpp::tensor_ops::matmul2d_descriptor(16, 32, 16);
  mpp::tensor_ops::matmul2d<desc, execution_simdgroup> op;
  auto a = op.get_left_input_cooperative_tensor<float, float, float>();
  a.load(o);`,
      /error: '.*' is unavailable: cooperative_tensor::load \(from a Metal 4 tensor\) is not simulated — fix: /,
    ],
  ];
  for (const [name, body, want] of cases) {
    const e = await failure(sim.compile(
      `${INCLUDE}kernel void k(device float* o [[buffer(0)]]) {\n  ${body}\n}`,
      "k",
      { source_name: `${name}.metal` },
    ));
    assertEquals(e.status, "compile", name);
    // one line, at the kernel's own use
    const line = e.message.split("\n").find((l) => l.includes(" error: "));
    assert(line && want.test(line), `${name}: ${e.message}`);
    assert(line.startsWith(`${name}.metal:`), line);
  }
});
