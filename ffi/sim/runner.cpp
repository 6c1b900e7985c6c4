// mb_sim_runner: the process that runs simulated kernels, so that a kernel
// that faults or never ends takes down this process and not the harness.
//
// Spawned by the bridge (posix_spawn, empty environment) with a socket
// (fd 3), a life pipe (fd 4) and a control page (fd 5). It loads compiled
// kernels (dlopen, after checking that loading runs none of their code), maps
// the bridge's buffers (memfds) with a large inaccessible reservation after
// each one, and serves LOAD/RUN requests on this (the control) thread. Kernel
// code runs only on the executor's worker threads (scheduler.h). Before the
// first RUN the runner enters its sandbox and each worker thread stacks a
// stricter filter that leaves it no file descriptor (sandbox.h); a
// sandboxed runner loads no more kernels (the bridge starts a fresh one).
//
// A fault is reported by an async-signal-safe handler on an alternate stack
// into the control page, then the process exits; the bridge reads the report
// once the runner is gone.
//
// A pointer argument the dispatch leaves unbound (Metal allows it when the
// kernel does not use it) points into the middle of an inaccessible
// reservation of its own, so any use faults and the report names it.
#include "elf_check.h"
#include "ipc.h"
#include "sandbox.h"
#include "scheduler.h"

#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <thread>

namespace {

using mbipc::Reader;
using mbipc::Writer;

constexpr int kStatusArgument = 1;    // MB_E_ARGUMENT
constexpr int kStatusUnavailable = 2; // MB_E_UNAVAILABLE
constexpr int kStatusCompile = 3;     // MB_E_COMPILE
constexpr int kStatusExecution = 5;   // MB_E_EXECUTION
constexpr int kStatusInternal = 8;    // MB_E_INTERNAL
constexpr size_t kGuardBefore = 64 * 1024;
// Inaccessible space after each buffer: any uint index times a 16-byte
// element lands in it, so a far out-of-bounds access faults and is named.
constexpr size_t kGuardAfter = size_t(64) << 30;
constexpr size_t kGuardAfterSmall = size_t(1) << 20;
// Each side of an unbound pointer: any 32-bit index (signed or unsigned)
// times an element of up to 32 bytes (every MSL scalar and vector, ulong4
// included) stays inside the reservation. Larger strides (float4x4, structs)
// can step out of it, as 64-bit offsets can; like any pointer a kernel
// forges, that is for the sandbox to contain, not for this reservation.
constexpr size_t kUnboundHalf = size_t(128) << 30;
constexpr unsigned kMaxThreadgroupMemory = 32768;

// The slack around a buffer's data holds mbipc::kCanaryWord (ipc.h).
constexpr unsigned char kCanary[4] = {mbipc::kCanaryWord & 0xFF, (mbipc::kCanaryWord >> 8) & 0xFF,
                                      (mbipc::kCanaryWord >> 16) & 0xFF, mbipc::kCanaryWord >> 24};

struct Buffer {
  unsigned char *base = nullptr; // the data
  size_t length = 0;
  unsigned char *map = nullptr; // the memfd's mapping: base - front
  size_t map_len = 0;
  unsigned char *reservation = nullptr;
  size_t reservation_len = 0;
};

struct Pipeline {
  void *handle = nullptr;
  mbsim::Kernel kernel;
  std::vector<mb_param> params;
};

// An unbound pointer's reservation, per buffer index, made when first needed.
struct Unbound {
  unsigned char *region = nullptr; // 2 * half bytes, PROT_NONE
  size_t half = 0;                 // the pointer is region + half
};
Unbound g_unbound[MB_SIM_MAX_BINDINGS];

std::map<uint32_t, Buffer> g_buffers;
std::map<uint32_t, std::unique_ptr<Pipeline>> g_pipelines;
mbipc::Control *g_control = nullptr;
std::unique_ptr<mbsim::Executor> g_exec;
const char *volatile g_loading = nullptr; // kernel whose .so is being loaded
const Pipeline *g_running = nullptr;      // pipeline of the dispatch in progress
bool g_sandbox = true;                    // enter the sandbox before running kernels
bool g_sandboxed = false;

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// ---- async-signal-safe text ------------------------------------------
struct Text {
  char buf[2048];
  size_t n = 0;
  Text &s(const char *p) {
    while (p && *p && n + 1 < sizeof buf) buf[n++] = *p++;
    return *this;
  }
  Text &u(unsigned long long v) {
    char t[24];
    int k = 0;
    do t[k++] = static_cast<char>('0' + v % 10); while ((v /= 10) && k < 24);
    while (k > 0 && n + 1 < sizeof buf) buf[n++] = t[--k];
    return *this;
  }
  Text &i(long long v) {
    if (v < 0) s("-");
    auto m = static_cast<unsigned long long>(v);
    return u(v < 0 ? 0ull - m : m);
  }
  Text &hex(unsigned long long v) {
    s("0x");
    char t[16];
    int k = 0;
    do t[k++] = "0123456789abcdef"[v & 15]; while ((v >>= 4) && k < 16);
    while (k > 0 && n + 1 < sizeof buf) buf[n++] = t[--k];
    return *this;
  }
  Text &xyz(const unsigned *p) { return s("(").u(p[0]).s(",").u(p[1]).s(",").u(p[2]).s(")"); }
};

const char *base_name(const char *path) {
  const char *b = path;
  for (const char *p = path; p && *p; ++p)
    if (*p == '/') b = p + 1;
  return b;
}

const char *signal_text(int sig, int code) {
  switch (sig) {
  case SIGSEGV: return "SIGSEGV (invalid memory access)";
  case SIGBUS: return "SIGBUS (bad memory access)";
  case SIGFPE:
    return code == FPE_INTDIV ? "SIGFPE (integer division by zero)"
                              : "SIGFPE (arithmetic exception)";
  case SIGILL: return "SIGILL (illegal instruction: __builtin_trap or unreachable code)";
  case SIGTRAP: return "SIGTRAP (trap)";
  case SIGABRT: return "SIGABRT (abort)";
  case SIGSYS: return "SIGSYS (forbidden system call)";
  default: return "a fatal signal";
  }
}

void buffer_name(Text &t, int i, const mb_param *names, size_t n_names) {
  t.s("buffer(").u(static_cast<unsigned>(i)).s(")");
  for (size_t k = 0; k < n_names; ++k)
    if (names[k].kind == MB_PARAM_BUFFER && names[k].index == i && names[k].name &&
        names[k].name[0])
      t.s(" '").s(names[k].name).s("'");
}

// Whether addr lies in the reservation of a pointer the dispatch left
// unbound: its index, and the offset from the pointer.
bool unbound_at(uintptr_t addr, const mb_dispatch *d, int *index, long long *offset) {
  for (int i = 0; i < MB_SIM_MAX_BINDINGS; ++i) {
    const Unbound &u = g_unbound[i];
    auto base = reinterpret_cast<uintptr_t>(u.region);
    if (!u.region || addr < base || addr - base >= 2 * u.half) continue;
    // An index bound in this dispatch: a wild pointer reached an old reservation.
    if (d->buffers[i] != u.region + u.half) return false;
    *index = i;
    *offset = static_cast<long long>(addr - base) - static_cast<long long>(u.half);
    return true;
  }
  return false;
}

// "[[buffer(2)]] 'bias'", as the bridge names arguments.
void argument_name(Text &t, int i) {
  t.s("[[buffer(").u(static_cast<unsigned>(i)).s(")]]");
  if (const Pipeline *p = g_running)
    for (const mb_param &m : p->params)
      if (m.kind == MB_PARAM_BUFFER && m.index == i && m.name && m.name[0]) {
        t.s(" '").s(m.name).s("'");
        break;
      }
}

// Names the memory a faulting address belongs to, or lies just outside of.
void describe_address(Text &t, uintptr_t addr, const mbsim::FaultInfo &fi) {
  const Pipeline *p = g_running;
  const mb_param *names = p ? p->params.data() : nullptr;
  size_t n_names = p ? p->params.size() : 0;
  const mb_dispatch *d = fi.dispatch;
  int unbound;
  long long offset;
  if (unbound_at(addr, d, &unbound, &offset)) {
    t.s(" (byte offset ").i(offset).s(" through ");
    argument_name(t, unbound);
    t.s(", which is not bound)");
    return;
  }
  for (int i = 0; i < MB_SIM_MAX_BINDINGS; ++i) {
    if (!d->buffers[i]) continue;
    auto base = reinterpret_cast<uintptr_t>(d->buffers[i]);
    uintptr_t len = d->buffer_lengths[i];
    if (addr >= base + len && addr - (base + len) < kGuardAfter) {
      t.s(" (").u(addr - base - len).s(" bytes past the end of ");
      buffer_name(t, i, names, n_names);
      t.s(", ").u(len).s(" bytes long; byte offset ").u(addr - base).s(")");
      return;
    }
    if (addr < base && base - addr <= kGuardBefore + 4096) {
      t.s(" (").u(base - addr).s(" bytes before the start of ");
      buffer_name(t, i, names, n_names);
      t.s(", ").u(len).s(" bytes long)");
      return;
    }
    if (addr >= base && addr < base + len) {
      t.s(" (byte offset ").u(addr - base).s(" of ");
      buffer_name(t, i, names, n_names);
      t.s(", ").u(len).s(" bytes long)");
      return;
    }
  }
  auto arena = reinterpret_cast<uintptr_t>(fi.arena);
  uintptr_t end = arena + (fi.arena_bytes + 15) / 16 * 16;
  if (fi.arena && addr >= end && addr - end < 64 * 1024) {
    t.s(" (").u(addr - arena - fi.arena_bytes).s(" bytes past the end of threadgroup memory, ")
        .u(fi.arena_bytes).s(" bytes long)");
    return;
  }
  if (fi.arena && addr >= arena && addr < end) {
    t.s(" (byte offset ").u(addr - arena).s(" of threadgroup memory)");
    return;
  }
  t.s(" (not inside any bound buffer)");
}

void where(Text &t, const mbsim::FaultInfo &fi) {
  if (fi.in_thread) t.s(" in thread ").xyz(fi.thread).s(" of");
  else t.s(" in");
  t.s(" threadgroup ").xyz(fi.group);
}

// Leaves the report in the control page and ends the process (a worker
// thread may not write to a descriptor). Only the first reporting thread
// gets through; others wait for the exit.
[[noreturn]] void report_and_exit(Text &t) {
  if (mbipc::Control *c = g_control) {
    size_t n = t.n < sizeof c->report ? t.n : sizeof c->report;
    std::memcpy(c->report, t.buf, n);
    c->report_len.store(static_cast<uint32_t>(n), std::memory_order_release);
  }
  _exit(70);
}

std::atomic<int> g_reporting{0};
void claim_report() {
  if (g_reporting.exchange(1)) {
    for (;;) { // another thread is already reporting; nanosleep is allowed in the sandbox
      timespec ts{1, 0};
      nanosleep(&ts, nullptr);
    }
  }
}

// A memory fault's access: 1 a write, 0 a read, -1 unknown.
int fault_access(int sig, const siginfo_t *si, void *ctx) {
#if defined(__x86_64__)
  // A general-protection fault (x86's misaligned SSE access, among others)
  // reports no address.
  if (sig == SIGSEGV && si->si_code == SI_KERNEL) return -1;
  return (static_cast<ucontext_t *>(ctx)->uc_mcontext.gregs[REG_ERR] & 2) ? 1 : 0;
#else
  (void)sig, (void)si, (void)ctx;
  return -1;
#endif
}

// A use of a pointer argument the dispatch left unbound.
void report_unbound(Text &t, const mbsim::FaultInfo &fi, int index, long long offset,
                    int access) {
  t.s("kernel '").s(fi.kernel).s("' ");
  t.s(access == 1 ? "wrote to " : access == 0 ? "read " : "accessed ");
  argument_name(t, index);
  t.s(", which is not bound (byte offset ").i(offset).s(" through it),");
  where(t, fi);
  t.s(" \u2014 fix: bind a buffer at index ").u(static_cast<unsigned>(index));
  t.s(" (Metal leaves unbound arguments undefined)");
}

void on_fault(int sig, siginfo_t *si, void *ctx) {
  claim_report();
  Text t;
  auto addr = reinterpret_cast<uintptr_t>(si->si_addr);
  mbsim::FaultInfo fi;
  int unbound;
  long long offset;
  const bool in_kernel = mbsim::current_fault_info(si->si_addr, &fi);
  if (in_kernel && (sig == SIGSEGV || sig == SIGBUS) && !fi.stack_overflow &&
      !(sig == SIGSEGV && si->si_code == SI_KERNEL) &&
      unbound_at(addr, fi.dispatch, &unbound, &offset)) {
    report_unbound(t, fi, unbound, offset, fault_access(sig, si, ctx));
  } else if (in_kernel) {
    t.s("kernel '").s(fi.kernel).s("' ");
    if (sig == SIGSYS) {
      const char *name = mbsim::syscall_name(si->si_syscall);
      t.s("made a forbidden system call: ");
      if (name) t.s(name);
      else t.s("#").u(static_cast<unsigned>(si->si_syscall));
      t.s(" (kernels run sandboxed: no files, processes or network)");
    } else {
      t.s("faulted: ").s(signal_text(sig, si->si_code));
    }
    if (fi.stack_overflow) {
      t.s(": stack overflow (each simulated thread has ").u(fi.stack_kb).s(" KB of stack)");
    } else if (sig == SIGSEGV || sig == SIGBUS) {
      int access = fault_access(sig, si, ctx);
      if (sig == SIGSEGV && si->si_code == SI_KERNEL) t.s(" at an invalid or misaligned address");
      else t.s(access == 1 ? " writing " : access == 0 ? " reading " : " at ").hex(addr);
      if (!(sig == SIGSEGV && si->si_code == SI_KERNEL)) describe_address(t, addr, fi);
    }
    where(t, fi);
  } else if (const char *k = g_loading) {
    t.s("kernel '").s(k).s("' faulted while loading: ").s(signal_text(sig, si->si_code));
  } else if (sig == SIGSYS) {
    const char *name = mbsim::syscall_name(si->si_syscall);
    t.s("simulator runner: forbidden system call ");
    if (name) t.s(name);
    else t.s("#").u(static_cast<unsigned>(si->si_syscall));
    t.s(" outside kernel code (a simulator bug)");
  } else {
    t.s("simulator runner crashed: ").s(signal_text(sig, si->si_code)).s(" at ").hex(addr);
  }
  report_and_exit(t);
}

// A type as clang names it in C++ for OpenCL, in MSL's words: __global
// float4 -> device float4; 'float const __global __attribute__((
// ext_vector_type(4)))' (a template's spelling) -> 'const device float4';
// '__mb_tgt0' (aka '__local float[16]'), the compile step's alias of a
// threadgroup array -> 'threadgroup float[16]'. Fixed buffers only: the
// kernel's state may be corrupt when this runs.
void msl_words(Text &t, const char *p, const char *end) {
  static const char *const from[] = {"__global", "__local", "__constant", "__private",
                                     "__generic"};
  static const char *const to[] = {"device", "threadgroup", "constant", "thread", ""};
  char scalar[32] = {0};
  const char *vec = strstr(p, "__attribute__((ext_vector_type(");
  if (vec && vec >= end) vec = nullptr;
  bool first = true;
  for (const char *w = p; w < end;) {
    while (w < end && *w == ' ') ++w;
    const char *e = w;
    while (e < end && *e != ' ') ++e;
    if (e == w) break;
    if (vec && w == vec) break; // the vector attribute: printed with the scalar below
    size_t n = static_cast<size_t>(e - w);
    const char *word = nullptr;
    for (size_t k = 0; k < sizeof(from) / sizeof(*from) && !word; ++k)
      if (n == strlen(from[k]) && strncmp(w, from[k], n) == 0) word = to[k];
    bool cv = (n == 5 && strncmp(w, "const", 5) == 0) || (n == 8 && strncmp(w, "volatile", 8) == 0);
    if (vec && !word && !cv && !scalar[0] && n < sizeof scalar) {
      memcpy(scalar, w, n); // the element type, moved after the qualifiers
    } else if (!word || *word) {
      if (!first) t.s(" ");
      first = false;
      if (word) t.s(word);
      else for (const char *c = w; c < e; ++c) { char b[2] = {*c, 0}; t.s(b); }
    }
    w = e;
  }
  if (vec && scalar[0]) {
    if (!first) t.s(" ");
    t.s(scalar);
    const char *d = vec + strlen("__attribute__((ext_vector_type(");
    for (; d < end && *d >= '0' && *d <= '9'; ++d) { char b[2] = {*d, 0}; t.s(b); }
  }
}
void msl_type(Text &t, const char *type) {
  const char *aka = strstr(type, "(aka '");
  const bool alias = strncmp(type, "'__mb_", 6) == 0 && aka;
  if (alias) type = aka + 5;
  if (*type != '\'') return msl_words(t, type, type + strlen(type));
  const char *close = strchr(type + 1, '\'');
  if (!close) return msl_words(t, type, type + strlen(type));
  t.s("'");
  msl_words(t, type + 1, close);
  t.s("'");
  if (!alias && close[1]) t.s(close + 1); // " (vector of 4 'float' values)"
}

// -fsanitize=alignment found a misaligned access in kernel code.
void report_misaligned(const char *file, unsigned line, unsigned column, const char *type,
                       unsigned alignment, const void *address, unsigned access) {
  claim_report();
  Text t;
  mbsim::FaultInfo fi;
  auto addr = reinterpret_cast<uintptr_t>(address);
  if (access == MB_ACCESS_INDEX) {
    // -fsanitize=array-bounds: `address` is the index.
    bool known = mbsim::current_fault_info(nullptr, &fi);
    auto index = static_cast<long>(addr);
    t.s("kernel '").s(known ? fi.kernel : "?").s("' used index ");
    if (index < 0) t.s("-").u(static_cast<unsigned long>(-index));
    else t.u(static_cast<unsigned long>(index));
    t.s(" of an array of type ");
    msl_type(t, type); // (quoted by clang)
    t.s(", outside it, at ").s(base_name(file)).s(":").u(line).s(":").u(column);
    if (known) where(t, fi);
    t.s(" — fix: keep the index within the array (on a GPU this reads or writes other "
        "memory silently)");
    report_and_exit(t);
  }
  bool known = mbsim::current_fault_info(address, &fi);
  t.s("kernel '").s(known ? fi.kernel : "?").s("' made a misaligned ");
  t.s(access == MB_ACCESS_STORE ? "store" : "load").s(" of ");
  msl_type(t, type);
  t.s(" at ").hex(addr);
  t.s(": it needs ").u(alignment).s("-byte alignment");
  if (known) describe_address(t, addr, fi);
  t.s(", at ").s(base_name(file)).s(":").u(line).s(":").u(column);
  if (known) where(t, fi);
  report_and_exit(t);
}

// Each OS thread that runs kernels handles faults on its own signal stack
// (a fiber's stack may be the one that overflowed).
void install_altstack() {
  constexpr size_t kSize = 64 * 1024;
  void *p = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;
  stack_t ss{};
  ss.ss_sp = p;
  ss.ss_size = kSize;
  sigaltstack(&ss, nullptr);
}

void install_fault_handlers() {
  install_altstack();
  struct sigaction sa {};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigfillset(&sa.sa_mask);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS})
    sigaction(sig, &sa, nullptr);
}

// The nonce of the request being answered (every answer echoes it first).
uint64_t g_nonce = 0;

Writer answer() {
  Writer w;
  w.put<uint64_t>(g_nonce);
  return w;
}

bool reply_error(int status, const std::string &msg) {
  Writer w = answer();
  w.put<int32_t>(status);
  w.str(msg);
  return mbipc::send_frame(mbipc::kSocketFd, mbipc::ERROR, w.data());
}

// ---- requests ---------------------------------------------------------

// Lays out the kernel's threadgroup variables (from its mb_tg section) and
// tells the kernel their offsets. The arena's static part, in bytes.
unsigned layout_threadgroup_vars(const mb_kernel_info &info, std::string *err) {
  unsigned size[MB_SIM_MAX_TG_VARS] = {}, align[MB_SIM_MAX_TG_VARS] = {};
  unsigned count = 0;
  for (const mb_tg_entry *e = info.tg_begin; e && e < info.tg_end; ++e) {
    if (e->id >= MB_SIM_MAX_TG_VARS) {
      *err = "too many threadgroup variables";
      return 0;
    }
    // A template kernel instantiated twice lists a variable twice.
    size[e->id] = std::max(size[e->id], e->size);
    align[e->id] = std::max(align[e->id], e->align);
    count = std::max(count, e->id + 1);
  }
  unsigned off = 0;
  for (unsigned i = 0; i < count; ++i) {
    unsigned a = std::max(16u, align[i]);
    off = (off + a - 1) / a * a;
    info.tg_offsets[i] = off;
    off += size[i];
  }
  return (off + 15) / 16 * 16;
}

bool handle_load(Reader &r) {
  g_nonce = r.get<uint64_t>();
  auto id = r.get<uint32_t>();
  std::string path = r.str(), name = r.str();
  if (!r.ok()) return reply_error(kStatusInternal, "simulator: malformed LOAD");
  if (g_sandboxed)
    return reply_error(kStatusInternal, "simulator: a sandboxed runner loads no kernels");
  std::string why;
  if (!mbsim::elf_is_inert(path, &why))
    return reply_error(kStatusCompile, "compiled kernel '" + name + "' refused: " + why);
  auto p = std::make_unique<Pipeline>();
  p->kernel.name = name;
  g_loading = p->kernel.name.c_str();
  p->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  g_loading = nullptr;
  if (!p->handle) {
    const char *e = dlerror();
    return reply_error(kStatusCompile, "cannot load compiled kernel '" + name + "': " +
                                           (e ? e : "unknown error"));
  }
  auto *info = static_cast<const mb_kernel_info *>(dlsym(p->handle, "mb_kernel_info_v"));
  auto run = reinterpret_cast<mb_kernel_run_fn>(dlsym(p->handle, "mb_kernel_run"));
  if (!info || !run || info->abi != MB_SIM_RT_ABI || !info->rt || !info->tg_offsets) {
    dlclose(p->handle);
    return reply_error(kStatusCompile, "compiled kernel '" + name +
                                           "' does not match this simulator; recompile it");
  }
  *info->rt = mbsim::runtime_table(report_misaligned);
  std::string err;
  unsigned static_tg = layout_threadgroup_vars(*info, &err);
  if (!err.empty()) {
    dlclose(p->handle);
    return reply_error(kStatusCompile, "kernel '" + name + "': " + err);
  }
  p->kernel.run = run;
  p->kernel.static_tg_bytes = static_tg;
  p->kernel.uses_sync = info->sync_begin != info->sync_end;
  p->params.assign(info->params, info->params + info->n_params);
  Writer w = answer();
  w.put<uint32_t>(static_tg);
  w.put<uint32_t>(info->max_total_threads);
  w.put<uint32_t>(info->n_params);
  for (const mb_param &m : p->params) {
    w.put<uint16_t>(m.kind);
    w.put<uint16_t>(m.index);
    w.put<uint32_t>(m.min_bytes);
    w.str(m.name ? m.name : "");
  }
  g_pipelines[id] = std::move(p);
  return mbipc::send_frame(mbipc::kSocketFd, mbipc::LOADED, w.data());
}

void handle_unload(Reader &r) {
  auto it = g_pipelines.find(r.get<uint32_t>());
  if (it == g_pipelines.end()) return;
  dlclose(it->second->handle);
  g_pipelines.erase(it);
}

void handle_buffer_add(Reader &r, int fd) {
  auto id = r.get<uint32_t>();
  auto length = r.get<uint64_t>();
  auto front = r.get<uint64_t>();
  auto map_len = r.get<uint64_t>();
  if (fd < 0 || !r.ok() || front + length > map_len) return;
  Buffer b;
  for (size_t after : {kGuardAfter, kGuardAfterSmall}) {
    size_t total = kGuardBefore + map_len + after;
    void *res = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) continue;
    auto *map = static_cast<unsigned char *>(res) + kGuardBefore;
    if (mmap(map, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
      munmap(res, total);
      continue;
    }
    b = Buffer{map + front, length, map, map_len, static_cast<unsigned char *>(res), total};
    break;
  }
  close(fd);
  if (b.base) g_buffers[id] = b;
}

void handle_buffer_free(Reader &r) {
  auto it = g_buffers.find(r.get<uint32_t>());
  if (it == g_buffers.end()) return;
  munmap(it->second.reservation, it->second.reservation_len);
  g_buffers.erase(it);
}

// The address an unbound pointer argument at `index` gets (null if no
// address space is left).
unsigned char *unbound_pointer(int index) {
  Unbound &u = g_unbound[index];
  for (size_t half : {kUnboundHalf, kGuardAfterSmall}) {
    if (u.region) break;
    void *r =
        mmap(nullptr, 2 * half, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r != MAP_FAILED) u = Unbound{static_cast<unsigned char *>(r), half};
  }
  return u.region ? u.region + u.half : nullptr;
}

struct Step {
  mbsim::DispatchJob job;
  const Pipeline *pipeline = nullptr;
  std::vector<std::pair<int, Buffer *>> buffers;      // bound memfd buffers, by index
  std::vector<std::unique_ptr<unsigned char[]>> bytes; // setBytes copies
};

// Finds the first slack byte that is not the canary any more (its offset
// from the data's start: negative before it) and restores the canary.
bool changed_slack(Buffer &b, long long *offset) {
  long long first = -1;
  size_t front = static_cast<size_t>(b.base - b.map);
  auto check = [&](size_t from, size_t to) {
    for (size_t o = from; o < to; ++o)
      if (b.map[o] != kCanary[o % 4]) {
        if (first < 0) first = static_cast<long long>(o);
        b.map[o] = kCanary[o % 4];
      }
  };
  // The front slack is up to a page: compare words first.
  const uint64_t word = uint64_t(mbipc::kCanaryWord) << 32 | mbipc::kCanaryWord;
  size_t o = 0;
  for (; o + 8 <= front; o += 8) {
    uint64_t v;
    std::memcpy(&v, b.map + o, 8);
    if (v != word) break;
  }
  check(o, front);
  check(front + b.length, b.map_len);
  *offset = first - static_cast<long long>(front);
  return first >= 0;
}

// Writes that missed the guard pages (within a buffer's last page, or
// before its start) show as a changed canary: reported without a thread.
bool check_slack(const Step &s, std::string *err) {
  for (auto [index, b] : s.buffers) {
    long long off;
    if (!changed_slack(*b, &off)) continue;
    Text t;
    t.s("kernel '").s(s.pipeline->kernel.name.c_str()).s("' wrote ");
    if (off >= 0) t.s("past the end of ");
    else t.u(static_cast<unsigned long long>(-off)).s(" bytes before the start of ");
    buffer_name(t, index, s.pipeline->params.data(), s.pipeline->params.size());
    t.s(", ").u(b->length).s(" bytes long");
    if (off >= 0) t.s(", at byte offset ").u(static_cast<unsigned long long>(off));
    t.s(" (the write stayed within the buffer's memory page, so no fault named the thread)");
    t.buf[t.n] = 0;
    *err = t.buf;
    return false;
  }
  return true;
}

bool parse_step(Reader &r, Step &s, std::string *err) {
  auto pid = r.get<uint32_t>();
  auto mode = r.get<uint32_t>();
  unsigned grid[3], group[3];
  for (unsigned &g : grid) g = r.get<uint32_t>();
  for (unsigned &g : group) g = r.get<uint32_t>();
  auto it = g_pipelines.find(pid);
  if (it == g_pipelines.end()) {
    *err = "simulator: unknown pipeline";
    return false;
  }
  s.pipeline = it->second.get();
  mbsim::DispatchJob &job = s.job;
  job.kernel = &s.pipeline->kernel;
  mb_dispatch &d = job.d;
  for (int i = 0; i < 3; ++i) {
    d.group_threads[i] = group[i];
    if (mode == 0) { // MB_DISPATCH_THREADS
      d.grid_threads[i] = grid[i];
      d.grid_groups[i] = (grid[i] + group[i] - 1) / group[i];
    } else {
      d.grid_groups[i] = grid[i];
      d.grid_threads[i] = grid[i] * group[i];
    }
  }
  job.partial_edges = mode == 0;
  auto nbind = r.get<uint32_t>();
  for (uint32_t k = 0; k < nbind && r.ok(); ++k) {
    auto index = r.get<uint32_t>();
    auto kind = r.get<uint32_t>();
    if (index >= MB_SIM_MAX_BINDINGS) {
      *err = "simulator: binding index out of range";
      return false;
    }
    if (kind == 1) {
      auto bid = r.get<uint32_t>();
      auto offset = r.get<uint64_t>();
      auto b = g_buffers.find(bid);
      if (b == g_buffers.end() || offset > b->second.length) {
        *err = "simulator: buffer(" + std::to_string(index) + ") is not mapped in the runner";
        return false;
      }
      d.buffers[index] = b->second.base + offset;
      d.buffer_lengths[index] = b->second.length - offset;
      bool seen = false;
      for (auto &e : s.buffers) seen |= e.second == &b->second;
      if (!seen) s.buffers.emplace_back(static_cast<int>(index), &b->second);
    } else {
      auto len = r.get<uint32_t>();
      const uint8_t *src = r.bytes(len);
      if (!src) break;
      // 16-byte aligned copy, padded, like Metal's setBytes storage.
      std::unique_ptr<unsigned char[]> copy(new (std::align_val_t(16)) unsigned char[len + 16]());
      std::memcpy(copy.get(), src, len);
      d.buffers[index] = copy.get();
      d.buffer_lengths[index] = len;
      s.bytes.push_back(std::move(copy));
    }
  }
  // Pointer and reference arguments left unbound (the bridge refused
  // unbound values) get their faulting address.
  for (const mb_param &m : s.pipeline->params) {
    bool may = m.min_bytes == 0 || (m.min_bytes & MB_PARAM_REF_BIT);
    if (m.kind != MB_PARAM_BUFFER || !may || m.index >= MB_SIM_MAX_BINDINGS ||
        d.buffers[m.index])
      continue;
    if (!(d.buffers[m.index] = unbound_pointer(m.index))) {
      *err = "simulator: cannot reserve address space for the unbound [[buffer(" +
             std::to_string(m.index) + ")]]";
      return false;
    }
  }
  unsigned arena = job.kernel->static_tg_bytes;
  auto ntg = r.get<uint32_t>();
  for (uint32_t k = 0; k < ntg && r.ok(); ++k) {
    auto index = r.get<uint32_t>();
    auto len = r.get<uint32_t>();
    if (index >= MB_SIM_MAX_BINDINGS || len > kMaxThreadgroupMemory) {
      *err = "simulator: bad threadgroup memory binding";
      return false;
    }
    arena = (arena + 15) / 16 * 16;
    job.tg_arg_offset[index] = arena;
    arena += len;
  }
  if (!r.ok()) {
    *err = "simulator: malformed RUN";
    return false;
  }
  if (arena > kMaxThreadgroupMemory) {
    *err = "kernel '" + job.kernel->name + "' needs " + std::to_string(arena) +
           " bytes of threadgroup memory; the limit is " + std::to_string(kMaxThreadgroupMemory);
    return false;
  }
  job.arena_bytes = arena;
  return true;
}

// One RUN's dispatches, executed on the lead worker thread.
struct RunTask {
  std::vector<Step> *steps;
  uint32_t batch;
  bool ok = true;
  std::string err{};
};

// Dispatches run so far: each gets its own SIMD-group order (scheduler.h),
// so repeated trials of a kernel try several interleavings.
unsigned long long g_dispatches = 0;

void run_steps(void *arg) {
  RunTask &t = *static_cast<RunTask *>(arg);
  // A start time before busy (the bridge must never see busy with an old
  // start), and before the step it belongs to.
  g_control->start_ns.store(now_ns());
  g_control->busy.store(1);
  for (uint32_t b = 0; b < t.batch && t.ok; ++b)
    for (size_t i = 0; i < t.steps->size() && t.ok; ++i) {
      Step &s = (*t.steps)[i];
      g_control->start_ns.store(now_ns());
      g_control->step.store(static_cast<uint32_t>(i));
      g_running = s.pipeline;
      s.job.order_seed = g_dispatches++;
      t.ok = g_exec->run(s.job, &t.err) && check_slack(s, &t.err);
      g_running = nullptr;
    }
  g_control->busy.store(0);
}

bool handle_run(Reader &r) {
  g_nonce = r.get<uint64_t>();
  auto batch = r.get<uint32_t>();
  auto nsteps = r.get<uint32_t>();
  if (!r.ok() || nsteps > r.remaining())
    return reply_error(kStatusInternal, "simulator: malformed RUN");
  std::vector<Step> steps(nsteps);
  std::string err;
  for (Step &s : steps)
    if (!parse_step(r, s, &err)) return reply_error(kStatusArgument, err);
  if (g_sandbox && !g_sandboxed) {
    if (!mbsim::enter_sandbox(&err))
      return reply_error(kStatusUnavailable,
                         "the simulator cannot sandbox kernels on this system (" + err +
                             "); open the device with sandbox=0 to run them unsandboxed");
    g_exec->restrict_threads(mbsim::restrict_thread);
    g_sandboxed = true;
  }
  RunTask task{&steps, batch};
  g_exec->perform(run_steps, &task);
  if (!task.ok) return reply_error(kStatusExecution, task.err);
  return mbipc::send_frame(mbipc::kSocketFd, mbipc::RAN, answer().data());
}

// Exits as soon as the bridge's process is gone (the life pipe's write end
// closes with it), even while a kernel spins in an endless loop.
std::atomic<bool> g_watching{false};
void watch_parent() {
  g_watching = true;
  pollfd p{mbipc::kLifeFd, POLLIN, 0};
  for (;;) // the bridge never writes: any event (even a closed fd) means it is gone
    if (poll(&p, 1, -1) > 0) _exit(0);
}

unsigned long long arg_value(int argc, char **argv, const char *key, unsigned long long dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], key) == 0) return std::strtoull(argv[i + 1], nullptr, 0);
  return dflt;
}

} // namespace

int main(int argc, char **argv) {
  // Nothing of the host's but the fds the bridge gave (a descriptor it left
  // inheritable by mistake must not reach kernel code).
  syscall(SYS_close_range, mbipc::kFirstFreeFd, ~0u, 0);
  prctl(PR_SET_NAME, "mb_sim_runner");
  prctl(PR_SET_DUMPABLE, 0); // no core files of kernel memory, no ptrace by others
  // Output goes to a memfd the bridge reads: bounded, and a full one is an
  // error, not a signal.
  signal(SIGXFSZ, SIG_IGN);
  rlimit fsize{size_t(1) << 20, size_t(1) << 20};
  setrlimit(RLIMIT_FSIZE, &fsize);
  void *ctl = mmap(nullptr, sizeof(mbipc::Control), PROT_READ | PROT_WRITE, MAP_SHARED,
                   mbipc::kControlFd, 0);
  if (ctl == MAP_FAILED) {
    std::fprintf(stderr, "mb_sim_runner: start it through libsim_bridge.so\n");
    return 2;
  }
  g_control = static_cast<mbipc::Control *>(ctl);
  install_fault_handlers();
  std::thread(watch_parent).detach();
  while (!g_watching) sched_yield(); // started up before any sandbox
  auto workers = static_cast<unsigned>(arg_value(argc, argv, "--workers", 1));
  size_t stack = size_t(arg_value(argc, argv, "--stack-kb", 256)) * 1024;
  g_sandbox = arg_value(argc, argv, "--sandbox", 1) != 0;
  g_nonce = arg_value(argc, argv, "--hello", 0);
  g_exec = std::make_unique<mbsim::Executor>(workers, stack, install_altstack);

  Writer hello = answer();
  hello.put<uint32_t>(MB_SIM_RT_ABI);
  if (!mbipc::send_frame(mbipc::kSocketFd, mbipc::HELLO, hello.data())) return 0;
  mbipc::Header h;
  std::vector<uint8_t> payload;
  int fd;
  while (mbipc::recv_frame(mbipc::kSocketFd, &h, &payload, &fd)) {
    Reader r(payload.data(), payload.size());
    bool ok = true;
    switch (h.type) {
    case mbipc::LOAD: ok = handle_load(r); break;
    case mbipc::UNLOAD: handle_unload(r); break;
    case mbipc::BUFFER_ADD: handle_buffer_add(r, fd); fd = -1; break;
    case mbipc::BUFFER_FREE: handle_buffer_free(r); break;
    case mbipc::RUN: ok = handle_run(r); break;
    default: ok = reply_error(kStatusExecution, "simulator: unknown request");
    }
    if (fd >= 0) close(fd);
    if (!ok) break;
  }
  return 0;
}
