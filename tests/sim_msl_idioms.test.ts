/**
 * The MSL idioms of real kernels (MLX's style) in the simulator's shim:
 * METAL_FUNC and the macros Apple's compiler predefines, the __metal_*
 * compiler builtins, the rest of metal_type_traits, coherent(system), and a
 * clear refusal of what is not simulated. Kernels written here in that
 * style; each result checked against a value computed in the test.
 */
import {
  assert,
  assertClose,
  assertEquals,
  f32,
  failure,
  i32,
  msl,
  openSim,
  runKernel,
  u32,
} from "./_sim_lib.ts";

const WARP = { grid: [32, 1, 1], group: [32, 1, 1] } as const;

Deno.test("sim idioms: METAL_FUNC, __METAL_VERSION__ and the other predefined macros", async () => {
  using sim = await openSim();
  const src = msl(`
METAL_FUNC int twice(int x) { return 2 * x; }
struct Acc { METAL_FUNC int get() const thread { return 7; } };
kernel void macros(device int* o [[buffer(0)]], uint i [[thread_position_in_grid]]) {
#if defined(__METAL_MACOS__) && defined(__METAL__) && defined(__HAVE_BFLOAT__)
  o[0] = __METAL_VERSION__;
#else
  o[0] = -1;
#endif
  o[1] = twice(21) + Acc().get();
  o[2] = __METAL_FAST_MATH__ ? 1 : 0;
  o[3] = __METAL_PRECISE_MATH__ ? 1 : 0;
}`);
  const v31 = i32(
    (await runKernel(sim, src, "macros", [{ index: 0, length: 16 }], {
      grid: [1, 1, 1],
      group: [1, 1, 1],
    })).get(0),
  );
  assertEquals([...v31], [310, 49, 1, 0]);
  // the version follows the language version asked for
  const v30 = i32(
    (await runKernel(sim, src, "macros", [{ index: 0, length: 16 }], {
      grid: [1, 1, 1],
      group: [1, 1, 1],
    }, { language_version: "3.0" })).get(0),
  );
  assertEquals(v30[0], 300);
});

Deno.test("sim idioms: the __metal_* math builtins compute what metal:: does", async () => {
  using sim = await openSim();
  // As MLX's bf16_math.h calls them: float arguments, a trailing fast-math flag.
  const src = msl(`
kernel void builtins(device const float* x [[buffer(0)]], device float* o [[buffer(1)]],
                     uint i [[thread_position_in_grid]]) {
  float a = x[i], b = x[i + 32];
  device float* r = o + 12 * i;
  r[0] = __metal_exp(a, __METAL_MAYBE_FAST_MATH__);
  r[1] = __metal_fabs(a, __METAL_FAST_MATH__);
  r[2] = __metal_fmax(a, b, __METAL_PRECISE_MATH__);
  r[3] = __metal_fmin3(a, b, 0.5f, __METAL_MAYBE_FAST_MATH__);
  r[4] = __metal_fmedian3(a, b, 0.5f, __METAL_MAYBE_FAST_MATH__);
  r[5] = __metal_divide(a, b, __METAL_MAYBE_FAST_MATH__);
  r[6] = __metal_fma(a, b, 1.0f);
  r[7] = __metal_floor(a, __METAL_MAYBE_FAST_MATH__);
  r[8] = __metal_ldexp(a, 3, __METAL_MAYBE_FAST_MATH__);
  int e;
  r[9] = __metal_frexp(a, &e);
  r[10] = float(e);
  r[11] = __metal_tanh(a, __METAL_MAYBE_FAST_MATH__);
}`);
  const n = 32;
  const x = Float32Array.from({ length: 2 * n }, (_, i) => i < n ? 0.37 * i - 5.3 : 1.25 + 0.5 * i);
  const out = f32(
    (await runKernel(sim, src, "builtins", [{ index: 0, data: x }, {
      index: 1,
      length: 12 * n * 4,
    }], WARP))
      .get(1),
  );
  const f = Math.fround;
  for (let i = 0; i < n; i++) {
    const a = x[i], b = x[i + n];
    const [m, ex] = frexp(a);
    const exact = [
      Math.abs(a),
      Math.max(a, b),
      Math.min(a, b, 0.5),
      [a, b, 0.5].sort((p, q) => p - q)[1],
      f(a / b),
      f(a * b + 1), // products of these values are exact in float
      Math.floor(a),
      f(a * 8),
      m,
      ex,
    ];
    assertEquals([...out.subarray(12 * i + 1, 12 * i + 11)], exact, `thread ${i}`);
    assertClose([out[12 * i]], [Math.exp(a)], 2e-6 * Math.exp(a) + 1e-30);
    assertClose([out[12 * i + 11]], [Math.tanh(a)], 1e-6);
  }
});

function frexp(v: number): [number, number] {
  if (v === 0) return [0, 0];
  const e = Math.floor(Math.log2(Math.abs(v))) + 1;
  return [v / 2 ** e, e];
}

Deno.test("sim idioms: the __metal_simd_* builtins, lane index and width", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void simd(device const float* x [[buffer(0)]], device uint* o [[buffer(1)]],
                 uint i [[thread_position_in_grid]]) {
  float v = x[i];
  device uint* r = o + 6 * i;
  r[0] = __metal_get_thread_index_in_simdgroup(ushort());
  r[1] = __metal_get_simdgroup_size(uint());
  r[2] = as_type<uint>(__metal_simd_sum(v));
  r[3] = as_type<uint>(__metal_simd_prefix_exclusive_sum(v));
  r[4] = as_type<uint>(__metal_simd_shuffle_xor(v, ushort(5)));
  r[5] = as_type<uint>(__metal_simd_xor(v)); // on floats: xor of the bit patterns
}`);
  const n = 32;
  // small integers: every order of summation gives the same float
  const x = Float32Array.from({ length: n }, (_, i) => (i * 7) % 11 - 3);
  const o = u32(
    (await runKernel(
      sim,
      src,
      "simd",
      [{ index: 0, data: x }, { index: 1, length: 6 * n * 4 }],
      WARP,
    ))
      .get(1),
  );
  const bits = new Uint32Array(x.buffer);
  const asBits = (v: number) => new Uint32Array(Float32Array.of(v).buffer)[0];
  const total = x.reduce((s, v) => s + v, 0);
  const xorAll = bits.reduce((s, b) => (s ^ b) >>> 0, 0);
  let prefix = 0;
  for (let i = 0; i < n; i++) {
    assertEquals(
      [...o.subarray(6 * i, 6 * i + 6)],
      [i, 32, asBits(total), asBits(prefix), bits[i ^ 5], xorAll],
      `lane ${i}`,
    );
    prefix += x[i];
  }
});

Deno.test("sim idioms: metal_type_traits as real code uses them", async () => {
  using sim = await openSim();
  // MLX style: dispatch on traits with enable_if_t / bool_constant, a trait
  // of one's own built from disjunction, uniform<T> from make_uniform.
  const src = msl(`
template <typename T>
struct is_small : metal::disjunction<metal::is_same<T, half>, metal::is_same<T, short>> {};
static_assert(metal::is_convertible_v<int, float>, "int converts to float");
static_assert(!metal::is_convertible_v<device float*, int>, "a pointer is no int");
static_assert(metal::_disjunction<metal::false_type, metal::bool_constant<true>>::value, "");
static_assert(!metal::conjunction_v<metal::true_type, metal::false_type>, "");
static_assert(metal::is_same_v<metal::remove_addrspace_t<device float>, float>, "");
static_assert(metal::is_same_v<metal::remove_addrspace_t<metal::remove_cvref_t<const thread int&>>, int>, "");
static_assert(!metal::is_same_v<device float, float>, "the address space is part of the type");
static_assert(!metal::is_same_v<device float*, threadgroup float*>, "");
static_assert(metal::is_pointer_v<device int*> && !metal::is_pointer_v<int>, "");

template <typename T, metal::enable_if_t<is_small<T>::value, bool> = true>
METAL_FUNC int kind(T) { return 1; }
template <typename T, metal::enable_if_t<!is_small<T>::value, bool> = true>
METAL_FUNC int kind(T) { return 2; }
template <typename T> METAL_FUNC int signedness() {
  return metal::bool_constant<metal::is_signed_v<T>>::value ? -1 : 1;
}

kernel void traits(device const float* x [[buffer(0)]], device float* o [[buffer(1)]],
                   uint i [[thread_position_in_grid]]) {
  const metal::uniform<float> scale = metal::make_uniform(x[0]);
  o[4 * i] = scale * x[i];
  o[4 * i + 1] = kind(half(1)) * 10 + kind(1.0f);
  o[4 * i + 2] = signedness<int>() * 10 + signedness<uint>();
  o[4 * i + 3] = metal::is_convertible<float, bfloat>::value ? 1 : 0;
}`);
  const n = 32;
  const x = Float32Array.from({ length: n }, (_, i) => 1.5 + i);
  const o = f32(
    (await runKernel(
      sim,
      src,
      "traits",
      [{ index: 0, data: x }, { index: 1, length: 4 * n * 4 }],
      WARP,
    ))
      .get(1),
  );
  for (let i = 0; i < n; i++) {
    assertEquals(
      [...o.subarray(4 * i, 4 * i + 4)],
      [Math.fround(x[0] * x[i]), 12, -9, 1],
      `thread ${i}`,
    );
  }
});

Deno.test("sim idioms: coherent(system) device memory is accepted and works", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void coherent_copy(volatile coherent(system) device uint* a [[buffer(0)]],
                          device uint* o [[buffer(1)]], uint i [[thread_position_in_grid]]) {
  a[i] = a[i] * 3 + 1;
  o[i] = a[i];
}`);
  const a = Uint32Array.from({ length: 32 }, (_, i) => i * i);
  const out = await runKernel(sim, src, "coherent_copy", [
    { index: 0, data: a },
    { index: 1, length: 32 * 4 },
  ], WARP);
  const want = [...a].map((v) => v * 3 + 1);
  assertEquals([...u32(out.get(0))], want);
  assertEquals([...u32(out.get(1))], want);
});

Deno.test("sim idioms: what is not simulated is refused in one clear line", async () => {
  using sim = await openSim();
  // Metal Performance Primitives beyond matmul2d on cooperative tensors
  // (tests/sim_mpp.test.ts): named, not "file not found"
  const mpp = await failure(sim.compile(
    `#include <metal_stdlib>
#include <MetalPerformancePrimitives/MetalPerformancePrimitives.h>
kernel void mm(device float* o [[buffer(0)]]) { metal::tensor<device float> t(o); }`,
    "mm",
    { source_name: "mm.metal" },
  ));
  assertEquals(mpp.status, "compile");
  assert(
    /mm\.metal:3:\d+: error: .* is unavailable: metal::tensor \(Metal 4 tensors\) is not simulated — fix: /
      .test(mpp.message),
    mpp.message,
  );
});

Deno.test("sim idioms: a threadgroup variable's initializer compiles, as with Metal, and is not relied on", async () => {
  using sim = await openSim();
  // MLX's layer_norm style: declared with `= {0}`, then zeroed by hand
  // before use, so the result never depends on the initializer.
  const src = msl(
    `kernel void by_hand(device float* o [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {
  threadgroup float s[4] = {0};
  threadgroup float t[4] = {7, 7, 7, 7}, u[2];
  if (i < 4) s[i] = float(i), t[i] = 1.0f;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  o[i] = s[i % 4] + t[i % 4];
}
kernel void relies(device float* o [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {
  threadgroup float s[2] = {1, 2};
  o[i] = s[i % 2];
}`,
  );
  const run = (fn: string) =>
    runKernel(sim, src, fn, [{ index: 0, length: 8 * 4 }], { grid: [8, 1, 1], group: [8, 1, 1] });
  const hand = new Float32Array((await run("by_hand")).get(0)!.buffer);
  assertEquals(Array.from(hand), [1, 2, 3, 4, 1, 2, 3, 4]);
  // Threadgroup memory starts poisoned; the initializer is not applied, so a
  // kernel that depends on it reads NaN here instead of passing by luck.
  const relied = new Float32Array((await run("relies")).get(0)!.buffer);
  assert(relied.every(Number.isNaN), `expected poisoned values, got ${Array.from(relied)}`);
});
