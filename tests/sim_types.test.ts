/**
 * MSL types in the simulator, each checked against values computed here:
 * half and bfloat arithmetic rounded per operation, every scalar and vector
 * type, boolN (true is 1), swizzles, conversions vs as_type, packed vectors,
 * and matrices.
 */
import {
  assertClose,
  assertEquals,
  bfloatBits,
  f32,
  halfBits,
  i32,
  msl,
  openSim,
  runKernel,
  toBfloat,
  toHalf,
  u16,
  u32,
} from "./_sim_lib.ts";

const ONE = { grid: [1, 1, 1], group: [1, 1, 1] } as const;

Deno.test("sim types: half and bfloat arithmetic round after every operation", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void fp16(device const float* x [[buffer(0)]], device half* h [[buffer(1)]],
                 device bfloat* b [[buffer(2)]], uint i [[thread_position_in_grid]]) {
  half a = half(x[i]), c = half(x[i + 64]);
  h[3 * i] = a * c + a;                   // two roundings
  h[3 * i + 1] = half4(a, c, a, c).y / 3.0h;
  h[3 * i + 2] = exp(a * 0.25h);          // math in float, rounded to half
  bfloat p = bfloat(x[i]), q = bfloat(x[i + 64]);
  b[2 * i] = p * q + p;
  b[2 * i + 1] = bfloat2(p, q).x / bfloat(3.0f);
}`);
  const n = 64;
  const x = Float32Array.from(
    { length: 2 * n },
    (_, i) => (i < n ? 0.37 * i - 9.1 : 1.3 + 0.11 * i),
  );
  const out = await runKernel(sim, src, "fp16", [
    { index: 0, data: x },
    { index: 1, length: 3 * n * 2 },
    { index: 2, length: 2 * n * 2 },
  ], { grid: [n, 1, 1], group: [32, 1, 1] });
  const h = u16(out.get(1)), b = u16(out.get(2));
  for (let i = 0; i < n; i++) {
    const a = toHalf(x[i]), c = toHalf(x[i + n]);
    assertEquals(h[3 * i], halfBits(toHalf(toHalf(a * c) + a)), `half a*c+a, thread ${i}`);
    assertEquals(h[3 * i + 1], halfBits(toHalf(c / 3)), `half c/3, thread ${i}`);
    // exp computes in float: within one half ulp of the exactly rounded value
    const e = halfBits(Math.fround(Math.exp(toHalf(a * 0.25))));
    assertEquals(
      Math.abs(h[3 * i + 2] - e) <= 1,
      true,
      `exp, thread ${i}: ${h[3 * i + 2]} vs ${e}`,
    );
    const p = toBfloat(x[i]), q = toBfloat(x[i + n]);
    assertEquals(b[2 * i], bfloatBits(toBfloat(p * q) + p), `bfloat p*q+p, thread ${i}`);
    assertEquals(b[2 * i + 1], bfloatBits(p / 3), `bfloat p/3, thread ${i}`);
  }
});

Deno.test("sim types: boolN is 0/1, select, all/any, ternary and logic on vectors", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void bools(device const float4* x [[buffer(0)]], device uint* u [[buffer(1)]],
                  device float4* f [[buffer(2)]]) {
  float4 a = x[0], b = x[1];
  bool4 eq = a == b;
  u[0] = 7;
  uint4 gt = uint4(a > b);
  for (int k = 0; k < 4; ++k) {
    u[1 + k] = gt[k];
    u[5 + k] = uint(eq[k]);
    u[9 + k] = uint4(!eq)[k];
    u[13 + k] = uint4(a > b || a == b)[k];
    u[17 + k] = uint(int4(a < b)[k]);
    u[21 + k] = uint(float4(a >= b)[k]);
  }
  u[25] = all(a >= b - 10.0f);
  u[26] = any(eq);
  u[27] = all(eq);
  u[28] = sizeof(bool4) * 100 + sizeof(bool2);
  u[29] = uint(eq.y) + uint(gt.z) * 10;
  u[30] = uint4(isnan(a / 0.0f)).w;     // 0/0
  u[31] = uint4(isinf(a / 0.0f)).x;
  f[0] = select(a, b, a < b);
  f[1] = a < b ? b : a;
  f[2] = mix(a, b, float4(a > b));
}`);
  const a = [1.5, -2, 3, 0], b = [2, -2, 1, 4];
  const out = await runKernel(sim, src, "bools", [
    { index: 0, data: new Float32Array([...a, ...b]) },
    { index: 1, length: 32 * 4 },
    { index: 2, length: 3 * 16 },
  ], ONE);
  const u = u32(out.get(1));
  const gt = a.map((v, k) => (v > b[k] ? 1 : 0)), eq = a.map((v, k) => (v === b[k] ? 1 : 0));
  assertEquals(Array.from(u.subarray(1, 5)), gt);
  assertEquals(Array.from(u.subarray(5, 9)), eq);
  assertEquals(Array.from(u.subarray(9, 13)), eq.map((v) => 1 - v));
  assertEquals(Array.from(u.subarray(13, 17)), a.map((v, k) => (v >= b[k] ? 1 : 0)));
  assertEquals(Array.from(u.subarray(17, 21)), a.map((v, k) => (v < b[k] ? 1 : 0)));
  assertEquals(Array.from(u.subarray(21, 25)), a.map((v, k) => (v >= b[k] ? 1 : 0)));
  assertEquals(Array.from(u.subarray(25, 32)), [1, 1, 0, 402, 1 + 10, 1, 1]);
  const f = f32(out.get(2));
  const sel = a.map((v, k) => (v < b[k] ? b[k] : v));
  assertEquals(Array.from(f.subarray(0, 4)), sel);
  assertEquals(Array.from(f.subarray(4, 8)), sel);
  assertEquals(Array.from(f.subarray(8, 12)), a.map((v, k) => (v > b[k] ? b[k] : v)));
});

Deno.test("sim types: conversions convert, as_type reinterprets, swizzles", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void convert(device const float4* x [[buffer(0)]], device float* f [[buffer(1)]],
                    device uint* u [[buffer(2)]]) {
  float4 a = x[0], b = x[1];
  int4 i = int4(-3, 7, 100, -1);
  float4 c1 = float4(i), c2 = (float4)i, c3 = static_cast<float4>(i);
  float4 t = float4(int4(float4(2.7f, -2.7f, 0.5f, -0.5f)));  // truncation toward 0
  uint4 bits = as_type<uint4>(float4(1.0f, -2.0f, 0.5f, 0.0f));
  float4 w = a.wzyx * 2.0f + b.xxyy;
  w.xy = w.yx;
  float3 t3 = a.xyz + float3(b.zw, 1.0f);
  half4 h = half4(a);
  for (int k = 0; k < 4; ++k) {
    f[k] = c1[k]; f[4 + k] = c2[k]; f[8 + k] = c3[k]; f[12 + k] = t[k]; f[16 + k] = w[k];
    u[k] = bits[k];
  }
  f[20] = t3.x; f[21] = t3.y; f[22] = t3.z;
  f[23] = float(h.w) + float(h.r);
  u[4] = as_type<uint>(half2(1.0h, -2.0h));
  u[5] = as_type<uint>(ushort2(0x1234, 0xabcd));
  u[6] = uint(as_type<ushort>(half(-0.5h)));
  u[7] = uint4(uchar4(as_type<uchar4>(0x04030201u))).w;
  u[8] = uint(int(-2.9f)) ;  // -2 as bits
  u[9] = uint(float(uint(4000000000u)) == 4000000000.0f);
}`);
  const a = [1.5, -2, 3, 0.25], b = [2, -2, 1, 4];
  const out = await runKernel(sim, src, "convert", [
    { index: 0, data: new Float32Array([...a, ...b]) },
    { index: 1, length: 24 * 4 },
    { index: 2, length: 10 * 4 },
  ], ONE);
  const f = f32(out.get(1)), u = u32(out.get(2));
  const iv = [-3, 7, 100, -1];
  assertEquals(Array.from(f.subarray(0, 12)), [...iv, ...iv, ...iv]);
  assertEquals(Array.from(f.subarray(12, 16)), [2, -2, 0, 0]);
  const w = [a[3] * 2 + b[0], a[2] * 2 + b[0], a[1] * 2 + b[1], a[0] * 2 + b[1]];
  assertEquals(Array.from(f.subarray(16, 20)), [w[1], w[0], w[2], w[3]]);
  assertEquals(Array.from(f.subarray(20, 24)), [a[0] + b[2], a[1] + b[3], a[2] + 1, 0.25 + 1.5]);
  assertEquals(Array.from(u.subarray(0, 10)), [
    0x3f800000,
    0xc0000000,
    0x3f000000,
    0,
    0xc0003c00,
    0xabcd1234,
    0xb800,
    4,
    0xfffffffe,
    1,
  ]);
});

Deno.test("sim types: every scalar and vector type, sizes, wrapping integer math", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void ints(device int* o [[buffer(0)]]) {
  char4 c = char4(120, -120, 5, -5) + char4(10);
  uchar3 uc = uchar3(250, 3, 7) + uchar3(10);
  short2 sh = short2(32767, -3) * short2(2);
  ushort4 us = ushort4(65535, 1, 2, 3) + ushort4(1);
  int3 ii = int3(-7, 9, 11) % int3(3);
  uint2 ui = uint2(7, 9) / uint2(2, 4);
  long2 l = long2(1L << 40, -5) * 3;
  ulong3 ul = ulong3(~0ul, 5, 6) + ulong3(1);
  int k = 0;
  for (int j = 0; j < 4; ++j) o[k++] = c[j];
  for (int j = 0; j < 3; ++j) o[k++] = uc[j];
  for (int j = 0; j < 2; ++j) o[k++] = sh[j];
  for (int j = 0; j < 4; ++j) o[k++] = us[j];
  for (int j = 0; j < 3; ++j) o[k++] = ii[j];
  for (int j = 0; j < 2; ++j) o[k++] = int(ui[j]);
  o[k++] = int(l.x >> 32); o[k++] = int(l.y);
  for (int j = 0; j < 3; ++j) o[k++] = int(ul[j]);
  // sizes and alignments (MSL: 3-component vectors take 4 slots)
  o[k++] = sizeof(char3); o[k++] = sizeof(short3); o[k++] = sizeof(float3); o[k++] = alignof(float3);
  o[k++] = sizeof(half3); o[k++] = sizeof(long4); o[k++] = sizeof(bfloat4); o[k++] = sizeof(uchar2);
  o[k++] = popcount(0xF0F0u) + clz(1u) * 100 + ctz(8u) * 10000;
  o[k++] = int(max(int2(3, -4), int2(-1, 2)).y) + abs(-9) * 10;
  o[k++] = int(extract_bits(0xABCDu, 4u, 8u));
  o[k++] = int(insert_bits(0u, 0xFu, 8u, 4u));
  o[k++] = int(mulhi(0x40000000u, 8u)) + int(addsat(uchar(250), uchar(10))) * 10;
}`);
  const out = await runKernel(sim, src, "ints", [{ index: 0, length: 36 * 4 }], ONE);
  assertEquals(Array.from(i32(out.get(0))), [
    // char4 wraps
    -126,
    -110,
    15,
    5,
    // uchar3
    4,
    13,
    17,
    // short2
    -2,
    -6,
    // ushort4
    0,
    2,
    3,
    4,
    // int3 %
    -1,
    0,
    2,
    // uint2 /
    3,
    2,
    // long2
    3 * 256,
    -15,
    // ulong3 (low 32 bits)
    0,
    6,
    7,
    // sizes
    4,
    8,
    16,
    16,
    8,
    32,
    8,
    2,
    // popcount, clz, ctz
    8 + 31 * 100 + 3 * 10000,
    2 + 90,
    0xbc,
    0xf00,
    2 + 255 * 10,
  ]);
});

Deno.test("sim types: packed_float3 (12 bytes) and packed_half4 in a buffer struct", async () => {
  using sim = await openSim();
  const src = msl(`
struct Particle {
  packed_float3 pos;   // offset 0, 12 bytes
  float mass;          // offset 12
  packed_half4 color;  // offset 16, 8 bytes
};
kernel void particles(device Particle* p [[buffer(0)]], device uint* sizes [[buffer(1)]],
                      uint i [[thread_position_in_grid]]) {
  float3 v = p[i].pos;
  p[i].pos = v * 2.0f + float3(p[i].mass);
  p[i].pos.z = p[i].pos[2] + 0.5f;
  half4 c = p[i].color;
  p[i].color = c.wzyx + half4(1.0h);
  if (i == 0) {
    sizes[0] = sizeof(Particle); sizes[1] = alignof(Particle);
    sizes[2] = sizeof(packed_float3); sizes[3] = alignof(packed_float3);
    sizes[4] = sizeof(packed_half4); sizes[5] = sizeof(float3);
  }
}`);
  const n = 5, stride = 24;
  const buf = new ArrayBuffer(n * stride);
  const dv = new DataView(buf);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < 3; k++) dv.setFloat32(i * stride + 4 * k, i + k * 0.5, true);
    dv.setFloat32(i * stride + 12, 10 * i, true);
    for (let k = 0; k < 4; k++) dv.setUint16(i * stride + 16 + 2 * k, halfBits(k + i), true);
  }
  const out = await runKernel(sim, src, "particles", [
    { index: 0, data: new Uint8Array(buf) },
    { index: 1, length: 24 },
  ], { grid: [n, 1, 1], group: [n, 1, 1] });
  assertEquals(Array.from(u32(out.get(1))), [24, 4, 12, 4, 8, 16]);
  const r = new DataView(out.get(0)!.buffer);
  for (let i = 0; i < n; i++) {
    const pos = [0, 1, 2].map((k) => r.getFloat32(i * stride + 4 * k, true));
    const want = [0, 1, 2].map((k) => (i + k * 0.5) * 2 + 10 * i);
    want[2] += 0.5;
    assertEquals(pos, want, `particle ${i}`);
    assertEquals(r.getFloat32(i * stride + 12, true), 10 * i, "mass untouched");
    const color = [0, 1, 2, 3].map((k) => r.getUint16(i * stride + 16 + 2 * k, true));
    assertEquals(color, [3, 2, 1, 0].map((k) => halfBits(k + i + 1)));
  }
});

Deno.test("sim types: matrices are column-major; * with vectors and matrices", async () => {
  using sim = await openSim();
  const src = msl(`
kernel void matrices(device const float* in [[buffer(0)]], device float* out [[buffer(1)]]) {
  float4x4 m;
  for (int c = 0; c < 4; ++c) m[c] = float4(in[4 * c], in[4 * c + 1], in[4 * c + 2], in[4 * c + 3]);
  float4 v = float4(in[16], in[17], in[18], in[19]);
  float4 mv = m * v, vm = v * m;
  float4x4 mm = m * transpose(m);
  float3x3 m3 = float3x3(float3(2, 0, 1), float3(1, 3, 0), float3(0, 1, 4));
  float2x3 r = float2x3(float3(1, 2, 3), float3(4, 5, 6));  // 2 columns of 3 rows
  float3 rv = r * float2(1.0f, -1.0f);
  half2x2 hm = half2x2(float2x2(float2(1, 2), float2(3, 4)));
  float2x2 d = float2x2(2.0f);   // diagonal
  int k = 0;
  for (int j = 0; j < 4; ++j) out[k++] = mv[j];
  for (int j = 0; j < 4; ++j) out[k++] = vm[j];
  for (int c = 0; c < 4; ++c) for (int j = 0; j < 4; ++j) out[k++] = mm[c][j];
  out[k++] = determinant(m3);
  for (int j = 0; j < 3; ++j) out[k++] = rv[j];
  out[k++] = m[2][1];
  out[k++] = float(hm[1][0]);
  out[k++] = sizeof(float3x3) + sizeof(float2x2) * 100;
  out[k++] = d[0][0] + d[0][1] * 10 + d[1][1] * 100;
  out[k++] = (m3 * m3)[2][0];
}`);
  const vals = Float32Array.from({ length: 20 }, (_, i) => ((i * 7) % 11) - 5);
  const out = f32(
    (await runKernel(sim, src, "matrices", [
      { index: 0, data: vals },
      { index: 1, length: 33 * 4 },
    ], ONE)).get(1),
  );
  const col = (c: number) => Array.from(vals.subarray(4 * c, 4 * c + 4));
  const M = [0, 1, 2, 3].map(col); // M[c][r]
  const v = Array.from(vals.subarray(16, 20));
  const mv = [0, 1, 2, 3].map((r) => M.reduce((s, c, ci) => s + c[r] * v[ci], 0));
  const vm = M.map((c) => c.reduce((s, x, r) => s + x * v[r], 0));
  // (M * M^T)[c][r] = sum_k M[k][r] * M^T[c][k] = sum_k M[k][r] * M[k][c]
  const mm = [0, 1, 2, 3].flatMap((c) =>
    [0, 1, 2, 3].map((r) => M.reduce((s, colk) => s + colk[r] * colk[c], 0))
  );
  const m3 = [[2, 0, 1], [1, 3, 0], [0, 1, 4]]; // columns
  // rows [[2,1,0],[0,3,1],[1,0,4]]: 2*(12-0) - 1*(0-1) + 0
  const det = 25;
  const m3sq20 = [0, 1, 2].reduce((s, k) => s + m3[k][0] * m3[2][k], 0);
  assertClose(out, [
    ...mv,
    ...vm,
    ...mm,
    det,
    -3,
    -3,
    -3,
    M[2][1],
    3,
    48 + 16 * 100,
    2 + 0 + 200,
    m3sq20,
  ], 1e-6);
});
