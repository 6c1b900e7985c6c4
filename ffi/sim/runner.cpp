// mb_sim_runner: the process that runs simulated kernels, so that a kernel
// that faults or never ends takes down this process and not the harness.
//
// Spawned by the bridge (posix_spawn) with a socket (fd 3), a life pipe
// (fd 4) and a control page (fd 5). It dlopen()s compiled kernels, maps the
// bridge's buffers (memfds) with a large inaccessible reservation after each
// one, and serves LOAD/RUN requests. A fault is reported over the socket by
// an async-signal-safe handler on an alternate stack, then the process exits.
#include "ipc.h"
#include "scheduler.h"

#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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

constexpr int kStatusArgument = 1;  // MB_E_ARGUMENT
constexpr int kStatusCompile = 3;   // MB_E_COMPILE
constexpr int kStatusExecution = 5; // MB_E_EXECUTION
constexpr size_t kGuardBefore = 64 * 1024;
// Inaccessible space after each buffer: any uint index times a 16-byte
// element lands in it, so a far out-of-bounds access faults and is named.
constexpr size_t kGuardAfter = size_t(64) << 30;
constexpr size_t kGuardAfterSmall = size_t(1) << 20;
constexpr unsigned kMaxThreadgroupMemory = 32768;

struct Buffer {
  unsigned char *base = nullptr;
  size_t length = 0;
  unsigned char *reservation = nullptr;
  size_t reservation_len = 0;
};

struct Pipeline {
  void *handle = nullptr;
  mbsim::Kernel kernel;
  std::vector<mb_param> params;
};

std::map<uint32_t, Buffer> g_buffers;
std::map<uint32_t, std::unique_ptr<Pipeline>> g_pipelines;
mbipc::Control *g_control = nullptr;
std::unique_ptr<mbsim::Executor> g_exec;
const char *volatile g_loading = nullptr; // kernel whose .so is being loaded

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

// Names the buffer a faulting address belongs to, or lies just outside of.
void describe_address(Text &t, uintptr_t addr, const mb_dispatch *d, const mb_param *names,
                      size_t n_names) {
  for (int i = 0; i < MB_SIM_MAX_BINDINGS; ++i) {
    if (!d->buffers[i]) continue;
    auto base = reinterpret_cast<uintptr_t>(d->buffers[i]);
    uintptr_t len = d->buffer_lengths[i];
    const char *rel = nullptr;
    uintptr_t dist = 0;
    if (addr >= base + len && addr - (base + len) < kGuardAfter) {
      rel = " bytes past the end of ";
      dist = addr - base - len;
    } else if (addr < base && base - addr <= kGuardBefore) {
      rel = " bytes before the start of ";
      dist = base - addr;
    } else if (addr >= base && addr < base + len) {
      rel = " bytes into ";
      dist = addr - base;
    }
    if (!rel) continue;
    t.s(" (").u(dist).s(rel).s("buffer(").u(static_cast<unsigned>(i)).s(")");
    for (size_t k = 0; k < n_names; ++k)
      if (names[k].kind == MB_PARAM_BUFFER && names[k].index == i && names[k].name)
        t.s(" '").s(names[k].name).s("'");
    t.s(", ").u(len).s(" bytes long)");
    return;
  }
  t.s(" (not inside any bound buffer)");
}

const Pipeline *g_running = nullptr; // pipeline of the dispatch in progress

void on_fault(int sig, siginfo_t *si, void *ctx) {
  static std::atomic<int> once{0};
  if (once.exchange(1)) {
    for (;;) pause(); // another thread is already reporting
  }
  Text t;
  auto addr = reinterpret_cast<uintptr_t>(si->si_addr);
  mbsim::FaultInfo fi;
  if (mbsim::current_fault_info(si->si_addr, &fi)) {
    t.s("kernel '").s(fi.kernel).s("' faulted: ").s(signal_text(sig, si->si_code));
    if (fi.stack_overflow) {
      t.s(": stack overflow (each simulated thread has ").u(fi.stack_kb).s(" KB of stack)");
    } else if (sig == SIGSEGV || sig == SIGBUS) {
#if defined(__x86_64__)
      auto *uc = static_cast<ucontext_t *>(ctx);
      t.s((uc->uc_mcontext.gregs[REG_ERR] & 2) ? " writing " : " reading ");
#else
      (void)ctx;
      t.s(" at ");
#endif
      t.hex(addr);
      const Pipeline *p = g_running;
      describe_address(t, addr, fi.dispatch, p ? p->params.data() : nullptr,
                       p ? p->params.size() : 0);
    }
    if (fi.in_thread) t.s(" in thread ").xyz(fi.thread).s(" of");
    else t.s(" in");
    t.s(" threadgroup ").xyz(fi.group);
  } else if (const char *k = g_loading) {
    t.s("kernel '").s(k).s("' faulted while loading: ").s(signal_text(sig, si->si_code));
  } else {
    t.s("simulator runner crashed: ").s(signal_text(sig, si->si_code)).s(" at ").hex(addr);
  }
  t.buf[t.n] = 0;
  // One frame: header + {u32 len, text}.
  char frame[sizeof(mbipc::Header) + 4 + sizeof t.buf];
  mbipc::Header h{mbipc::FAULT, static_cast<uint32_t>(4 + t.n)};
  auto len = static_cast<uint32_t>(t.n);
  std::memcpy(frame, &h, sizeof h);
  std::memcpy(frame + sizeof h, &len, 4);
  std::memcpy(frame + sizeof h + 4, t.buf, t.n);
  size_t total = sizeof h + 4 + t.n, off = 0;
  while (off < total) {
    ssize_t k = send(mbipc::kSocketFd, frame + off, total - off, MSG_NOSIGNAL);
    if (k <= 0) break;
    off += static_cast<size_t>(k);
  }
  _exit(70);
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

bool reply_error(int status, const std::string &msg) {
  Writer w;
  w.put<int32_t>(status);
  w.str(msg);
  return mbipc::send_frame(mbipc::kSocketFd, mbipc::ERROR, w.data());
}

// ---- requests ---------------------------------------------------------

bool handle_load(Reader &r) {
  auto id = r.get<uint32_t>();
  std::string path = r.str(), name = r.str();
  if (!r.ok()) return reply_error(kStatusExecution, "simulator: malformed LOAD");
  auto p = std::make_unique<Pipeline>();
  p->kernel.name = name;
  g_loading = p->kernel.name.c_str();
  p->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!p->handle) {
    g_loading = nullptr;
    const char *e = dlerror();
    return reply_error(kStatusCompile, "cannot load compiled kernel '" + name + "': " +
                                           (e ? e : "unknown error"));
  }
  auto init = reinterpret_cast<mb_kernel_init_fn>(dlsym(p->handle, "mb_kernel_init"));
  auto run = reinterpret_cast<mb_kernel_run_fn>(dlsym(p->handle, "mb_kernel_run"));
  mb_kernel_info info{};
  if (!init || !run || init(mbsim::runtime_table(), &info) != 0 || info.abi != MB_SIM_RT_ABI) {
    g_loading = nullptr;
    dlclose(p->handle);
    return reply_error(kStatusCompile, "compiled kernel '" + name +
                                           "' does not match this simulator; recompile it");
  }
  g_loading = nullptr;
  p->kernel.run = run;
  p->kernel.static_tg_bytes = info.static_threadgroup_bytes;
  p->params.assign(info.params, info.params + info.n_params);
  Writer w;
  w.put<uint32_t>(info.static_threadgroup_bytes);
  w.put<uint32_t>(info.max_total_threads);
  w.put<uint32_t>(info.n_params);
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
  if (fd < 0 || !r.ok()) return;
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_t mapped = (length + page - 1) / page * page;
  Buffer b;
  for (size_t after : {kGuardAfter, kGuardAfterSmall}) {
    size_t total = kGuardBefore + mapped + after;
    void *res = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (res == MAP_FAILED) continue;
    auto *base = static_cast<unsigned char *>(res) + kGuardBefore;
    if (mmap(base, mapped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED) {
      munmap(res, total);
      continue;
    }
    b = Buffer{base, length, static_cast<unsigned char *>(res), total};
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

struct Step {
  mbsim::DispatchJob job;
  const Pipeline *pipeline = nullptr;
  std::vector<std::unique_ptr<unsigned char[]>> bytes; // setBytes copies
};

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

bool handle_run(Reader &r) {
  auto batch = r.get<uint32_t>();
  auto nsteps = r.get<uint32_t>();
  std::vector<Step> steps(nsteps);
  std::string err;
  for (Step &s : steps)
    if (!parse_step(r, s, &err)) return reply_error(kStatusArgument, err);
  g_control->busy.store(1);
  uint64_t t0 = now_ns();
  for (uint32_t b = 0; b < batch; ++b)
    for (uint32_t i = 0; i < nsteps; ++i) {
      g_control->step.store(i);
      g_control->start_ns.store(now_ns());
      g_control->seq.fetch_add(1);
      g_running = steps[i].pipeline;
      bool ok = g_exec->run(steps[i].job, &err);
      g_running = nullptr;
      if (!ok) {
        g_control->busy.store(0);
        return reply_error(kStatusExecution, err);
      }
    }
  uint64_t t1 = now_ns();
  g_control->busy.store(0);
  Writer w;
  w.put<double>(static_cast<double>(t1 - t0));
  return mbipc::send_frame(mbipc::kSocketFd, mbipc::RAN, w.data());
}

// Exits as soon as the bridge's process is gone (the life pipe's write end
// closes with it), even while a kernel spins in an endless loop.
void watch_parent() {
  pollfd p{mbipc::kLifeFd, POLLIN, 0};
  for (;;) {
    int k = poll(&p, 1, -1);
    if (k > 0 && (p.revents & (POLLHUP | POLLERR | POLLIN))) _exit(0);
  }
}

unsigned arg_value(int argc, char **argv, const char *key, unsigned dflt) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], key) == 0) return static_cast<unsigned>(std::strtoul(argv[i + 1], nullptr, 10));
  return dflt;
}

} // namespace

int main(int argc, char **argv) {
  prctl(PR_SET_NAME, "mb_sim_runner");
  install_fault_handlers();
  std::thread(watch_parent).detach();
  void *ctl = mmap(nullptr, sizeof(mbipc::Control), PROT_READ | PROT_WRITE, MAP_SHARED,
                   mbipc::kControlFd, 0);
  if (ctl == MAP_FAILED) {
    std::fprintf(stderr, "mb_sim_runner: start it through libsim_bridge.so\n");
    return 2;
  }
  g_control = static_cast<mbipc::Control *>(ctl);
  unsigned workers = arg_value(argc, argv, "--workers", 1);
  size_t stack = size_t(arg_value(argc, argv, "--stack-kb", 256)) * 1024;
  g_exec = std::make_unique<mbsim::Executor>(workers, stack, install_altstack);

  Writer hello;
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
