/**
 * The MSL that MLX's own kernels are written in, in kernels of our own in
 * the same style: address spaces as part of the type (overloads,
 * specializations, qualified members, no silent conversion), a kernel's own
 * additions to `namespace metal`, vector construction the way MLX writes it,
 * and half <-> bfloat casts. Every result is checked against a value
 * computed here in TypeScript.
 */
import {
  assert,
  assertEquals,
  f32,
  failure,
  halfBits,
  halfValue,
  i32,
  msl,
  openSim,
  random,
  runKernel,
  toBfloat,
  toHalf,
  u16,
} from "./_sim_lib.ts";

const ONE = {
  grid: [1, 1, 1] as [number, number, number],
  group: [1, 1, 1] as [number, number, number],
};

Deno.test("sim address spaces: overloads, qualified members and specializations pick by space", async () => {
  using sim = await openSim();
  // Each overload answers with its own code: 1 device, 2 threadgroup,
  // 3 constant, 4 thread.
  const src = msl(`
int space(device const float*) { return 1; }
int space(threadgroup const float*) { return 2; }
int space(constant float*) { return 3; }
int space(thread const float*) { return 4; }

// complex_t's pattern: constructors per address space, members per space.
template <typename T> struct cplx {
  T re, im;
  constexpr cplx(T r, T i) thread : re(r), im(i) {}
  constexpr cplx() thread : re(0), im(0) {}
  constexpr cplx() threadgroup : re(0), im(0) {}
  int where() const thread { return 4; }
  int where() const device { return 1; }
  int where() const threadgroup { return 2; }
  int where() const constant { return 3; }
};
template <typename T> cplx<T> mul(cplx<T> a, cplx<T> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};  // a thread temporary
}

// MLX's pointer_element: a partial specialization per space.
template <typename T> struct pointer_element {};
template <typename T> struct pointer_element<thread T*> { using type = remove_cv_t<T>; static constant int id = 4; };
template <typename T> struct pointer_element<device T*> { using type = remove_cv_t<T>; static constant int id = 1; };
template <typename T> struct pointer_element<constant T*> { using type = remove_cv_t<T>; static constant int id = 3; };
template <typename T> struct pointer_element<threadgroup T*> { using type = remove_cv_t<T>; static constant int id = 2; };
template <typename P> int element_id(P) { return pointer_element<P>::id; }

constant float kTable[2] = {0.5f, 1.5f};

kernel void spaces(device const float* x [[buffer(0)]], device int* codes [[buffer(1)]],
                   device cplx<float>* z [[buffer(2)]], constant cplx<float>* cz [[buffer(3)]],
                   device float* out [[buffer(4)]], uint i [[thread_index_in_threadgroup]]) {
  threadgroup float tg[4];
  threadgroup cplx<float> tz[1];
  float local[2] = {x[0], x[1]};
  tg[i] = x[i];
  threadgroup_barrier(mem_flags::mem_threadgroup);
  if (i != 0) return;
  int k = 0;
  codes[k++] = space(x);
  codes[k++] = space(tg);
  codes[k++] = space(kTable);
  codes[k++] = space(local);
  cplx<float> a(x[0], x[1]);
  codes[k++] = a.where();
  codes[k++] = z[0].where();
  codes[k++] = tz[0].where();
  codes[k++] = cz[0].where();
  codes[k++] = element_id(x);
  codes[k++] = element_id(&tg[0]);
  codes[k++] = element_id(&kTable[0]);
  codes[k++] = element_id(&local[0]);
  codes[k++] = is_same_v<pointer_element<device const float*>::type, float> ? 1 : 0;
  codes[k++] = is_same_v<remove_addrspace_t<device float>, float> ? 1 : 0;
  codes[k++] = is_same_v<device float*, thread float*> ? 1 : 0;
  cplx<float> p = mul(a, cplx<float>(z[0].re, z[0].im));
  out[0] = p.re;
  out[1] = p.im;
}`);
  const next = random(11);
  const x = new Float32Array(4).map(() => next() * 4 - 2);
  const z = new Float32Array([next() * 2 - 1, next() * 2 - 1]);
  const out = await runKernel(sim, src, "spaces", [
    { index: 0, data: x },
    { index: 1, length: 15 * 4 },
    { index: 2, data: z },
    { index: 3, data: z },
    { index: 4, length: 8 },
  ], { grid: [4, 1, 1], group: [4, 1, 1] });
  assertEquals(Array.from(i32(out.get(1))), [1, 2, 3, 4, 4, 1, 2, 3, 1, 2, 3, 4, 1, 1, 0]);
  const [ar, ai, br, bi] = [x[0], x[1], z[0], z[1]];
  const re = Math.fround(Math.fround(ar * br) - Math.fround(ai * bi));
  const im = Math.fround(Math.fround(ar * bi) + Math.fround(ai * br));
  assertEquals(Array.from(f32(out.get(4))), [re, im]);
});

Deno.test("sim address spaces: no silent conversion between spaces, as Metal refuses", async () => {
  using sim = await openSim();
  const cases: [string, string][] = [
    ["device to thread", "thread float* p = x; y[0] = p[0];"],
    ["device to threadgroup", "threadgroup float* p = x; y[0] = p[0];"],
    ["threadgroup to device", "threadgroup float t[4]; device float* p = t; y[0] = p[0];"],
    ["constant to device", "device const float* p = c; y[0] = p[0];"],
    ["write through constant", "c[0] = 1.0f; y[0] = 0;"],
  ];
  for (const [what, body] of cases) {
    const src = msl(`kernel void k(device float* x [[buffer(0)]], device float* y [[buffer(1)]],
                constant float* c [[buffer(2)]]) {
  ${body}
}`);
    const e = await failure(sim.compile(src, "k", { source_name: "k.metal" }));
    assertEquals(e.status, "compile", what);
    // the kernel's own line, not the simulator's cache
    assert(/k\.metal:5:\d+: error: /.test(e.message), `${what}: ${e.message}`);
    assert(!e.message.includes("/build-"), `${what}: ${e.message}`);
  }
});

Deno.test("sim: a kernel's own namespace metal adds to Metal's, as MLX's bf16 headers do", async () => {
  using sim = await openSim();
  const src = `#include <metal_stdlib>
#pragma METAL internals : enable
// MLX's steel/utils/type_traits.h defines these in metal; Metal has none.
namespace metal {
template <typename T> struct is_empty : metal::bool_constant<__is_empty(T)> {};
template <typename... Ts> struct make_void { typedef void type; };
template <typename... Ts> using void_t = typename make_void<Ts...>::type;
}
#pragma METAL internals : disable
struct fixed8 { int v; };  // a value of 1/256ths
// New overloads next to Metal's own, in metal and metal::fast.
namespace metal {
METAL_FUNC fixed8 abs(fixed8 x) { return {x.v < 0 ? -x.v : x.v}; }
METAL_FUNC fixed8 simd_shuffle_down(fixed8 x, ushort delta) {
  return {as_type<int>(metal::simd_shuffle_down(as_type<uint>(x.v), delta))};
}
namespace fast {
METAL_FUNC fixed8 exp(fixed8 x) { return {int(metal::fast::exp(float(x.v) / 256.0f) * 256.0f)}; }
}
}
using namespace metal;
kernel void ext(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                device int* fx [[buffer(2)]], uint lane [[thread_index_in_simdgroup]]) {
  // Metal's overloads still answer through metal::, next to the kernel's.
  float a = metal::abs(x[lane]);
  fixed8 f = metal::abs(fixed8{int(x[lane] * 256.0f)});
  float down = metal::simd_shuffle_down(x[lane], ushort(1));
  fixed8 fdown = metal::simd_shuffle_down(f, ushort(1));
  y[lane * 4 + 0] = a;
  y[lane * 4 + 1] = down;
  y[lane * 4 + 2] = metal::numeric_limits<float>::max() > 1e38f ? 1.0f : 0.0f;
  y[lane * 4 + 3] = metal::fast::exp(0.0f) + (is_empty<fixed8>::value ? 10.0f : 0.0f);
  fx[lane * 2 + 0] = fdown.v;
  fx[lane * 2 + 1] = metal::fast::exp(fixed8{0}).v;
}`;
  const next = random(5);
  const x = new Float32Array(32).map(() => Math.round((next() * 8 - 4) * 256) / 256);
  const out = await runKernel(sim, src, "ext", [
    { index: 0, data: x },
    { index: 1, length: 32 * 16 },
    { index: 2, length: 32 * 8 },
  ], { grid: [32, 1, 1], group: [32, 1, 1] });
  const y = f32(out.get(1)), fx = i32(out.get(2));
  for (let l = 0; l < 32; l++) {
    const src = l + 1 < 32 ? l + 1 : l; // shuffle_down past the end keeps the lane's own value
    assertEquals(y[l * 4], Math.abs(x[l]));
    assertEquals(y[l * 4 + 1], x[src]);
    assertEquals(y[l * 4 + 2], 1);
    assertEquals(y[l * 4 + 3], 1);
    assertEquals(fx[l * 2], Math.abs(Math.trunc(x[src] * 256)));
    assertEquals(fx[l * 2 + 1], 256);
  }
});

Deno.test("sim: vectors built the way MLX writes them (V(a, b), short2 v(a, b), f({x, y, z})); thread references take temporaries", async () => {
  using sim = await openSim();
  const src = msl(`
template <typename V, typename T> V pair(T a, T b) { return V(a, b); }
template <typename V> V widen(float4 x) { return V(x); }  // a conversion, not a bit cast
uint volume(uint3 extent) { return extent.x * extent.y * extent.z; }
float dot3(const thread float3& a, float3 b) { return dot(a, b); }
float twice(const thread float& v) { return v + v; }  // bound to a temporary below
kernel void build(device const float* x [[buffer(0)]], device int* o [[buffer(1)]],
                  uint i [[thread_position_in_grid]]) {
  int2 p = pair<int2>(int(x[0]), int(x[1]));
  const short sx = short(x[2]), sy = short(x[3]);
  short2 s(sx, sy);
  int4 w = widen<int4>(float4(x[0], x[1], x[2], x[3]));
  uint v = volume({uint(x[4]), 3u, 2u});
  float d = dot3({x[0], x[1], x[2]}, {1.0f, 2.0f, 3.0f});
  o[0] = p.x; o[1] = p.y; o[2] = s.x; o[3] = s.y;
  o[4] = w.x; o[5] = w.y; o[6] = w.z; o[7] = w.w;
  o[8] = int(v); o[9] = int(d); o[10] = int(twice(x[0] + 1.0f));
  int4 part = {int(x[0]), int(x[1]), 7};  // the rest zero, as MSL has it
  float4 few{x[2], x[3]};
  o[11] = part.z; o[12] = part.w; o[13] = int(few.x + few.y + few.z + few.w);
}`);
  const x = new Float32Array([7.75, -3.25, 12.5, -9.5, 5, 0, 0, 0]);
  const out = await runKernel(sim, src, "build", [{ index: 0, data: x }, {
    index: 1,
    length: 14 * 4,
  }], ONE);
  const t = Math.trunc;
  assertEquals(Array.from(i32(out.get(1))), [
    t(x[0]),
    t(x[1]),
    t(x[2]),
    t(x[3]),
    t(x[0]),
    t(x[1]),
    t(x[2]),
    t(x[3]),
    5 * 3 * 2,
    t(Math.fround(Math.fround(x[0] * 1 + x[1] * 2) + x[2] * 3)),
    t(2 * (x[0] + 1)),
    7,
    0,
    t(x[2] + x[3]),
  ]);
});

Deno.test("sim: static_cast and functional casts between half and bfloat round once, as on the GPU", async () => {
  using sim = await openSim();
  const src = msl(`
template <typename T, typename U> T convert(U u) { return static_cast<T>(u); }
kernel void hb(device const float* x [[buffer(0)]], device float* o [[buffer(1)]],
               uint i [[thread_position_in_grid]]) {
  half h = half(x[i]);
  bfloat b = bfloat(x[i]);
  o[i * 4 + 0] = float(static_cast<bfloat>(h));
  o[i * 4 + 1] = float(static_cast<half>(b));
  o[i * 4 + 2] = float(convert<bfloat>(h));
  o[i * 4 + 3] = float(half(b)) + float(bfloat(h)) * 0.0f;
}`);
  const next = random(3);
  const x = new Float32Array(16).map(() => (next() * 2 - 1) * 2 ** Math.floor(next() * 20 - 10));
  const out = await runKernel(sim, src, "hb", [{ index: 0, data: x }, {
    index: 1,
    length: 16 * 16,
  }], { grid: [16, 1, 1], group: [16, 1, 1] });
  const o = f32(out.get(1));
  for (let i = 0; i < 16; i++) {
    const h = toHalf(x[i]), b = toBfloat(x[i]);
    assertEquals(o[i * 4], toBfloat(h), `bfloat(half(${x[i]}))`);
    assertEquals(o[i * 4 + 1], toHalf(b), `half(bfloat(${x[i]}))`);
    assertEquals(o[i * 4 + 2], toBfloat(h));
    assertEquals(o[i * 4 + 3], toHalf(b));
  }
});

Deno.test("sim: threadgroup arrays in template kernels (MLX's instantiate_kernel) are shared, in every instantiation", async () => {
  using sim = await openSim();
  const src = msl(`
template <typename T, typename AccT = T, int N = 32>
[[kernel]] void reverse(device const T* in [[buffer(0)]], device T* out [[buffer(1)]],
                        uint lid [[thread_position_in_threadgroup]]) {
  constexpr int PAD = (N + 16 / sizeof(T));
  threadgroup AccT tile[N * PAD / PAD];  // a bound that multiplies
  tile[lid] = AccT(in[lid]);
  threadgroup_barrier(mem_flags::mem_threadgroup);
  out[lid] = T(tile[N - 1 - lid]);
}
// A kernel template never instantiated, as MLX's files have.
template <typename T, const int BM = 32>
[[kernel]] void unused(device T* o [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {
  constexpr int P = (BM + 16 / sizeof(T));
  threadgroup T xs[BM * P];
  xs[i] = T(1);
  o[i] = xs[i];
}
template [[host_name("reverse_float")]] [[kernel]] decltype(reverse<float>) reverse<float>;
template [[host_name("reverse_half")]] [[kernel]] decltype(reverse<half, float>) reverse<half, float>;
`);
  const x = Float32Array.from({ length: 32 }, (_, i) => i * 1.5 - 7);
  for (const name of ["reverse_float", "reverse_half"]) {
    const half = name.endsWith("half");
    const input = half ? Uint16Array.from(x, (v) => halfBits(v)) : x;
    const out = await runKernel(sim, src, name, [{ index: 0, data: input }, {
      index: 1,
      length: 32 * (half ? 2 : 4),
    }], { grid: [32, 1, 1], group: [32, 1, 1] });
    const got = half ? Array.from(u16(out.get(1)), halfValue) : Array.from(f32(out.get(1)));
    assertEquals(got, Array.from(x).reverse().map((v) => half ? toHalf(v) : v), name);
  }
});

Deno.test("sim: structs in constant memory copy as in MSL (locals, assignment, arguments, returns)", async () => {
  using sim = await openSim();
  const src = msl(`
struct P { float a; int b; };
struct Op { static constexpr constant P init = {1.5f, 2}; };
constant P kDefault = {4.0f, 5};
float use(P p) { return p.a + float(p.b); }
P get(constant P& q) { return q; }
kernel void copies(device float* o [[buffer(0)]], constant P& q [[buffer(1)]],
                   device P* dp [[buffer(2)]]) {
  P local = q;
  auto copy = q;
  dp[0] = Op::init;
  dp[1] = kDefault;
  o[0] = local.a; o[1] = float(copy.b); o[2] = use(q); o[3] = use(kDefault); o[4] = get(q).a;
}`);
  const q = new DataView(new ArrayBuffer(8));
  q.setFloat32(0, 2.25, true);
  q.setInt32(4, 7, true);
  const out = await runKernel(sim, src, "copies", [
    { index: 0, length: 5 * 4 },
    { index: 1, data: new Uint8Array(q.buffer) },
    { index: 2, length: 16 },
  ], ONE);
  assertEquals(Array.from(f32(out.get(0))), [2.25, 7, 9.25, 9, 2.25]);
  const dp = new DataView(out.get(2)!.buffer, out.get(2)!.byteOffset, 16);
  assertEquals([dp.getFloat32(0, true), dp.getInt32(4, true)], [1.5, 2]);
  assertEquals([dp.getFloat32(8, true), dp.getInt32(12, true)], [4, 5]);
});

Deno.test("sim: a function as a template argument of function-pointer type (MLX's fft radix steps)", async () => {
  using sim = await openSim();
  const src = msl(`
template <typename T> using RadixFunc = void (*)(thread vec<T, 2>*, thread vec<T, 2>*);
template <typename T> METAL_FUNC void radix2(thread vec<T, 2>* x, thread vec<T, 2>* y) {
  y[0] = x[0] + x[1];
  y[1] = x[0] - x[1];
}
template <typename T, int radix, RadixFunc<T> radix_func>
METAL_FUNC void step(thread vec<T, 2>* in, thread vec<T, 2>* out) { radix_func(in, out); }
kernel void butterfly(device const float2* x [[buffer(0)]], device float2* o [[buffer(1)]]) {
  float2 a[2] = {x[0], x[1]};
  float2 b[2];
  step<float, 2, radix2<float>>(a, b);
  o[0] = b[0];
  o[1] = b[1];
}`);
  const x = new Float32Array([1.5, -2, 0.25, 4]);
  const out = await runKernel(sim, src, "butterfly", [{ index: 0, data: x }, {
    index: 1,
    length: 16,
  }], ONE);
  assertEquals(Array.from(f32(out.get(1))), [1.75, 2, 1.25, -6]);
});

Deno.test("sim: pointer steps by an integral_constant in templates (MLX's steel loaders)", async () => {
  using sim = await openSim();
  const src = msl(`
template <typename T, T v> struct ic {
  static constexpr constant T value = v;
  METAL_FUNC constexpr operator T() const thread noexcept { return value; }
};
template <int v> using Int = ic<int, v>;
// operator+= templates in scope make clang keep p += s unresolved
template <typename T> struct cx { T re; };
template <typename T> cx<T>& operator+=(thread cx<T>& a, cx<T> b) { a.re += b.re; return a; }
template <typename P, typename S>
METAL_FUNC float gather(P src, S stride, int n) {
  float sum = 0;
  for (int i = 0; i < n; i++) {
    sum += float(src[0]) * float(i + 1);
    src += stride;
  }
  src -= stride;
  return sum + float(src[0]) * 0.0f;
}
kernel void steps(device const half* x [[buffer(0)]], device float* o [[buffer(1)]]) {
  o[0] = gather(x, Int<2>{}, 4);
  o[1] = gather(x + 1, 3, 2);
}`);
  const x = [1, 2, 3, 4, 5, 6, 7, 8];
  const out = await runKernel(sim, src, "steps", [
    { index: 0, data: Uint16Array.from(x, (v) => halfBits(v)) },
    { index: 1, length: 8 },
  ], ONE);
  assertEquals(Array.from(f32(out.get(1))), [1 * 1 + 3 * 2 + 5 * 3 + 7 * 4, 2 * 1 + 5 * 2]);
});
