/**
 * The compile step and untrusted kernel source (an LLM writes it):
 *  - no spelling of an include, embed or pragma reaches a file outside the
 *    kernel's folder, and no message carries text of one: a secret file is
 *    planted outside with a random token, and each spelling is tried under
 *    every compile sandbox this machine offers and with none (the textual
 *    checks alone);
 *  - the compiler sees none of the user's environment (a random token, and
 *    CPATH / CCC_OVERRIDE_OPTIONS pointing at the secret);
 *  - a kernel keeps no state across launches: mutable program-scope and
 *    static variables, thread_local, mutable members and C library calls
 *    (malloc, operator new, rand) are refused; constant data is accepted;
 *  - end to end, a CLI run of kernels that try leaves neither token in its
 *    output, results or session.json.
 *
 * Attacks that need environment variables run in a harness of their own
 * (this file as a script): variables are process-wide, and test modules
 * share one process.
 */
import { join } from "node:path";
import { type Bridge, BridgeError } from "../src/backend/bridge.ts";
import { metalbench } from "./_cli.ts";
import { makeWorkspace } from "./_workspace.ts";
import {
  assert,
  assertEquals,
  buildSim,
  f32,
  failure,
  FFI_DIR,
  msl,
  openSim,
  runKernel,
} from "./_sim_lib.ts";
import { parseBenchStream } from "../src/api/events.ts";

const hex = () => crypto.randomUUID().replaceAll("-", "");
/** In a file outside the kernel's folder (a C identifier: messages would quote it). */
const SECRET = `mb_secret_${hex()}`;
/** In the environment of the process that compiles. */
const ENV_SECRET = `mb_env_${hex()}`;

const KERNEL = "kernel void k(device float* y [[buffer(0)]]) { y[0] = 1.0f; }";
const kernel = (prelude: string, body = KERNEL) => `${prelude}\n${msl(body)}`;

/** The secret outside, and a kernel folder with links to it and a header that includes it. */
async function plant() {
  const outside = await Deno.makeTempDir({ prefix: "mb-outside-" });
  await Deno.writeTextFile(`${outside}/secret.h`, `${SECRET}\n`);
  await Deno.writeTextFile(
    `${outside}/secret_macro.h`,
    `#define LEAK ${SECRET}\n#define LEAKSTR "${SECRET}"\n`,
  );
  const folder = await Deno.makeTempDir({ prefix: "mb-kernels-" });
  await Deno.symlink(`${outside}/secret.h`, `${folder}/link.h`);
  await Deno.symlink(outside, `${folder}/linkdir`);
  await Deno.writeTextFile(`${folder}/evil.h`, `#include "${outside}/secret.h"\n`);
  await Deno.mkdir(`${folder}/sub`);
  return { outside, folder, secret: `${outside}/secret.h` };
}

interface Attack {
  name: string;
  source: string;
  /** The textual check's refusal, the same under every sandbox. */
  refused?: RegExp;
}

/** Spellings the textual check refuses before the compiler runs. */
function spelledAttacks(secret: string): Attack[] {
  const base = secret.slice(secret.lastIndexOf("/") + 1);
  const abs = /an absolute path/;
  return [
    { name: "#include", source: kernel(`#include "${secret}"`), refused: abs },
    { name: "#include <>", source: kernel(`#include <${secret}>`), refused: abs },
    { name: "digraph %:", source: kernel(`%:include "${secret}"`), refused: abs },
    { name: "digraph, blanks", source: kernel(`  %:  include "${secret}"`), refused: abs },
    { name: "#include_next", source: kernel(`#include_next "${secret}"`), refused: abs },
    {
      name: "#include_next <>",
      source: kernel(`#include_next <metal_stdlib>`),
      refused: /#include_next is not part of MSL/,
    },
    { name: "#import", source: kernel(`#import "${secret}"`), refused: abs },
    { name: "#__include_macros", source: kernel(`#__include_macros "${secret}"`), refused: abs },
    { name: "#embed", source: kernel(`#embed "${secret}"`), refused: abs },
    {
      name: "#embed, relative",
      source: kernel(`constant char c[] = {\n#embed "link.h"\n};`),
      refused: /#embed is not part of MSL/,
    },
    {
      name: "__has_include",
      source: kernel(`#if __has_include("${secret}")\n#error yes\n#endif`),
      refused: abs,
    },
    {
      name: "__has_include through a macro",
      source: kernel(`#define P "${secret}"\n#if __has_include(P)\n#endif`),
      refused: /not through a macro/,
    },
    {
      name: "__has_include renamed",
      source: kernel(`#define H __has_include\n#if H("${secret}")\n#endif`),
      refused: /must be written as __has_include\("file\.h"\)/,
    },
    {
      name: "__has_include_next",
      source: kernel(`#if __has_include_next("x.h")\n#endif`),
      refused: /__has_include_next is not part of MSL/,
    },
    {
      name: "__has_embed",
      source: kernel(`#if __has_embed("${secret}")\n#endif`),
      refused: /__has_embed is not part of MSL/,
    },
    { name: "splice in the name", source: kernel(`#inc\\\nlude "${secret}"`), refused: abs },
    { name: "splice after #", source: kernel(`#\\\ninclude "${secret}"`), refused: abs },
    { name: "splice, blanks", source: kernel(`#include \\   \n"${secret}"`), refused: abs },
    {
      name: "splice in the path",
      source: kernel(`#include "${secret.slice(0, 4)}\\\n${secret.slice(4)}"`),
      refused: abs,
    },
    { name: "comments", source: kernel(`#/**/include/**/"${secret}"`), refused: abs },
    {
      name: "after a comment spanning lines",
      source: kernel(`/*\n*/ #include "${secret}"`),
      refused: abs,
    },
    {
      name: "comment closed by a splice",
      source: kernel(`/* *\\\n/\n#include "${secret}"\n// */`),
      refused: abs,
    },
    {
      name: "raw string hiding a comment opener",
      source: kernel(`constant char s[] = R"x(a"/*)x";\n#include "${secret}"\n// */`),
      refused: abs,
    },
    {
      name: "macro",
      source: kernel(`#define F "${secret}"\n#include F`),
      refused: /must name a file literally/,
    },
    {
      name: "stringized macro",
      source: kernel(`#define STR(x) #x\n#include STR(${secret})`),
      refused: /must name a file literally/,
    },
    {
      name: ".. in the path",
      source: kernel(`#include "sub/../../${base}"`),
      refused: /a path that leaves the kernel's folder/,
    },
    {
      name: ".. through a macro",
      source: kernel(`#define UP ..\n#include UP/secret.h`),
      refused: /must name a file literally/,
    },
    { name: "/proc/self/environ", source: kernel(`#include "/proc/self/environ"`), refused: abs },
    {
      name: "#embed /proc/self/environ",
      source: kernel(`#embed "/proc/self/environ"`),
      refused: abs,
    },
    {
      name: "#line",
      source: kernel(`#line 1 "${secret}"`),
      refused: /#line is not allowed in kernels/,
    },
    { name: "line marker", source: kernel(`# 1 "${secret}"`), refused: /line markers/ },
    {
      name: "#pragma GCC dependency",
      source: kernel(`#pragma GCC dependency "${secret}"`),
      refused: /#pragma GCC dependency is not allowed/,
    },
    {
      name: "#pragma clang system_header",
      source: kernel(`#pragma clang system_header`),
      refused: /#pragma clang system_header is not allowed/,
    },
    {
      name: "%:pragma clang __debug",
      source: kernel(`%:pragma clang __debug dump`),
      refused: /#pragma clang __debug is not allowed/,
    },
    {
      name: "_Pragma",
      source: kernel(`_Pragma("GCC dependency \\"${secret}\\"")`),
      refused: /_Pragma GCC dependency is not allowed/,
    },
    {
      name: "_Pragma built by a macro",
      source: kernel(`#define DO(x) _Pragma(#x)\nDO(GCC dependency "${secret}")`),
      refused: /_Pragma must be written as _Pragma\("\.\.\."\)/,
    },
    {
      name: "a header next to the kernel",
      source: kernel(`#include "evil.h"`),
      refused: /evil\.h:1: error: #include "[^"]+": an absolute path/,
    },
  ];
}

/** Spellings the textual check lets through: links, the environment, trigraphs. */
function compilerAttacks(): Attack[] {
  return [
    { name: "a link to the secret", source: kernel(`#include "link.h"`) },
    { name: "through a linked folder", source: kernel(`#include "linkdir/secret.h"`) },
    { name: "CPATH", source: kernel(`#include "secret.h"`) },
    { name: "CPATH <>", source: kernel(`#include <secret_macro.h>`, "kernel void k() { LEAK; }") },
    { name: "trigraph", source: kernel(`??=include "link.h"`) },
  ];
}

/** Compile only if the compiler sees none of the environment (CPATH, CCC_OVERRIDE_OPTIONS). */
function environmentProbes(): Attack[] {
  return [
    {
      name: "CPATH unseen",
      source: kernel(`#if __has_include("secret.h") || __has_include(<secret_macro.h>)
#error the environment reached the compiler
#endif`),
    },
    {
      name: "CCC_OVERRIDE_OPTIONS unseen",
      source: kernel(`#ifdef MB_ENV_LEAKED\n#error the environment reached the compiler\n#endif`),
    },
  ];
}

interface Job {
  name: string;
  source: string;
}
interface Outcome {
  name: string;
  compiled: boolean;
  status?: string;
  message?: string;
}
interface Spec {
  options: Record<string, string | number>;
  includeDir: string;
  jobs: Job[];
  result: string;
}

/**
 * Compiles each job in a harness process with the environment given (plus
 * the env token and variables that would steer clang to the secret);
 * `unavailable` if the device does not open (a sandbox this machine lacks).
 */
async function harness(
  options: Record<string, string | number>,
  includeDir: string,
  outside: string,
  jobs: Job[],
  env: Record<string, string> = {},
): Promise<{ outcomes: Outcome[]; unavailable?: string; output: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const result = `${dir}/result.json`;
    const spec: Spec = { options, includeDir, jobs, result };
    await Deno.writeTextFile(`${dir}/spec.json`, JSON.stringify(spec));
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, `${dir}/spec.json`],
      env: {
        MB_COMPILE_TRUST_TOKEN: ENV_SECRET,
        CPATH: outside,
        C_INCLUDE_PATH: outside,
        CPLUS_INCLUDE_PATH: outside,
        CCC_OVERRIDE_OPTIONS: `+-DMB_ENV_LEAKED=1 +-include${outside}/secret.h`,
        ...env,
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const output = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
    assert(run.success, `the harness failed:\n${output}`);
    const got = JSON.parse(await Deno.readTextFile(result));
    return { ...got, output };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertNoToken(text: string, what: string) {
  assert(!text.includes(SECRET), `${what}: the file's secret leaked:\n${text}`);
  assert(!text.includes(ENV_SECRET), `${what}: the environment's secret leaked:\n${text}`);
}

/** Every attack fails to compile; a refused spelling is refused by the textual check. */
function assertAllFail(outcomes: Outcome[], attacks: Attack[], mode: string) {
  assertEquals(outcomes.length, attacks.length);
  for (const [i, a] of attacks.entries()) {
    const o = outcomes[i];
    const what = `${mode}: ${a.name}`;
    assert(!o.compiled, `${what}: compiled`);
    assertEquals(o.status, "compile", what);
    assertNoToken(o.message ?? "", what);
    if (a.refused) {
      assert(a.refused.test(o.message!), `${what}: ${o.message}`);
      // the textual check's message is the line it names, nothing from clang
      assert(/^kernel 'k' did not compile:\n[^\n]+$/.test(o.message!), `${what}: ${o.message}`);
    }
  }
}

const SANDBOXES = ["landlock+namespaces", "landlock", "bubblewrap", "namespaces", "none"];

Deno.test("sim compile trust: no spelling of an include reaches the secret, under any sandbox", async (t) => {
  const { outside, folder, secret } = await plant();
  try {
    const attacks = [...spelledAttacks(secret), ...compilerAttacks()];
    const probes = environmentProbes();
    const jobs = [...attacks, ...probes].map((a) => ({ name: a.name, source: a.source }));
    let tried = 0;
    for (const sandbox of ["", ...SANDBOXES]) {
      await t.step(sandbox || "default", async () => {
        const env: Record<string, string> = sandbox ? { MB_SIM_COMPILE_SANDBOX: sandbox } : {};
        const r = await harness({}, folder, outside, jobs, env);
        assertNoToken(r.output, sandbox);
        if (r.unavailable) {
          // Only a sandbox this machine lacks may be unavailable.
          assert(sandbox && sandbox !== "none", r.unavailable);
          assert(/does not work here/.test(r.unavailable), r.unavailable);
          assertNoToken(r.unavailable, sandbox);
          return;
        }
        tried++;
        assertAllFail(r.outcomes.slice(0, attacks.length), attacks, sandbox || "default");
        for (const o of r.outcomes.slice(attacks.length)) {
          assert(o.compiled, `${sandbox || "default"}: ${o.name}: ${o.message}`);
        }
      });
    }
    assert(tried >= 2, "the default sandbox and none at least");
  } finally {
    await Deno.remove(outside, { recursive: true });
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("sim compile trust: whether a file outside exists is hidden where the sandbox can hide it", async () => {
  const { outside, folder, secret } = await plant();
  try {
    // The textual check cannot see a pasted __has_include: only the OS can.
    const probe = (path: string) =>
      kernel(`#define CAT(a, b) a##b\n#if CAT(__has_, include)("${path}")\n#error seen\n#endif`);
    const jobs = [
      { name: "exists", source: probe(secret) },
      { name: "missing", source: probe(`${outside}/missing.h`) },
    ];
    let hidden = false;
    for (const sandbox of ["landlock+namespaces", "bubblewrap", "namespaces"]) {
      const r = await harness({}, folder, outside, jobs, { MB_SIM_COMPILE_SANDBOX: sandbox });
      if (r.unavailable) continue;
      const [exists, missing] = r.outcomes;
      assertEquals(missing.compiled, true, `${sandbox}: ${missing.message}`);
      assertEquals(
        exists.compiled,
        true,
        `${sandbox}: the file's existence showed: ${exists.message}`,
      );
      hidden = true;
    }
    if (!hidden) console.warn("no sandbox that hides files outside is available here");
    // Landlock alone keeps the file unreadable, but its existence shows as an error.
    const ll = await harness({}, folder, outside, jobs, { MB_SIM_COMPILE_SANDBOX: "landlock" });
    if (!ll.unavailable) {
      assert(/Permission denied/.test(ll.outcomes[0].message ?? ""), ll.outcomes[0].message);
      assertNoToken(ll.outcomes[0].message ?? "", "landlock");
    }
  } finally {
    await Deno.remove(outside, { recursive: true });
    await Deno.remove(folder, { recursive: true });
  }
});

/** A copy of our shim with headers that include the secret: a hole the textual check missed. */
async function leakyShim(outside: string): Promise<string> {
  const shim = await Deno.makeTempDir({ prefix: "mb-shim-" });
  for await (const e of Deno.readDir(`${FFI_DIR}/sim/include`)) {
    if (e.isFile) await Deno.copyFile(`${FFI_DIR}/sim/include/${e.name}`, `${shim}/${e.name}`);
  }
  await Deno.writeTextFile(`${shim}/leak_line.h`, `#include "${outside}/secret.h"\n`);
  await Deno.writeTextFile(`${shim}/leak_macro.h`, `#include "${outside}/secret_macro.h"\n`);
  return shim;
}

Deno.test("sim compile trust: messages carry no text of a file outside, and still point at the kernel's line", async (t) => {
  const { outside, folder } = await plant();
  const shim = await leakyShim(outside);
  try {
    const jobs = [
      // clang reports an error inside the secret file, included from line 2
      { name: "line", source: `// first\n#include <leak_line.h>\n${msl(KERNEL)}` },
      // the secret's macro expands in the kernel: the message is at the kernel's line
      {
        name: "macro",
        source: `#include <leak_macro.h>\n${
          msl("kernel void k(device float* y) { y[0] = LEAK; }")
        }`,
      },
      // a string from the secret's macro: no message names the secret file
      {
        name: "string",
        source: `#include <leak_macro.h>\n${msl(`static_assert(false, LEAKSTR);\n${KERNEL}`)}`,
      },
    ];
    for (const sandbox of ["", "none"]) {
      await t.step(sandbox || "default", async () => {
        const env: Record<string, string> = sandbox ? { MB_SIM_COMPILE_SANDBOX: sandbox } : {};
        const r = await harness({ shim_dir: shim }, folder, outside, jobs, env);
        assert(!r.unavailable, r.unavailable);
        for (const o of r.outcomes) {
          assert(!o.compiled, `${o.name} compiled`);
          assertEquals(o.status, "compile", o.name);
          assertNoToken(o.message!, `${sandbox}: ${o.name}`);
        }
        if (sandbox === "none") {
          // clang read the secret: what it said about it is reduced to the kernel's line
          const [line, macro, string] = r.outcomes.map((o) => o.message!);
          assert(/\nk\.metal:2: error: \(text not shown: /.test(line), line);
          assert(/\nk\.metal:4: error: \(text not shown: /.test(macro), macro);
          assert(/this compile read a file outside the kernel's folder/.test(string), string);
        } else {
          // the sandbox: the file is not there, or not readable
          for (const o of r.outcomes) {
            assert(/file not found|Permission denied/.test(o.message!), o.message);
          }
        }
      });
    }
  } finally {
    for (const d of [outside, folder, shim]) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("sim compile trust: the shim's own lines may be quoted with file:line", async () => {
  using sim = await openSim();
  // a wrong argument to a shim function: clang's notes quote the shim
  const e = await failure(
    sim.compile(msl("kernel void k(device float* y [[buffer(0)]]) { y[0] = clamp(1.0f); }"), "k", {
      source_name: "k.metal",
    }),
  );
  assertEquals(e.status, "compile");
  assert(/k\.metal:\d+:\d+: error: /.test(e.message), e.message);
  assert(/sim\/include\/[\w.]+:\d+:\d+: note: /.test(e.message), e.message);
  assert(
    /\n +\d+ \| __MB_INL R clamp\(/.test(e.message),
    `the shim's line is quoted: ${e.message}`,
  );
});

Deno.test("sim compile trust: headers named like the shim's in the kernel's folder do not replace it", async () => {
  // Code there would sit outside the namespace the checks see: asm, state.
  const folder = await Deno.makeTempDir({ prefix: "mb-kernels-" });
  try {
    for (const name of ["metal_stdlib", "metal_math", "mb_sim_entry.h", "mb_sim_types.h"]) {
      await Deno.writeTextFile(
        `${folder}/${name}`,
        "#error the kernel's folder replaced the shim\n",
      );
    }
    await Deno.writeTextFile(
      `${folder}/own.h`,
      "inline float twice(float v) { return 2.0f * v; }\n",
    );
    using sim = await openSim();
    const src = `#include <metal_stdlib>
#include <metal_math>
#include "own.h"
using namespace metal;
kernel void k(device float* y [[buffer(0)]]) { y[0] = twice(sqrt(4.0f)); }`;
    const out = await runKernel(sim, src, "k", [{ index: 0, length: 4 }], {
      grid: [1, 1, 1],
      group: [1, 1, 1],
    }, { include_dir: folder });
    assertEquals(Array.from(f32(out.get(0))), [4]);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

// ---- state across launches -----------------------------------------------

const MUTABLE: [string, string, RegExp][] = [
  [
    "static at namespace scope",
    `static int n;\nkernel void k(device int* y [[buffer(0)]]) { y[0] = n++; }`,
    /k\.metal:3: error: program-scope variable 'n' is mutable; Metal allows only constant program-scope data — fix: /,
  ],
  [
    "namespace-scope variable",
    `int counter = 0;\nkernel void k(device int* y [[buffer(0)]]) { if (counter++ == 0) y[0] = 1; }`,
    /k\.metal:3: error: program-scope variable 'counter' is mutable/,
  ],
  [
    "inline variable",
    `inline int calls = 0;\nkernel void k(device int* y [[buffer(0)]]) { y[0] = calls++; }`,
    /program-scope variable 'calls' is mutable/,
  ],
  [
    "pointer at namespace scope",
    `device int* last = nullptr;\nkernel void k(device int* y [[buffer(0)]]) { last = y; }`,
    /program-scope variable 'last' is mutable/,
  ],
  [
    "static in the kernel",
    `kernel void k(device int* y [[buffer(0)]]) { static int launches = 0; y[0] = launches++; }`,
    /k\.metal:3: error: static variable 'launches' in function 'k' is mutable/,
  ],
  [
    "static in a helper",
    `int next() { static int v; return v++; }\nkernel void k(device int* y [[buffer(0)]]) { y[0] = next(); }`,
    /static variable 'v' in function 'next' is mutable/,
  ],
  [
    "static in a lambda",
    `kernel void k(device int* y [[buffer(0)]]) { auto f = [] { static int q; return q++; }; y[0] = f(); }`,
    /static variable 'q' in function 'operator\(\)' is mutable/,
  ],
  [
    "thread_local",
    `thread_local int t;\nkernel void k(device int* y [[buffer(0)]]) { y[0] = t++; }`,
    /thread_local variable 't' keeps state across launches/,
  ],
  [
    "static data member",
    `struct S { static int s; };\nint S::s = 0;\nkernel void k(device int* y [[buffer(0)]]) { y[0] = S::s++; }`,
    /static data member 's' is mutable/,
  ],
  [
    "variable template",
    `template <class T> T zero = T(0);\nkernel void k(device int* y [[buffer(0)]]) { y[0] = zero<int>++; }`,
    /program-scope variable 'zero' is mutable/,
  ],
  [
    "mutable member of a constant",
    `struct M { mutable int n; };\nconstant M m = {0};\nkernel void k(device int* y [[buffer(0)]]) { y[0] = m.n++; }`,
    /program-scope variable 'm' has `mutable` members of type 'M'/,
  ],
  [
    "mutable member, one level down",
    `struct M { mutable int n; };\nstruct W { M inner; };\nconstexpr W w = {};\nkernel void k(device int* y [[buffer(0)]]) { y[0] = w.inner.n++; }`,
    /program-scope variable 'w' has `mutable` members of type 'W'/,
  ],
  [
    "compound literal behind a constant pointer",
    `constant int* constant p = (int[]){0};\nkernel void k(device int* y [[buffer(0)]]) { y[0] = const_cast<int*>(p)[0]++; }`,
    /a compound literal in the initializer of a static or program-scope variable/,
  ],
  [
    "a constant set from the first launch's input",
    `kernel void k(device const int* x [[buffer(0)]], device int* y [[buffer(1)]]) { static const int first = x[0]; y[0] = first; }`,
    /k\.metal:3:\d+: error: variable does not have a constant initializer/,
  ],
  [
    "extern variable",
    `extern "C" char** environ;\nkernel void k(device int* y [[buffer(0)]]) { y[0] = environ != nullptr; }`,
    /extern variable 'environ' would reach the host's memory/,
  ],
  [
    "asm label",
    `constant int c asm("mb_kernel_rt_alias") = 1;\nkernel void k(device int* y [[buffer(0)]]) { y[0] = c; }`,
    /an asm label \(a symbol name\) is not part of MSL/,
  ],
  [
    "section attribute",
    `__attribute__((section(".data.mine"))) constant int c = 1;\nkernel void k(device int* y [[buffer(0)]]) { y[0] = c; }`,
    /__attribute__\(\(section\)\) is not part of MSL/,
  ],
  [
    "malloc (a pointer kept)",
    `extern "C" void* malloc(unsigned long);\nkernel void k(device long* y [[buffer(0)]]) { y[0] = (long)malloc(64); }`,
    /kernel 'k' uses 'malloc' from the C library; kernels have no heap/,
  ],
  [
    "calloc",
    `extern "C" void* calloc(unsigned long, unsigned long);\nkernel void k(device long* y [[buffer(0)]]) { y[0] = (long)calloc(1, 64); }`,
    /uses 'calloc' from the C library/,
  ],
  [
    "realloc",
    `extern "C" void* realloc(void*, unsigned long);\nkernel void k(device long* y [[buffer(0)]]) { y[0] = (long)realloc((void*)y[1], 64); }`,
    /uses 'realloc' from the C library/,
  ],
  [
    "operator new, declared",
    `void* operator new(unsigned long);\nkernel void k(device int* y [[buffer(0)]]) { y[0] = *new int(1); }`,
    /'operator new' cannot be declared inside a namespace/,
  ],
  [
    "operator new, implicit",
    `kernel void k(device long* y [[buffer(0)]]) { y[0] = (long)new int(1); }`,
    // C++ for OpenCL has no default new; a declared one would not link
    /undefined reference to `operator new|'default new' is not supported/,
  ],
  [
    "::operator new",
    `kernel void k(device long* y [[buffer(0)]]) { y[0] = (long)::operator new(64); }`,
    /operator new/,
  ],
  [
    "rand (hidden state)",
    `extern "C" int rand();\nkernel void k(device int* y [[buffer(0)]]) { y[0] = rand(); }`,
    /uses 'rand' from the C library/,
  ],
  [
    "fesetround (the thread's rounding mode)",
    `extern "C" int fesetround(int);\nkernel void k(device int* y [[buffer(0)]]) { y[0] = fesetround(0x800); }`,
    /uses 'fesetround' from the C library/,
  ],
];

Deno.test("sim compile trust: mutable program-scope state and the C library are refused", async () => {
  using sim = await openSim();
  for (const [what, body, why] of MUTABLE) {
    const e = await failure(sim.compile(msl(body), "k", { source_name: "k.metal" }));
    assertEquals(e.status, "compile", what);
    assert(why.test(e.message), `${what}: ${e.message}`);
  }
});

Deno.test("sim compile trust: writable state the AST cannot see (the shim's) is refused in the file", async () => {
  // Our own shim is not checked as kernel code; the compiled file is.
  const shim = await Deno.makeTempDir({ prefix: "mb-shim-" });
  try {
    for await (const e of Deno.readDir(`${FFI_DIR}/sim/include`)) {
      if (e.isFile) await Deno.copyFile(`${FFI_DIR}/sim/include/${e.name}`, `${shim}/${e.name}`);
    }
    await Deno.writeTextFile(
      `${shim}/stateful.h`,
      "static int shim_counter;\ninline int bump() { return shim_counter++; }\n",
    );
    using sim = await openSim({ shim_dir: shim });
    const src = msl(
      `#include <stateful.h>\nkernel void k(device int* y [[buffer(0)]]) { y[0] = bump(); }`,
    );
    const e = await failure(sim.compile(src, "k", { source_name: "k.metal" }));
    assertEquals(e.status, "compile");
    assert(
      /compiled kernel 'k' refused: 'shim_counter' is kept in writable memory across launches/
        .test(e.message),
      e.message,
    );
  } finally {
    await Deno.remove(shim, { recursive: true });
  }
});

Deno.test("sim compile trust: constant program-scope data compiles and runs", async () => {
  using sim = await openSim();
  const src = msl(`
constant float kScale = 2.0f;
constexpr int kN = 4;
constant float kTable[kN] = {1.0f, 2.0f, 3.0f, 4.0f};
struct Coeffs { float a, b; };
constant Coeffs kC = {0.5f, 1.5f};
struct Params { static constexpr float bias = 0.25f; static const int unused = 7; };
template <typename T> constexpr T kOne = T(1);
constexpr float sq(float v) { return v * v; }
constant float kNine = sq(3.0f);
constant float* constant kNowhere = nullptr;
constant const char* constant kName = "name";
kernel void k(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  static constant float local_k = 3.0f;
  static const int local_table[2] = {10, 20};
  y[i] = kTable[i % kN] * kScale + kC.a * kC.b + Params::bias + kOne<float> + local_k
       + kNine + float(local_table[i % 2]) + (kNowhere ? 1.0f : 0.0f) + float(kName[0] == 'n');
}`);
  const out = await runKernel(sim, src, "k", [{ index: 0, length: 16 }], {
    grid: [4, 1, 1],
    group: [4, 1, 1],
  });
  const rest = 0.5 * 1.5 + 0.25 + 1 + 3 + 9 + 1;
  assertEquals(Array.from(f32(out.get(0))), [
    1 * 2 + rest + 10,
    2 * 2 + rest + 20,
    3 * 2 + rest + 10,
    4 * 2 + rest + 20,
  ]);
});

// ---- end to end ------------------------------------------------------------

async function listJson(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) out.push(...await listJson(path));
    else if (e.name.endsWith(".json")) out.push(path);
  }
  return out;
}

Deno.test("sim compile trust: a CLI run of kernels that reach for secrets leaves no trace of them", async () => {
  const { outside, folder } = await plant();
  const relu = await Deno.readTextFile(new URL("../references/common/relu.py", import.meta.url));
  const body = `kernel void k(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
              constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  if (gid < n) y[gid] = x[gid] < 0.0f ? 0.0f : x[gid]; // relu, NaN kept as MLX does
}`;
  const kernels: Record<string, string> = {
    leak_absolute: kernel(`#include "${outside}/secret.h"`, body),
    leak_digraph: kernel(`%:include "${outside}/secret.h"`, body),
    leak_link: kernel(`#include "leak.h"`, body),
    leak_linked_folder: kernel(`#include "leakdir/secret.h"`, body),
    leak_cpath: kernel(`#include "secret.h"`, body),
    leak_embed: kernel(`constant char c[] = {\n#embed "/proc/self/environ"\n};`, body),
    // compiles, and is correct, only if the compiler sees none of the environment
    env_unseen: kernel(
      `#ifdef MB_ENV_LEAKED\n#error the environment reached the compiler\n#endif`,
      body,
    ),
  };
  const files: Record<string, string> = {};
  const problems: Record<string, unknown> = {};
  for (const [name, src] of Object.entries(kernels)) {
    files[`kernels/common/${name}.metal`] = src;
    files[`references/common/${name}.py`] = relu;
    problems[name] = { template: "elementwise", description: name, function: "k", vector: 1 };
  }
  files["registry/common.json"] = JSON.stringify({ set: "common", problems });
  const ws = await makeWorkspace(files);
  await Deno.symlink(`${outside}/secret.h`, `${ws}/kernels/common/leak.h`);
  await Deno.symlink(outside, `${ws}/kernels/common/leakdir`);
  const cache = await Deno.makeTempDir({ prefix: "mb-cache-" });
  try {
    const r = await metalbench(
      ["--all", "--backend=sim", "--json", "--iters=2", "--warmup=0", "--workspace", ws],
      {
        env: {
          METALBENCH_CACHE: cache,
          MB_COMPILE_TRUST_TOKEN: ENV_SECRET,
          CPATH: outside,
          CPLUS_INCLUDE_PATH: outside,
          CCC_OVERRIDE_OPTIONS: `+-DMB_ENV_LEAKED=1 +-include${outside}/secret.h`,
        },
      },
    );
    assertEquals(r.code, 1, r.stderr);
    const out = { runs: parseBenchStream(r.stdout).records };
    assertEquals(out.runs.length, Object.keys(kernels).length, r.stderr);
    for (const run of out.runs) {
      const expected = run.kernel === "env_unseen" ? "correct" : "compile-error";
      assertEquals(run.correctness.status, expected, `${run.kernel}: ${run.correctness.detail}`);
    }
    assertNoToken(r.stdout, "stdout");
    assertNoToken(r.stderr, "stderr");
    const written = [...await listJson(join(ws, "results")), join(ws, "session.json")];
    for (const path of written) {
      const text = await Deno.readTextFile(path).catch(() => "");
      assertNoToken(text, path);
    }
    assert(written.length === Object.keys(kernels).length + 1, `results written: ${written}`);
    assert((await Deno.readTextFile(join(ws, "session.json"))).includes("env_unseen"));
  } finally {
    for (const d of [outside, folder, ws, cache]) await Deno.remove(d, { recursive: true });
  }
});

// ---- the harness, run as a script ------------------------------------------

async function runJobs(spec: Spec): Promise<{ outcomes: Outcome[]; unavailable?: string }> {
  let sim: Bridge;
  try {
    sim = await openSim(spec.options);
  } catch (e) {
    if (e instanceof BridgeError) return { outcomes: [], unavailable: e.message };
    throw e;
  }
  try {
    const outcomes: Outcome[] = [];
    for (const job of spec.jobs) {
      try {
        const p = await sim.compile(job.source, "k", {
          source_name: "k.metal",
          include_dir: spec.includeDir,
        });
        p.free();
        outcomes.push({ name: job.name, compiled: true });
      } catch (e) {
        if (!(e instanceof BridgeError)) throw e;
        outcomes.push({ name: job.name, compiled: false, status: e.status, message: e.message });
      }
    }
    return { outcomes };
  } finally {
    sim.close();
  }
}

if (import.meta.main) {
  // The bridge is built (if it must be) without the variables that steer
  // clang at the secret; the compiles run with them.
  const steer = ["CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH", "CCC_OVERRIDE_OPTIONS"];
  const saved = steer.map((k) => [k, Deno.env.get(k)] as const);
  for (const k of steer) Deno.env.delete(k);
  await buildSim();
  for (const [k, v] of saved) if (v !== undefined) Deno.env.set(k, v);
  const spec = JSON.parse(await Deno.readTextFile(Deno.args[0])) as Spec;
  await Deno.writeTextFile(spec.result, JSON.stringify(await runJobs(spec)));
}
