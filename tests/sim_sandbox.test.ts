/**
 * Kernel source is untrusted (an LLM writes it). Each test here tries to
 * get out: at compile time (includes of system files, inline assembly) and
 * at run time (files, processes, network, signals), through declarations a
 * kernel writes itself. Compile-time attempts are compile errors; run-time
 * attempts stop the kernel with an error naming it, and the same device
 * runs the next kernel.
 */
import {
  assert,
  assertDeviceStillWorks,
  assertEquals,
  failure,
  msl,
  openSim,
  runKernel,
} from "./_sim_lib.ts";

const ONE = { grid: [1, 1, 1], group: [1, 1, 1] } as const;

Deno.test("sim sandbox: includes reach only the shim and the kernel's folder", async () => {
  using sim = await openSim();
  const kernel = `kernel void k(device int* r [[buffer(0)]]) { r[0] = 1; }`;
  const cases: [string, RegExp][] = [
    [`#include "/etc/passwd"`, /#include "\/etc\/passwd": an absolute path/],
    [`#include "../../../../../../etc/passwd"`, /a path that leaves the kernel's folder/],
    [`#include </etc/passwd>`, /#include <\/etc\/passwd>: an absolute path/],
    [`#define SECRET "/etc/passwd"\n#include SECRET`, /must name a file literally/],
    [`#if __has_include("/etc/shadow")\n#endif`, /__has_include "\/etc\/shadow": an absolute path/],
    [`#include <stdio.h>`, /'stdio.h' file not found/],
    [`#include <unistd.h>`, /'unistd.h' file not found/],
    [`#embed "/etc/passwd"`, /#embed "\/etc\/passwd": an absolute path/],
  ];
  for (const [line, why] of cases) {
    const e = await failure(
      sim.compile(`${line}\n${msl(kernel)}`, "k", { source_name: "k.metal" }),
    );
    assertEquals(e.status, "compile", line);
    assert(why.test(e.message), `${line}: ${e.message}`);
    assert(!/root:/.test(e.message), "no file content in the message");
  }
});

Deno.test("sim sandbox: inline assembly is refused (.incbin, raw syscalls)", async () => {
  using sim = await openSim();
  const sources = [
    `__asm__(".incbin \\"/etc/passwd\\"");\nkernel void k(device int* r [[buffer(0)]]) { r[0] = 1; }`,
    Deno.build.arch === "x86_64"
      ? `kernel void k(device long* r [[buffer(0)]]) {
  long ret;
  asm volatile("syscall" : "=a"(ret) : "a"(39) : "rcx", "r11", "memory");
  r[0] = ret;
}`
      : `kernel void k(device long* r [[buffer(0)]]) {
  register long x8 asm("x8") = 172, x0 asm("x0");
  asm volatile("svc #0" : "=r"(x0) : "r"(x8) : "memory");
  r[0] = x0;
}`,
  ];
  for (const s of sources) {
    const e = await failure(sim.compile(msl(s), "k", { source_name: "k.metal" }));
    assertEquals(e.status, "compile");
    assert(/k\.metal:\d+: error: inline assembly is not part of MSL/.test(e.message), e.message);
  }
  // The checks see the kernel's code as one namespace: leaving it is refused.
  const escape = `} __asm__(".incbin \\"/etc/passwd\\""); namespace __mbu {
kernel void k(device int* r [[buffer(0)]]) { r[0] = 1; }`;
  const e = await failure(sim.compile(msl(escape), "k", { source_name: "k.metal" }));
  assertEquals(e.status, "compile");
  assert(/closes or reopens the simulator's namespace/.test(e.message), e.message);
});

Deno.test("sim sandbox: code that would run when loaded (constructors) is refused", async () => {
  using sim = await openSim();
  const src = msl(`
extern "C" int unlink(const constant char*);  // string literals are in the constant address space
__attribute__((constructor)) static void early() { unlink("/tmp/mb-sim-never"); }
kernel void k(device int* r [[buffer(0)]]) { r[0] = 1; }`);
  const e = await failure(sim.compile(src, "k", { source_name: "k.metal" }));
  assertEquals(e.status, "compile");
  assert(
    /compiled kernel 'k' refused: it has constructors or destructors/.test(e.message),
    e.message,
  );
  await assertDeviceStillWorks(sim);
});

// Declarations a kernel can write itself: the C library is in the process.
const ESCAPES = msl(`
extern "C" {
int open(const constant char*, int, ...);  // string literals are in the constant address space
void* fopen(const constant char*, const constant char*);
int socket(int, int, int);
int connect(int, const void*, unsigned);
int fork(void);
int execve(const constant char*, char* const*, char* const*);
int system(const constant char*);
int kill(int, int);
long syscall(long, ...);
}
kernel void try_open(device int* r [[buffer(0)]]) { r[0] = open("/etc/passwd", 0); }
kernel void try_fopen(device int* r [[buffer(0)]]) {
  r[0] = fopen("/tmp/mb-sim-sandbox-probe", "w") != nullptr;
}
kernel void try_socket(device int* r [[buffer(0)]]) {
  const unsigned char addr[16] = {2, 0, 0, 9, 127, 0, 0, 1};
  int s = socket(2, 1, 0);
  r[0] = connect(s, addr, 16);
}
kernel void try_fork(device int* r [[buffer(0)]]) { r[0] = fork(); }
kernel void try_exec(device int* r [[buffer(0)]]) {
  char arg0[] = "/bin/true";
  char* argv[] = {arg0, nullptr};
  r[0] = execve("/bin/true", argv, nullptr);
}
kernel void try_system(device int* r [[buffer(0)]]) {
  r[0] = system("touch /tmp/mb-sim-sandbox-probe");
}
kernel void try_kill(device int* r [[buffer(0)]]) { r[0] = kill(1, 0); }
kernel void try_syscall(device int* r [[buffer(0)]], constant long& nr [[buffer(1)]]) {
  r[0] = int(syscall(nr));
}`);

Deno.test("sim sandbox: no files, processes, network or signals at run time", async () => {
  const probe = "/tmp/mb-sim-sandbox-probe";
  await Deno.remove(probe).catch(() => {});
  // allow_libc: past the compile step, which refuses these calls, to the runner's sandbox
  using sim = await openSim({ allow_libc: 1 });
  assertEquals(sim.info().sandbox, "seccomp");
  // uname: a harmless call that the sandbox does not allow
  const uname = Deno.build.arch === "x86_64" ? 63 : 160;
  const cases: [string, RegExp][] = [
    ["try_open", /openat/],
    ["try_fopen", /openat/],
    ["try_socket", /socket/],
    ["try_fork", /clone/],
    ["try_exec", /execve/],
    ["try_system", /: \S+ \(kernels run sandboxed/],
    ["try_kill", /kill/],
    ["try_syscall", new RegExp(`#${uname}`)],
  ];
  for (const [fn, call] of cases) {
    const e = await failure(runKernel(
      sim,
      ESCAPES,
      fn,
      [
        { index: 0, length: 16 },
        { index: 1, bytes: new BigInt64Array([BigInt(uname)]) },
      ],
      ONE,
      { source_name: "escapes.metal" },
    ));
    assertEquals(e.status, "execution", fn);
    assert(
      e.message.startsWith(`kernel '${fn}' made a forbidden system call: `) && call.test(e.message),
      `${fn}: ${e.message}`,
    );
    assert(/in thread \(0,0,0\) of threadgroup \(0,0,0\)$/.test(e.message), e.message);
    await assertDeviceStillWorks(sim); // the next kernel on the same device runs
  }
  assert(!(await Deno.stat(probe).then(() => true, () => false)), "no file was created");
});
