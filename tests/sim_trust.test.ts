/**
 * Kernel code runs in the simulator's runner process and must not decide
 * anything about how it is measured. Each test here is an attack tried on
 * the real simulator: forged answers on the runner's channel (every way of
 * writing to a descriptor, guessed and duplicated descriptors, passed
 * descriptors, partial and oversized frames), rewriting the control page to
 * escape the time limit, ending its own thread, faking a fault report,
 * reading the user's environment, printing to the user's terminal. Each is
 * caught; the device runs the next kernel; and the times are real (a slow
 * kernel measures slow, a sleeping one is not CPU time).
 */
import {
  assert,
  assertDeviceStillWorks,
  assertEquals,
  bytesOf,
  failure,
  msl,
  openSim,
  runKernel,
  runOnce,
  u32,
} from "./_sim_lib.ts";
import { type Bridge, BridgeError } from "../src/backend/bridge.ts";

const ONE = { grid: [1, 1, 1], group: [1, 1, 1] } as const;
const X86 = Deno.build.arch === "x86_64";
const SYS = X86 ? { write: 1, exit: 60, exit_group: 231 } : { write: 64, exit: 93, exit_group: 94 };

// A RAN frame as the runner used to send it ({type 8, 8 bytes}: 400 ns),
// the shape of the reported attack; the runner's channel is fd 3 and its
// control page fd 5 (start_ns u64 @0, busy u32 @8, step u32 @12,
// report_len u32 @16, report @20).
const ATTACKS = msl(`
extern "C" {
long syscall(long, ...);
long write(int, const void*, unsigned long);
long writev(int, const void*, int);
long sendmsg(int, const void*, int);
long send(int, const void*, unsigned long, int);
long pwrite(int, const void*, unsigned long, long);
long read(int, void*, unsigned long);
void* mmap(void*, unsigned long, int, int, int, long);
int dup(int);
int close(int);
int clock_gettime(int, void*);
}
struct Frame { unsigned type, len; double device_ns; };
struct IoVec { const void* base; unsigned long len; };
struct MsgHdr {
  void* name; unsigned namelen; IoVec* iov; unsigned long iovlen;
  void* control; unsigned long controllen; int flags;
};
struct FdPass { unsigned long len; int level, type, fd, pad; };
struct Clock { long sec, nsec; };

static long spin(unsigned n) {
  unsigned x = 1;
  for (unsigned i = 0; i < n; ++i) x = x * 1664525u + 1013904223u;
  return x;
}

kernel void forge_syscall(device long* r [[buffer(0)]], constant long& nr [[buffer(1)]]) {
  Frame f = {8, 8, 400.0};
  r[0] = syscall(nr, 3, &f, sizeof f);
}
kernel void forge_write(device long* r [[buffer(0)]]) {
  Frame f = {8, 8, 400.0};
  r[0] = write(3, &f, sizeof f);
}
kernel void forge_after_work(device long* r [[buffer(0)]]) {
  r[1] = spin(20000000);
  Frame f = {8, 8, 400.0};
  r[0] = write(3, &f, sizeof f);
}
kernel void forge_writev(device long* r [[buffer(0)]]) {
  Frame f = {8, 8, 400.0};
  IoVec v = {&f, sizeof f};
  r[0] = writev(3, &v, 1);
}
kernel void forge_sendmsg(device long* r [[buffer(0)]]) {
  Frame f = {8, 8, 400.0};
  IoVec v = {&f, sizeof f};
  MsgHdr m = {nullptr, 0, &v, 1, nullptr, 0, 0};
  r[0] = sendmsg(3, &m, 0);
}
kernel void forge_send(device long* r [[buffer(0)]]) {
  Frame f = {8, 8, 400.0};
  r[0] = send(3, &f, sizeof f, 0);
}
kernel void forge_guess(device long* r [[buffer(0)]]) {
  Frame f = {8, 8, 400.0};
  for (int fd = 0; fd < 1024; ++fd) r[0] += write(fd, &f, sizeof f) > 0;
}
kernel void forge_dup(device long* r [[buffer(0)]]) {
  Frame f = {8, 8, 400.0};
  r[0] = write(dup(3), &f, sizeof f);
}
kernel void forge_fd_pass(device long* r [[buffer(0)]]) {
  Frame f = {8, 8, 400.0};
  IoVec v = {&f, sizeof f};
  FdPass c = {20, 1, 1, 0, 0}; // SOL_SOCKET, SCM_RIGHTS, fd 0
  MsgHdr m = {nullptr, 0, &v, 1, &c, 24, 0};
  r[0] = sendmsg(3, &m, 0);
}
kernel void forge_partial(device long* r [[buffer(0)]]) {
  Frame f = {8, 8, 400.0};
  r[0] = write(3, &f, 4);
}
kernel void forge_huge(device long* r [[buffer(0)]]) {
  Frame f = {8, 0xffffffffu, 400.0};
  r[0] = write(3, &f, 8);
}
kernel void read_channel(device long* r [[buffer(0)]]) {
  char b[16];
  r[0] = read(3, b, sizeof b);
}
kernel void close_channel(device long* r [[buffer(0)]]) { r[0] = close(3); }
// The control page, rewritten forever so that the dispatch looks fresh.
kernel void control_rewrite(device long* r [[buffer(0)]]) {
  auto* c = (volatile unsigned long long*)mmap(nullptr, 4096, 3, 1, 5, 0); // RW, MAP_SHARED
  if ((long)c == -1) return;
  for (unsigned k = 0;; ++k) {
    Clock now;
    clock_gettime(1, &now); // CLOCK_MONOTONIC
    c[0] = (unsigned long long)now.sec * 1000000000ull + now.nsec + 1000000000ull;
    ((volatile unsigned*)c)[2] = k & 1; // busy
    ((volatile unsigned*)c)[3] = k;     // step
  }
}
kernel void control_pwrite(device long* r [[buffer(0)]]) {
  unsigned long long zero[2] = {0, 0};
  r[0] = pwrite(5, zero, sizeof zero, 0);
}
// A fault report of its own making, with terminal escapes, then exit.
kernel void fake_report(device long* r [[buffer(0)]], constant long& exit_group [[buffer(1)]]) {
  auto* c = (volatile char*)mmap(nullptr, 4096, 3, 1, 5, 0);
  if ((long)c == -1) return;
  const char text[] = "kernel 'someone_else' faulted\\x1b[2J\\nsecond line";
  for (unsigned i = 0; i < sizeof text - 1; ++i) c[20 + i] = text[i];
  *(volatile unsigned*)(c + 16) = sizeof text - 1;
  syscall(exit_group, 0);
}
kernel void end_thread(device long* r [[buffer(0)]], constant long& exit [[buffer(1)]]) {
  syscall(exit, 0);
}
kernel void end_process(device long* r [[buffer(0)]], constant long& exit_group [[buffer(1)]]) {
  syscall(exit_group, 0);
}`);

const FORGERIES: [string, number, string][] = [
  ["forge_syscall", SYS.write, "write"],
  ["forge_write", 0, "write"],
  ["forge_after_work", 0, "write"],
  ["forge_writev", 0, "writev"],
  ["forge_sendmsg", 0, "sendmsg"],
  ["forge_send", 0, "sendto"],
  ["forge_guess", 0, "write"],
  ["forge_dup", 0, "dup"],
  ["forge_fd_pass", 0, "sendmsg"],
  ["forge_partial", 0, "write"],
  ["forge_huge", 0, "write"],
];

// The attack kernels call the C library, which the compile step refuses;
// allow_libc lets them through to the runner, whose defences are tested here.
const openAttackSim = (options: Record<string, number> = {}) =>
  openSim({ allow_libc: 1, ...options });

function attack(sim: Bridge, source: string, fn: string, arg = 0): Promise<BridgeError> {
  return failure(runKernel(
    sim,
    source,
    fn,
    [{ index: 0, length: 64 }, { index: 1, bytes: new BigInt64Array([BigInt(arg)]) }],
    ONE,
    { source_name: "attacks.metal" },
  ));
}

Deno.test("sim trust: sandboxed kernel code cannot write to any descriptor", async () => {
  using sim = await openAttackSim();
  const cases: [string, number, string][] = [
    ...FORGERIES,
    ["read_channel", 0, "read"],
    ["close_channel", 0, "close"],
    ["control_rewrite", 0, "mmap"],
    ["control_pwrite", 0, "pwrite64"],
  ];
  for (const [fn, arg, call] of cases) {
    const e = await attack(sim, ATTACKS, fn, arg);
    assertEquals(e.status, "execution", `${fn}: ${e.message}`);
    assert(
      e.message.startsWith(`kernel '${fn}' made a forbidden system call: ${call} (`),
      `${fn}: ${e.message}`,
    );
  }
  await assertDeviceStillWorks(sim);
});

Deno.test("sim trust: unsandboxed, a forged answer on the channel stops the run", async () => {
  using sim = await openAttackSim({ sandbox: 0 });
  for (const [fn, arg] of FORGERIES) {
    const e = await attack(sim, ATTACKS, fn, arg);
    assertEquals(e.status, "execution", `${fn}: ${e.message}`);
    assert(
      e.message.startsWith(
        `kernel '${fn}' wrote to the simulator's channel (a forged reply); stopped`,
      ),
      `${fn}: ${e.message}`,
    );
    await assertDeviceStillWorks(sim);
  }
});

Deno.test("sim trust: rewriting the control page does not escape the time limit", async () => {
  using sim = await openAttackSim({ sandbox: 0, timeout_ms: 1000 });
  const t0 = performance.now();
  const e = await attack(sim, ATTACKS, "control_rewrite");
  const took = performance.now() - t0;
  assertEquals(e.status, "timeout", e.message);
  assert(/^kernel '\S+' did not finish within 1 s \(an endless loop\?\); stopped/.test(e.message));
  // The bridge's own deadline: the time limit per dispatch, plus one.
  assert(took < 5000, `stopped after ${took} ms`);
  await assertDeviceStillWorks(sim);
});

Deno.test("sim trust: a kernel that ends its own thread or process is stopped", async () => {
  for (const sandbox of [1, 0]) {
    using sim = await openAttackSim({ sandbox, timeout_ms: 1000 });
    const t0 = performance.now();
    let e = await attack(sim, ATTACKS, "end_thread", SYS.exit);
    assertEquals(e.status, "timeout", e.message);
    assert(e.message.startsWith("kernel 'end_thread' did not finish within 1 s"), e.message);
    assert(performance.now() - t0 < 5000);
    e = await attack(sim, ATTACKS, "end_process", SYS.exit_group);
    assertEquals(e.status, "execution");
    assertEquals(
      e.message,
      "the simulator runner died (exit code 0) while running kernel 'end_process'",
    );
    await assertDeviceStillWorks(sim);
  }
});

const LATE = msl(`
extern "C" {
int pthread_create(unsigned long*, const void*, void* (*)(void*), void*);
int nanosleep(const void*, void*);
long write(int, const void*, unsigned long);
}
static void* later(void*) {
  const long t[2] = {0, 100000000}; // 100 ms
  nanosleep(t, nullptr);
  const unsigned f[4] = {8, 8, 0, 0};
  write(3, f, sizeof f);
  return nullptr;
}
kernel void late_writer(device int* r [[buffer(0)]]) {
  unsigned long id;
  r[0] = pthread_create(&id, nullptr, later, nullptr);
}
kernel void chatty(device int* r [[buffer(0)]]) {
  char line[100];
  for (int i = 0; i < 100; ++i) line[i] = i == 99 ? '\\n' : 'a' + i % 26;
  for (int i = 0; i < 50; ++i) write(2, line, sizeof line);
  __builtin_trap();
}`);

Deno.test("sim trust: unsandboxed, a write after the answer fails the next request", async () => {
  using sim = await openAttackSim({ sandbox: 0 });
  using p = await sim.compile(LATE, "late_writer", { source_name: "late.metal" });
  const run = () => runOnce(sim, p, [{ index: 0, length: 4 }], ONE);
  await run(); // answered before its thread writes
  await new Promise((r) => setTimeout(r, 400));
  const e = await failure(run());
  assertEquals(e.status, "execution");
  assert(
    e.message.startsWith(
      "kernel code wrote to the simulator's channel (a forged message); stopped",
    ),
    e.message,
  );
  await assertDeviceStillWorks(sim);
});

Deno.test("sim trust: a runner's long output shows its first 2 KB, escaped", async () => {
  using sim = await openAttackSim({ sandbox: 0 });
  const e = await failure(
    runKernel(sim, LATE, "chatty", [{ index: 0, length: 4 }], ONE, { source_name: "late.metal" }),
  );
  const [, note] = e.message.split(" \u2014 runner output ");
  assert(note?.startsWith("(first 2048 of 5000 bytes): abcdefghijklmnopqrstuvwxyzabc"), e.message);
  // 2048 bytes, each newline shown as two characters
  assertEquals(note.length, "(first 2048 of 5000 bytes): ".length + 2048 + 20);
  assert(![...e.message].some((c) => c < " "), "one line, no control characters");
});

Deno.test("sim trust: text a kernel chooses reaches an error escaped, on one line", async () => {
  using sim = await openSim();
  // A barrier called directly with a file name of its own making.
  const src = msl(`
kernel void odd_site(device float* y [[buffer(0)]], uint i [[thread_index_in_threadgroup]]) {
  if (i < 2) __mb::rt()->barrier(0, "evil\\x1b[2J\\nfile.metal", 1, 1);
  if (i > 100) threadgroup_barrier(mem_flags::mem_threadgroup);
  y[i] = 1;
}`);
  const e = await failure(
    runKernel(sim, src, "odd_site", [{ index: 0, length: 64 }], {
      grid: [4, 1, 1],
      group: [4, 1, 1],
    }),
  );
  assertEquals(e.status, "execution");
  assert(e.message.includes("at evil\\x1b[2J\\nfile.metal:1 (first: thread (0,0,0))"), e.message);
  assert(![...e.message].some((c) => c < " "), e.message);
});

Deno.test("sim trust: a fake fault report only names itself, escaped on one line", async () => {
  using sim = await openAttackSim({ sandbox: 0 });
  const e = await attack(sim, ATTACKS, "fake_report", SYS.exit_group);
  assertEquals(e.status, "execution");
  assertEquals(e.message, "kernel 'someone_else' faulted\\x1b[2J\\nsecond line");
  await assertDeviceStillWorks(sim);
});

const SECRETS = msl(`
extern "C" {
char* getenv(const constant char*);  // string literals are in the constant address space
long write(int, const void*, unsigned long);
int open(const char*, int, ...);
long read(int, void*, unsigned long);
int snprintf(char*, unsigned long, const constant char*, ...);
}
kernel void env_copy(device char* out [[buffer(0)]], device uint* count [[buffer(2)]]) {
  const constant char* NAMES[] = {"MB_TRUST_SECRET", "HOME", "PATH", "USER", "LANG"};
  unsigned k = 0;
  for (const constant char* name : NAMES)
    if (const char* v = getenv(name)) {
      ++count[0];
      for (; *v && k < 4000; ++v) out[k++] = *v;
    }
}
kernel void env_print(device uint* r [[buffer(0)]]) {
  const char* v = getenv("MB_TRUST_SECRET");
  char fallback[] = "no secret here";
  const char* say = v ? v : fallback;
  unsigned long n = 0;
  while (say[n]) ++n;
  write(2, say, n);
  __builtin_trap();
}
// The harness's own environment, through /proc.
kernel void parent_env(device char* out [[buffer(0)]], constant long& harness [[buffer(1)]]) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/environ", harness);
  char buf[4000];
  int fd = open(path, 0);
  long n = fd < 0 ? 0 : read(fd, buf, sizeof buf);
  for (long i = 0; i < n; ++i) out[i] = buf[i] ? buf[i] : ' ';
}`);

Deno.test("sim trust: kernel code never sees the user's environment", async () => {
  const secret = `sk-${crypto.randomUUID()}`;
  for (const sandbox of [1, 0]) {
    const { outcomes: [copy, print, parent], stdout, stderr } = await harness(
      { sandbox },
      SECRETS,
      ["env_copy", "env_print", "parent_env"],
      { MB_TRUST_SECRET: secret },
    );
    assertEquals(copy.error, undefined);
    assert(!copy.out.includes(secret), `sandbox=${sandbox}: the secret reached the output`);
    assertEquals(copy.count, 0, "the runner's environment is empty");
    const m = failed(print, "execution");
    assert(!m.includes(secret), m);
    assert(!stdout.includes(secret) && !stderr.includes(secret));
    if (sandbox) {
      // Nor through the harness's /proc/<pid>/environ.
      const p = failed(parent, "execution");
      assert(p.includes("forbidden system call: openat"), p);
    } else {
      // Unsandboxed, what it printed is in the message (escaped): without the secret.
      assert(/runner output \(\d+ bytes\): no secret here$/.test(m), m);
    }
  }
});

Deno.test("sim trust: what a kernel prints never reaches the harness's terminal", async () => {
  const mark = `MB-LEAK-${crypto.randomUUID().slice(0, 8)}`;
  const src = msl(`
extern "C" {
long write(int, const void*, unsigned long);
int puts(const char*);
int dprintf(int, const constant char*, ...);
}
kernel void speak(device int* r [[buffer(0)]]) {
  const char m[] = "${mark}\\x1b[7m\\n";
  write(2, m, sizeof m - 1);
  write(1, m, sizeof m - 1);
  dprintf(2, "%s", m);
  puts(m);
}
kernel void speak_and_fault(device int* r [[buffer(0)]]) {
  const char m[] = "${mark}\\x1b[7m\\n";
  write(2, m, sizeof m - 1);
  __builtin_trap();
}`);
  const { outcomes: [speak, fault], stdout, stderr } = await harness({ sandbox: 0 }, src, [
    "speak",
    "speak_and_fault",
  ]);
  assertEquals(speak.error, undefined);
  assert(!stdout.includes(mark) && !stderr.includes(mark), `leaked:\n${stdout}\n${stderr}`);
  const message = failed(fault, "execution");
  assert(message.startsWith("kernel 'speak_and_fault' faulted: SIGILL"), message);
  assert(
    message.endsWith(` \u2014 runner output (${mark.length + 5} bytes): ${mark}\\x1b[7m\\n`),
    message,
  );
});

const SLOW = msl(`
extern "C" int nanosleep(const void*, void*);
kernel void spin(device uint* r [[buffer(0)]], constant uint& n [[buffer(1)]]) {
  uint x = 1;
  for (uint i = 0; i < n; ++i) x = x * 1664525u + 1013904223u;
  r[0] = x;
}
kernel void nap(device uint* r [[buffer(0)]]) {
  const long t[2] = {0, 30000000}; // 30 ms
  r[0] = nanosleep(t, nullptr);
}`);

Deno.test("sim trust: times are measured from outside: slow is slow, sleep is no CPU time", async () => {
  using sim = await openAttackSim();
  const measure = async (fn: string, n: number) => {
    using p = await sim.compile(SLOW, fn, { source_name: "slow.metal" });
    using out = sim.buffer(16);
    using cmd = sim.command();
    cmd.setPipeline(p);
    cmd.setBuffer(0, out);
    cmd.setBytes(1, bytesOf(new Uint32Array([n])));
    cmd.dispatch("threads", [1, 1, 1], [1, 1, 1]);
    // The fastest of several samples: other processes only ever add time.
    const { wallNs, deviceNs } = await cmd.run(5, 1);
    return { wall: Math.min(...wallNs), device: Math.min(...deviceNs) };
  };
  const quick = await measure("spin", 1);
  const slow = await measure("spin", 300_000_000);
  assert(slow.wall > 10e6 && slow.wall > 20 * quick.wall, `wall ${slow.wall} vs ${quick.wall}`);
  assert(
    slow.device > 10e6 && slow.device > 20 * quick.device,
    `device ${slow.device} vs ${quick.device}`,
  );
  const nap = await measure("nap", 0);
  assert(nap.wall >= 30e6, `a 30 ms sleep took ${nap.wall} ns`);
  assert(nap.device < 5e6, `sleeping is not CPU time: ${nap.device} ns`);
});

// ---- the harness in a subprocess ------------------------------------------
//
// What reaches a harness's terminal, and what is in its environment, needs a
// harness process of its own: this file, run as a script.

/** What one kernel did in the harness: binding 0 is a 4 KB buffer, 1 the
 * harness's pid (i64), 2 a uint. */
interface Outcome {
  fn: string;
  error?: { status: string; message: string };
  out: string; // binding 0 as text, up to its first NUL
  count: number; // binding 2
}

/** Runs kernels `fns` of `source` in a harness process of their own. */
async function harness(
  options: Record<string, number>,
  source: string,
  fns: string[],
  env: Record<string, string> = {},
): Promise<{ outcomes: Outcome[]; stdout: string; stderr: string }> {
  const dir = await Deno.makeTempDir();
  try {
    const result = `${dir}/result.json`;
    await Deno.writeTextFile(`${dir}/spec.json`, JSON.stringify({ options, source, fns, result }));
    const run = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, `${dir}/spec.json`],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(run.stdout);
    const stderr = new TextDecoder().decode(run.stderr);
    assert(run.success, `the harness failed:\n${stderr}`);
    const outcomes = JSON.parse(await Deno.readTextFile(result)) as Outcome[];
    return { outcomes, stdout, stderr };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The outcome's error message; the run must have failed with `status`. */
function failed(o: Outcome, status: string): string {
  assert(o.error, `${o.fn}: ran without the expected ${status} error`);
  assertEquals(o.error.status, status, `${o.fn}: ${o.error.message}`);
  return o.error.message;
}

async function runInHarness(sim: Bridge, source: string, fn: string): Promise<Outcome> {
  const o: Outcome = { fn, out: "", count: 0 };
  try {
    using p = await sim.compile(source, fn, { source_name: "harness.metal" });
    using out = sim.buffer(4096);
    using count = sim.buffer(4);
    using cmd = sim.command();
    cmd.setPipeline(p);
    cmd.setBuffer(0, out);
    cmd.setBytes(1, bytesOf(new BigInt64Array([BigInt(Deno.pid)])));
    cmd.setBuffer(2, count);
    cmd.dispatch("threads", [1, 1, 1], [1, 1, 1]);
    await cmd.run(1, 1);
    const text = new TextDecoder().decode(out.read());
    o.out = text.slice(0, (text + "\0").indexOf("\0"));
    o.count = u32(count.read())[0];
  } catch (e) {
    if (!(e instanceof BridgeError)) throw e;
    o.error = { status: e.status, message: e.message };
  }
  return o;
}

if (import.meta.main) {
  const spec = JSON.parse(await Deno.readTextFile(Deno.args[0]));
  using sim = await openAttackSim(spec.options);
  const outcomes: Outcome[] = [];
  for (const fn of spec.fns as string[]) outcomes.push(await runInHarness(sim, spec.source, fn));
  await Deno.writeTextFile(spec.result, JSON.stringify(outcomes));
}
