/**
 * Function constants are parsed for the type the kernel declares and
 * refused, in one line, when a value is not of that type — on both
 * backends, before either compiles: no silent truncation (300 into a uchar),
 * no Inf from a float past half's range. 64-bit, bfloat and vector types
 * are understood; the simulator refuses vectors it cannot set. The Metal
 * bridge repeats these checks with the compiler's types (a Mac confirms).
 */
import { BridgeError } from "../src/backend/bridge.ts";
import {
  checkFunctionConstants,
  constantType,
  declaredConstants,
  FunctionConstantError,
} from "../src/backend/function_constants.ts";
import { assert, assertEquals, f32, openSim, runOnce } from "./_sim_lib.ts";

const metal = { vectors: true, backend: "metal" };
const sim = { vectors: false, backend: "sim" };

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert(e instanceof FunctionConstantError, String(e));
    assert(!e.message.includes("\n"), `one line: ${e.message}`);
    return e.message;
  }
  throw new Error("accepted");
}

Deno.test("function constants: the kernel's types, however spelled", () => {
  const name = (t: string) => constantType(t)?.name ?? null;
  assertEquals(name("uchar"), "uchar");
  assertEquals(name("unsigned int"), "uint");
  assertEquals(name("int64_t"), "long");
  assertEquals(name("metal::float4"), "float4");
  assertEquals(name("vec<half, 2>"), "half2");
  assertEquals(name("bfloat3"), "bfloat3");
  assertEquals(name("ulong2"), "ulong2");
  assertEquals(name("my_int"), null);
  assertEquals(name("float5"), null);
});

Deno.test("function constants: declarations in the source and its headers; comments do not count", () => {
  const dir = Deno.makeTempDirSync();
  Deno.writeTextFileSync(
    `${dir}/consts.h`,
    "#pragma once\nconstant ulong seed [[function_constant(7)]];\n",
  );
  const d = declaredConstants(
    `#include "consts.h"
// constant int ghost [[function_constant(9)]];
/* constant int ghost2 [[function_constant(10)]]; */
constant metal::half2 bias [[ function_constant( 3 ) ]];
constant bool use_bias [[function_constant(BASE + 1)]];
kernel void k() {}`,
    dir,
  );
  assertEquals(
    d.constants.map((c) => [c.name, c.index, c.type?.name ?? null]),
    [["bias", 3, "half2"], ["use_bias", null, "bool"], ["seed", 7, "ulong"]],
  );
  assert(d.complete);
  Deno.removeSync(dir, { recursive: true });
});

const DECL = declaredConstants(`
constant uchar mode [[function_constant(0)]];
constant uint count [[function_constant(1)]];
constant long big [[function_constant(2)]];
constant ulong ubig [[function_constant(3)]];
constant int n [[function_constant(4)]];
constant half h [[function_constant(5)]];
constant bfloat bf [[function_constant(6)]];
constant float f [[function_constant(7)]];
constant bool flag [[function_constant(8)]];
constant float3 v [[function_constant(9)]];
`);

Deno.test("function constants: values out of their type's range are refused, not truncated", () => {
  const check = (option: string, opts = metal) => checkFunctionConstants(option, DECL, opts);
  assert(
    /'mode' \(uchar\): 300 is out of range for uchar \(0\.\.255\)/.test(
      refusal(() => check("mode=300")),
    ),
  );
  assert(/out of range for uint \(0\.\.4294967295\)/.test(refusal(() => check("count=-1"))));
  assert(/2\.5 is not an integer/.test(refusal(() => check("n=2.5"))));
  assert(/out of range for half \(largest 65504\)/.test(refusal(() => check("h=70000"))));
  // Past bfloat's largest finite value, though within float's.
  assert(/out of range for bfloat/.test(refusal(() => check("bf=3.4e38"))));
  assertEquals(check("f=3.4e38"), "f=3.4e+38");
  assert(/out of range for float/.test(refusal(() => check("f=1e39"))));
  // 64-bit integers are exact (BigInt), to their limits and no further.
  assertEquals(
    check("big=-9223372036854775808,2=9223372036854775807"),
    "big=-9223372036854775808,2=9223372036854775807",
  );
  assert(/out of range for long/.test(refusal(() => check("big=9223372036854775808"))));
  assertEquals(check("ubig=18446744073709551615"), "ubig=18446744073709551615");
  assert(/out of range for ulong/.test(refusal(() => check("ubig=18446744073709551616"))));
  assert(/out of range for ulong/.test(refusal(() => check("ubig=1e+21"))));
  assertEquals(check("flag=1,mode=255,count=4294967295"), "flag=true,mode=255,count=4294967295");
  assert(/not true or false/.test(refusal(() => check("flag=2"))));
  assert(/'mode' \(uchar\): 'x' is not a number/.test(refusal(() => check("mode=x"))));
  // Injection-shaped text is not a number of any type.
  assert(/is not a number/.test(refusal(() => check("n=2);system(0"))));
});

Deno.test("function constants: vectors take a list of components; the simulator refuses them", () => {
  const check = (option: string, opts = metal) => checkFunctionConstants(option, DECL, opts);
  assertEquals(check("v=1 0.5 -2"), "v=1 0.5 -2");
  assert(/has 2 component\(s\); a float3 takes 3/.test(refusal(() => check("v=1 2"))));
  assert(/out of range for float/.test(refusal(() => check("v=1 2 1e40"))));
  assert(
    /the sim backend sets scalar function constants only/.test(
      refusal(() => check("v=1 2 3", sim)),
    ),
  );
});

Deno.test("function constants: a name or index the kernel does not declare is refused, naming what it has", () => {
  const msg = refusal(() => checkFunctionConstants("scale=2", DECL, metal));
  assert(/declares no function constant 'scale' \(it has: mode \(0\), count \(1\)/.test(msg), msg);
  assert(
    /declares no function constant '12'/.test(
      refusal(() => checkFunctionConstants("12=1", DECL, metal)),
    ),
  );
  // A declaration not understood here (a macro attribute) leaves unknown names to the backend.
  const partial = declaredConstants(
    "#define FC(i) [[function_constant(i)]]\nconstant int a FC(0);",
  );
  assertEquals(checkFunctionConstants("a=5", partial, metal), "a=5");
});

const KERNEL = `#include <metal_stdlib>
using namespace metal;
constant uchar mode [[function_constant(0)]];
constant long big [[function_constant(1)]];
constant bfloat scale [[function_constant(2)]];
constant half offset [[function_constant(3)]];
kernel void fc(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  y[i] = float(mode) + float(big / 1000000000) + float(scale) * float(i) + float(offset);
}`;

Deno.test("function constants on the simulator: long, bfloat and half values arrive as given", async () => {
  using bridge = await openSim();
  using p = await bridge.compile(KERNEL, "fc", {
    function_constants: "mode=200,big=5000000000,scale=1.5,offset=0.25",
  });
  const y = f32((await runOnce(bridge, p, [{ index: 0, length: 16 }], {
    grid: [4, 1, 1],
    group: [4, 1, 1],
  })).get(0));
  assertEquals(Array.from(y), [205.25, 206.75, 208.25, 209.75]);
});

Deno.test("function constants on the simulator: out of range is a one-line compile error, before the compiler runs", async () => {
  using bridge = await openSim();
  for (
    const [option, pattern] of [
      ["mode=300", /kernel fc: function constant 'mode' \(uchar\): 300 is out of range for uchar/],
      ["offset=65520", /out of range for half/],
      ["big=1.5", /1\.5 is not an integer/],
    ] as const
  ) {
    try {
      (await bridge.compile(KERNEL, "fc", { function_constants: option })).free();
      throw new Error(`${option} compiled`);
    } catch (e) {
      assert(e instanceof BridgeError && e.status === "compile", String(e));
      assert(pattern.test(e.message), e.message);
      assert(!e.message.includes("\n"), e.message);
    }
  }
});

Deno.test("function constants on the simulator: a type not known here still reaches the simulator's own literal check", async () => {
  using bridge = await openSim();
  const src = `#include <metal_stdlib>
using namespace metal;
typedef int my_int;
constant my_int k [[function_constant(0)]];
kernel void fc(device int* y [[buffer(0)]], uint i [[thread_position_in_grid]]) { y[i] = k; }`;
  try {
    (await bridge.compile(src, "fc", { function_constants: "k=2);system(0" })).free();
    throw new Error("compiled");
  } catch (e) {
    assert(e instanceof BridgeError && e.status === "compile", String(e));
    assert(/not a literal/.test(e.message), e.message);
  }
});
