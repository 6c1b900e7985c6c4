// libsim_bridge.so: ffi/bridge.h on the MSL simulator.
//
// The library compiles kernels (compile.h) and talks to one runner process
// per device (mb_sim_runner, see runner.cpp), which runs them. Buffers are
// memfds mapped in both processes. Kernel code never runs in this process:
// a fault or an endless loop ends the runner, never the host; the next call
// starts a new runner and re-sends the buffers and pipelines it needs.
// Nothing the runner says decides a time or extends a time limit (ipc.h):
// times come from this process's clock and the runner's CPU clock, answers
// must echo a fresh nonce, and anything else on the channel stops the runner.
#pragma GCC visibility push(default)
#include "../bridge.h"
#pragma GCC visibility pop

#include "compile.h"
#include "ipc.h"
#include "mb_sim_abi.h"
#include "process.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern char **environ;

namespace {

using mbipc::Reader;
using mbipc::Writer;

constexpr uint64_t kMaxBytes = 4096;              // setBytes limit, as Metal
constexpr uint64_t kMaxThreadgroupMemory = 32768; // per threadgroup
constexpr unsigned kMaxThreads = MB_SIM_MAX_THREADS;

int32_t set_err(char *err, uint64_t cap, int32_t status, const std::string &msg) {
  if (err && cap > 0) {
    size_t n = std::min<size_t>(msg.size(), static_cast<size_t>(cap - 1));
    std::memcpy(err, msg.data(), n);
    err[n] = 0;
  }
  return status;
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

std::map<std::string, std::string> parse_options(const char *text) {
  std::map<std::string, std::string> out;
  std::string s = text ? text : "";
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    std::string line = s.substr(start, end - start);
    size_t eq = line.find('=');
    if (eq != std::string::npos) {
      auto strip = [](std::string v) {
        while (!v.empty() && std::isspace(static_cast<unsigned char>(v.back()))) v.pop_back();
        size_t i = 0;
        while (i < v.size() && std::isspace(static_cast<unsigned char>(v[i]))) ++i;
        return v.substr(i);
      };
      out[strip(line.substr(0, eq))] = strip(line.substr(eq + 1));
    }
    start = end + 1;
  }
  return out;
}

std::string json_string(const std::string &s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else o += c;
  }
  return o + "\"";
}

std::string seconds(unsigned ms) {
  char b[32];
  if (ms % 1000 == 0) std::snprintf(b, sizeof b, "%u s", ms / 1000);
  else std::snprintf(b, sizeof b, "%.3g s", ms / 1000.0);
  return b;
}

// The folder of this library (to find the runner and the shim by default).
std::string library_dir() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&mb_abi_version), &info) == 0 || !info.dli_fname) return ".";
  std::string p = info.dli_fname;
  size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

bool exists(const std::string &p) { return access(p.c_str(), F_OK) == 0; }

// ---- shared state behind the handles -------------------------------------

// A time of the bridge's clock plus ms milliseconds, n times (saturating).
uint64_t after_ms(uint64_t from, unsigned ms, uint64_t n = 1) {
  const uint64_t step = uint64_t(ms) * 1000000ull;
  if (n && step > (UINT64_MAX - from) / n) return UINT64_MAX;
  return from + step * n;
}

// Bytes the runner produced, shown in one line: printable ASCII and the
// em dash of "... \u2014 fix: ..." as is, everything else escaped.
std::string escaped(const char *p, size_t n) {
  static const char kDash[] = "\u2014";
  std::string o;
  for (size_t i = 0; i < n; ++i) {
    auto c = static_cast<unsigned char>(p[i]);
    if (n - i >= 3 && std::memcmp(p + i, kDash, 3) == 0) {
      o += kDash;
      i += 2;
    } else if (c == '\\') o += "\\\\";
    else if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c == '\r') o += "\\r";
    else if (c >= 0x20 && c < 0x7f) o += static_cast<char>(c);
    else {
      char b[8];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      o += b;
    }
  }
  return o;
}

constexpr size_t kOutputShown = 2048; // bytes of the runner's output put in a message

struct Reply {
  int32_t status = MB_OK;
  std::string message;
  mbipc::Header header{};
  std::vector<uint8_t> payload; // after the nonce
};

// What a request waits for.
struct Wait {
  uint32_t type;         // the answer expected (or ERROR)
  uint64_t nonce;        // ... echoing this
  uint64_t deadline_ns;  // on the bridge's clock; nothing the runner says extends it
  unsigned limit_ms;     // the limit as messages state it
  const std::vector<std::string> *steps = nullptr; // a RUN's steps (names)
  const char *loading = nullptr;                   // a LOAD's kernel
};

struct Device {
  std::mutex mu; // one request to the runner at a time
  mbsim::Compiler compiler;
  std::string runner_path;
  unsigned timeout_ms = 10000;
  unsigned workers = 1;
  unsigned stack_kb = 256;
  bool sandbox = true; // the runner runs kernels under its seccomp sandbox
  uint32_t next_id = 1;

  pid_t pid = -1;
  int sock = -1;
  int life = -1; // write end of the runner's life pipe
  int out = -1;  // the runner's stdout and stderr (a memfd), kept after it stops
  clockid_t cpu_clock{}; // the runner's CPU time, all threads
  mbipc::Control *control = nullptr;
  mbipc::Inbox inbox; // what the runner sent, not yet taken
  uint64_t generation = 0; // of the current runner
  bool sandboxed = false;  // the current runner has run kernels: it loads no more
  bool closed = false;

  unsigned compiler_runs = 0, cache_hits = 0, runner_starts = 0;

  ~Device() {
    stop_runner();
    if (out >= 0) close(out);
  }

  void stop_runner() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      int st;
      while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
    if (sock >= 0) close(sock);
    if (life >= 0) close(life);
    if (control) munmap(control, sizeof(mbipc::Control));
    pid = -1;
    sock = life = -1;
    control = nullptr;
    inbox.clear();
    sandboxed = false;
  }

  // A fd that survives the dup2s of posix_spawn (numbers >= 10).
  static int high_fd(int fd) {
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    close(fd);
    return h;
  }

  bool start_runner(std::string *err) {
    if (pid > 0) return true;
    if (out >= 0) close(out);
    out = -1;
    int sv[2], lp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(lp, O_CLOEXEC) != 0) {
      *err = "cannot create the runner's channels";
      return false;
    }
    int cfd = static_cast<int>(memfd_create("mb_sim_control", MFD_CLOEXEC));
    int ofd = static_cast<int>(memfd_create("mb_sim_output", MFD_CLOEXEC));
    if (cfd < 0 || ofd < 0 || ftruncate(cfd, sizeof(mbipc::Control)) != 0) {
      *err = "cannot create the runner's control page";
      return false;
    }
    void *ctl = mmap(nullptr, sizeof(mbipc::Control), PROT_READ | PROT_WRITE, MAP_SHARED, cfd, 0);
    int child_sock = high_fd(sv[1]), child_life = high_fd(lp[0]);
    cfd = high_fd(cfd);
    out = high_fd(ofd);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, child_sock, mbipc::kSocketFd);
    posix_spawn_file_actions_adddup2(&fa, child_life, mbipc::kLifeFd);
    posix_spawn_file_actions_adddup2(&fa, cfd, mbipc::kControlFd);
    // Kernel code gets neither the host's input nor its terminal: what the
    // runner prints goes to a memfd, shown (escaped) only in error messages.
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out, 1);
    posix_spawn_file_actions_adddup2(&fa, out, 2);
    posix_spawnattr_t attr;
    mbsim::clean_signal_attr(&attr);
    const uint64_t hello = mbipc::fresh_nonce();
    std::string w = std::to_string(workers), s = std::to_string(stack_kb),
                h = std::to_string(hello);
    const char *argv[] = {runner_path.c_str(), "--workers", w.c_str(), "--stack-kb", s.c_str(),
                          "--sandbox", sandbox ? "1" : "0", "--hello", h.c_str(), nullptr};
    // An empty environment: the user's variables (API keys) stay out of reach.
    char *const no_env[] = {nullptr};
    pid_t p;
    int rc = posix_spawn(&p, runner_path.c_str(), &fa, &attr, const_cast<char **>(argv), no_env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(child_sock);
    close(child_life);
    close(cfd);
    if (rc != 0 || ctl == MAP_FAILED) {
      close(sv[0]);
      close(lp[1]);
      if (ctl != MAP_FAILED) munmap(ctl, sizeof(mbipc::Control));
      *err = "cannot start the simulator runner " + runner_path + ": " + std::strerror(rc);
      return false;
    }
    pid = p;
    sock = sv[0];
    life = lp[1];
    control = static_cast<mbipc::Control *>(ctl);
    ++generation;
    ++runner_starts;
    if (clock_getcpuclockid(pid, &cpu_clock) != 0) {
      *err = "cannot read the simulator runner's CPU clock";
      stop_runner();
      return false;
    }
    // A runner that stops reading must not hold the bridge in send().
    timeval tv{5, 0};
    setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    Reply r = wait_reply({mbipc::HELLO, hello, after_ms(now_ns(), 10000), 10000});
    if (r.status != MB_OK) {
      *err = "the simulator runner did not start: " + r.message;
      stop_runner();
      return false;
    }
    Reader rd(r.payload.data(), r.payload.size());
    if (rd.get<uint32_t>() != MB_SIM_RT_ABI) {
      *err = "the simulator runner " + runner_path + " is from another build; rebuild: make -C ffi sim";
      stop_runner();
      return false;
    }
    return true;
  }

  bool send(uint32_t type, const Writer &w, int fd = -1) {
    return sock >= 0 && mbipc::send_frame(sock, type, w.data(), fd);
  }

  // The runner's CPU time (all its threads), read from outside it.
  bool runner_cpu_ns(uint64_t *ns) const {
    timespec ts;
    if (pid <= 0 || clock_gettime(cpu_clock, &ts) != 0) return false;
    *ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
    return true;
  }

  // Forgets what the runner printed before (called as a run starts).
  void clear_output() {
    struct stat st;
    if (out >= 0 && fstat(out, &st) == 0 && st.st_size > 0) {
      if (ftruncate(out, 0) == 0) lseek(out, 0, SEEK_SET); // the runner shares this offset
    }
  }

  // " — runner output (N bytes): ..." when the runner printed anything.
  std::string output_note() const {
    struct stat st;
    if (out < 0 || fstat(out, &st) != 0 || st.st_size <= 0) return "";
    char buf[kOutputShown];
    size_t total = static_cast<size_t>(st.st_size);
    ssize_t n = pread(out, buf, std::min(total, sizeof buf), 0);
    if (n <= 0) return "";
    std::string what = total > kOutputShown ? "first " + std::to_string(kOutputShown) + " of " +
                                                  std::to_string(total) + " bytes"
                                            : std::to_string(total) + " bytes";
    return " \u2014 runner output (" + what + "): " + escaped(buf, static_cast<size_t>(n));
  }

  // The step the control page names; kernel code may have rewritten it, so
  // out of range it is the sample's one kernel, if it has only one.
  std::string running_kernel(const std::vector<std::string> *steps) const {
    if (!steps || steps->empty()) return "?";
    unsigned i = control ? control->step.load() : ~0u;
    if (i < steps->size()) return (*steps)[i];
    for (const std::string &n : *steps)
      if (n != steps->front()) return "?";
    return steps->front();
  }

  // Something other than the awaited answer came: kernel code wrote to the
  // channel. The runner is stopped.
  std::string forged(const std::vector<std::string> *steps, const char *loading) {
    std::string m = steps ? "kernel '" + running_kernel(steps) +
                                "' wrote to the simulator's channel (a forged reply); stopped"
                    : loading ? "the simulator runner sent an unexpected message while loading "
                                "kernel '" + std::string(loading) + "'; stopped"
                              : "kernel code wrote to the simulator's channel (a forged "
                                "message); stopped";
    m += " \u2014 fix: a kernel must not write to file descriptors";
    stop_runner();
    return m + output_note();
  }

  // Waits for the answer to the request `w` describes. Any other frame, a
  // dead runner or the deadline ends the wait with an error; a dead or
  // killed runner is reaped here.
  Reply wait_reply(const Wait &w) {
    Reply r;
    auto fail = [&](int32_t status, std::string msg) {
      r.status = status;
      r.message = std::move(msg);
      return r;
    };
    for (;;) {
      bool oversized = false;
      mbipc::Header h;
      std::vector<uint8_t> payload;
      if (inbox.take(&h, &payload, &oversized)) {
        Reader rd(payload.data(), payload.size());
        const uint64_t nonce = rd.get<uint64_t>();
        // The answer: the expected type (or ERROR) with this request's
        // nonce, and nothing behind it.
        if (!rd.ok() || nonce != w.nonce || (h.type != w.type && h.type != mbipc::ERROR) ||
            !inbox.empty())
          return fail(MB_E_EXECUTION, forged(w.steps, w.loading));
        r.header = h;
        r.payload.assign(payload.begin() + sizeof nonce, payload.end());
        if (h.type == mbipc::ERROR) {
          Reader er(r.payload.data(), r.payload.size());
          int32_t st = er.get<int32_t>();
          // Kernel code chooses parts of it (a barrier's file name): one
          // line, no terminal controls.
          std::string msg = er.str();
          if (st < MB_E_ARGUMENT || st > MB_E_DEVICE_LOST) st = MB_E_INTERNAL;
          return fail(st, escaped(msg.data(), msg.size()) + output_note());
        }
        return r;
      }
      if (oversized) return fail(MB_E_EXECUTION, forged(w.steps, w.loading));
      const uint64_t now = now_ns();
      if (now >= w.deadline_ns) return fail(MB_E_TIMEOUT, timed_out(w));
      // The control page may only cut a dispatch short, never give it more time.
      if (w.steps && control && control->busy.load()) {
        uint64_t began = control->start_ns.load();
        if (now > began && now - began > uint64_t(timeout_ms) * 1000000ull)
          return fail(MB_E_TIMEOUT, timed_out(w));
      }
      const uint64_t left_ms = (w.deadline_ns - now) / 1000000ull + 1;
      pollfd p{sock, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(std::min<uint64_t>(50, left_ms))) <= 0) continue;
      switch (inbox.pull(sock)) {
      case mbipc::Inbox::AGAIN:
      case mbipc::Inbox::DATA: break;
      case mbipc::Inbox::FD_PASSED: return fail(MB_E_EXECUTION, forged(w.steps, w.loading));
      case mbipc::Inbox::CLOSED:
        return fail(MB_E_EXECUTION, runner_death(w.steps, w.loading));
      }
    }
  }

  std::string timed_out(const Wait &w) {
    std::string m;
    if (w.steps)
      m = "kernel '" + running_kernel(w.steps) + "' did not finish within " +
          seconds(w.limit_ms) + " (an endless loop?); stopped";
    else if (w.loading)
      m = "loading kernel '" + std::string(w.loading) + "' did not finish within " +
          seconds(w.limit_ms) + "; stopped";
    else m = "the simulator runner did not answer within " + seconds(w.limit_ms);
    stop_runner();
    return m + output_note();
  }

  // Before a request: nothing may be waiting on the channel (kernel code
  // writing after the last answer). "" when quiet, else the error.
  std::string quiet_channel(const std::vector<std::string> *steps, int32_t *status) {
    *status = MB_E_EXECUTION;
    if (sock < 0) return "";
    char c;
    ssize_t k = inbox.empty() ? recv(sock, &c, 1, MSG_PEEK | MSG_DONTWAIT) : 1;
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return "";
    if (k > 0) return forged(steps, nullptr);
    return runner_death(steps, nullptr);
  }

  std::string runner_death(const std::vector<std::string> *steps, const char *loading) {
    int st = 0;
    pid_t p = pid;
    if (p > 0) {
      for (int i = 0; i < 100 && waitpid(p, &st, WNOHANG) == 0; ++i) usleep(1000);
    }
    // The runner's fault handler leaves its report in the control page.
    std::string report;
    if (control) {
      uint32_t n = std::min<uint32_t>(control->report_len.load(std::memory_order_acquire),
                                      mbipc::kReportBytes);
      report = escaped(control->report, n);
    }
    std::string how = WIFSIGNALED(st) ? "signal " + std::to_string(WTERMSIG(st))
                                      : "exit code " + std::to_string(WEXITSTATUS(st));
    std::string what, name = running_kernel(steps);
    if (steps && name != "?") {
      what = " while running kernel '" + name + "'";
    } else if (loading) {
      what = " while loading kernel '" + std::string(loading) + "'";
    }
    stop_runner();
    return (report.empty() ? "the simulator runner died (" + how + ")" + what : report) +
           output_note();
  }
};

// A buffer is a memfd laid out as mbipc::kCanaryWord's comment says: data
// ending near a page end, canary slack around it.
struct BufferCore {
  std::shared_ptr<Device> dev;
  uint32_t id = 0;
  int fd = -1;
  unsigned char *map = nullptr; // the whole memfd
  uint64_t map_len = 0;
  uint64_t front = 0; // slack before the data
  unsigned char *data = nullptr;
  uint64_t length = 0;
  uint64_t generation = 0; // runner generation that has it mapped

  ~BufferCore() {
    {
      std::lock_guard<std::mutex> lock(dev->mu);
      if (generation == dev->generation && dev->pid > 0) {
        Writer w;
        w.put<uint32_t>(id);
        dev->send(mbipc::BUFFER_FREE, w);
      }
    }
    if (map) munmap(map, map_len);
    if (fd >= 0) close(fd);
  }
};

struct Param {
  uint16_t kind, index;
  uint32_t min_bytes;
  std::string name;
};

struct PipelineCore {
  std::shared_ptr<Device> dev;
  uint32_t id = 0;
  std::string function;
  std::string so_path;
  uint64_t generation = 0;
  unsigned static_tg = 0;
  unsigned max_threads = kMaxThreads;
  std::vector<Param> params;

  ~PipelineCore() {
    std::lock_guard<std::mutex> lock(dev->mu);
    if (generation == dev->generation && dev->pid > 0) {
      Writer w;
      w.put<uint32_t>(id);
      dev->send(mbipc::UNLOAD, w);
    }
  }

  // Makes sure the current runner has loaded this pipeline (caller holds mu).
  int32_t ensure_loaded(std::string *msg) {
    if (generation == dev->generation && dev->pid > 0) return MB_OK;
    // A runner that has run kernels is sandboxed and loads no more: a fresh
    // one gets this pipeline (and the others, buffers too, as they are used).
    if (dev->sandboxed) dev->stop_runner();
    if (!dev->start_runner(msg)) return MB_E_UNAVAILABLE;
    if (generation == dev->generation) return MB_OK;
    int32_t st;
    std::string q = dev->quiet_channel(nullptr, &st);
    if (!q.empty()) {
      *msg = q;
      return st;
    }
    const uint64_t nonce = mbipc::fresh_nonce();
    Writer w;
    w.put<uint64_t>(nonce);
    w.put<uint32_t>(id);
    w.str(so_path);
    w.str(function);
    if (!dev->send(mbipc::LOAD, w)) {
      *msg = dev->runner_death(nullptr, function.c_str());
      return MB_E_EXECUTION;
    }
    Wait wait{mbipc::LOADED, nonce, after_ms(now_ns(), dev->timeout_ms), dev->timeout_ms};
    wait.loading = function.c_str();
    Reply r = dev->wait_reply(wait);
    if (r.status != MB_OK) {
      *msg = r.message;
      return r.status;
    }
    Reader rd(r.payload.data(), r.payload.size());
    static_tg = rd.get<uint32_t>();
    unsigned mt = rd.get<uint32_t>();
    max_threads = mt > 0 && mt < kMaxThreads ? mt : kMaxThreads;
    uint32_t n = rd.get<uint32_t>();
    params.clear();
    for (uint32_t i = 0; i < n && rd.ok(); ++i) {
      Param p;
      p.kind = rd.get<uint16_t>();
      p.index = rd.get<uint16_t>();
      p.min_bytes = rd.get<uint32_t>();
      std::string name = rd.str();
      p.name = escaped(name.data(), name.size());
      params.push_back(p);
    }
    generation = dev->generation;
    return MB_OK;
  }
};

struct Binding {
  int kind = 0; // 0 none, 1 buffer, 2 bytes
  std::shared_ptr<BufferCore> buffer;
  uint64_t offset = 0;
  std::vector<uint8_t> bytes;
};

struct Step {
  std::shared_ptr<PipelineCore> pipeline;
  uint32_t mode = 0;
  uint32_t grid[3] = {0, 0, 0}, group[3] = {0, 0, 0};
  Binding bindings[MB_SIM_MAX_BINDINGS];
  uint64_t tg_len[MB_SIM_MAX_BINDINGS] = {};
};

} // namespace

struct mb_device {
  std::shared_ptr<Device> core;
};
struct mb_buffer {
  std::shared_ptr<BufferCore> core;
};
struct mb_pipeline {
  std::shared_ptr<PipelineCore> core;
};
struct mb_command {
  std::shared_ptr<Device> dev;
  Step current; // the bindings as they are now
  std::vector<Step> steps;
  std::vector<size_t> launch_ends; // steps[.. launch_ends[k]) closes launch k
};

#define CHECK_ARG(cond, msg)                                                                         \
  do {                                                                                               \
    if (!(cond)) return set_err(err, err_cap, MB_E_ARGUMENT, msg);                                   \
  } while (0)

extern "C" {

uint32_t mb_abi_version(void) { return MB_ABI_VERSION; }

// ---- device ---------------------------------------------------------------

int32_t mb_device_open(const char *options, mb_device **out, char *err, uint64_t err_cap) {
  CHECK_ARG(out, "mb_device_open: out is null");
  *out = nullptr;
  auto opt = parse_options(options);
  auto dev = std::make_shared<Device>();
  std::string dir = library_dir();
  auto get = [&](const char *k) { return opt.count(k) ? opt[k] : std::string(); };

  dev->compiler.shim_dir = get("shim_dir");
  if (dev->compiler.shim_dir.empty()) {
    for (const std::string &c : {dir + "/../sim/include", dir + "/include",
                                 dir + "/../share/metalbench/sim/include"})
      if (exists(c + "/metal_stdlib")) {
        dev->compiler.shim_dir = c;
        break;
      }
    if (dev->compiler.shim_dir.empty()) dev->compiler.shim_dir = dir + "/../sim/include";
  }
  if (char *real = realpath(dev->compiler.shim_dir.c_str(), nullptr)) {
    dev->compiler.shim_dir = real; // messages show .../ffi/sim/include, not build/../sim
    std::free(real);
  }
  std::string cache = get("cache_dir");
  if (cache.empty()) {
    const char *xdg = std::getenv("XDG_CACHE_HOME");
    const char *home = std::getenv("HOME");
    cache = xdg && *xdg ? std::string(xdg) + "/metalbench/sim"
            : home && *home ? std::string(home) + "/.cache/metalbench/sim"
                            : "/tmp/metalbench-sim-cache";
  }
  dev->compiler.cache_dir = cache;
  dev->runner_path = get("runner").empty() ? dir + "/mb_sim_runner" : get("runner");
  if (!get("timeout_ms").empty()) dev->timeout_ms = static_cast<unsigned>(std::stoul(get("timeout_ms")));
  unsigned hw = std::thread::hardware_concurrency();
  dev->workers = get("workers").empty() ? (hw ? hw : 1) : static_cast<unsigned>(std::stoul(get("workers")));
  if (!get("stack_kb").empty()) dev->stack_kb = static_cast<unsigned>(std::stoul(get("stack_kb")));
  if (!get("sandbox").empty()) dev->sandbox = get("sandbox") != "0";
  dev->compiler.allow_libc = get("allow_libc") == "1"; // tests of the runner's sandbox only
  if (dev->timeout_ms == 0 || dev->workers == 0 || dev->stack_kb < 16)
    return set_err(err, err_cap, MB_E_ARGUMENT,
                   "timeout_ms and workers must be positive, stack_kb at least 16");

  std::string msg;
  if (!mbsim::setup_compiler(get("cxx"), &dev->compiler, &msg))
    return set_err(err, err_cap, MB_E_UNAVAILABLE, msg);
  if (access(dev->runner_path.c_str(), X_OK) != 0)
    return set_err(err, err_cap, MB_E_UNAVAILABLE,
                   "the simulator runner is missing at " + dev->runner_path +
                       "; build it with: make -C ffi sim (or pass runner=<path>)");
  *out = new mb_device{dev};
  return MB_OK;
}

int32_t mb_device_info(mb_device *dev, char *json, uint64_t json_cap, char *err, uint64_t err_cap) {
  CHECK_ARG(dev && json && json_cap > 0, "mb_device_info: null argument");
  Device &d = *dev->core;
#if defined(__x86_64__)
  const char *arch = "x86_64";
#elif defined(__aarch64__)
  const char *arch = "aarch64";
#else
  const char *arch = "cpu";
#endif
  std::lock_guard<std::mutex> lock(d.mu);
  std::string s = "{\"backend\":\"sim\",\"name\":" +
                  json_string(std::string("MetalBench simulator (") + arch + ", clang " +
                              d.compiler.version + ")") +
                  ",\"timer\":\"cpu-monotonic\",\"device_time\":\"runner-cpu-time\",\"gpu_cores\":0,\"max_threads_per_threadgroup\":" +
                  std::to_string(kMaxThreads) +
                  ",\"max_threadgroup_memory\":" + std::to_string(kMaxThreadgroupMemory) +
                  ",\"recommended_working_set\":0,\"simd_width\":" +
                  std::to_string(MB_SIM_SIMD_WIDTH) + ",\"family\":\"sim\"" +
                  ",\"compiler\":" + json_string(d.compiler.cxx) +
                  ",\"compiler_version\":" + json_string(d.compiler.version) +
                  ",\"shim_dir\":" + json_string(d.compiler.shim_dir) +
                  ",\"cache_dir\":" + json_string(d.compiler.cache_dir) +
                  ",\"runner\":" + json_string(d.runner_path) +
                  ",\"workers\":" + std::to_string(d.workers) +
                  ",\"sandbox\":" + (d.sandbox ? "\"seccomp\"" : "\"off\"") +
                  ",\"compile_sandbox\":" + json_string(mbsim::compile_sandbox(d.compiler)) +
                  ",\"timeout_ms\":" + std::to_string(d.timeout_ms) +
                  ",\"compiler_runs\":" + std::to_string(d.compiler_runs) +
                  ",\"cache_hits\":" + std::to_string(d.cache_hits) +
                  ",\"runner_starts\":" + std::to_string(d.runner_starts) + "}";
  if (s.size() + 1 > json_cap)
    return set_err(err, err_cap, MB_E_ARGUMENT, "mb_device_info: json buffer too small");
  std::memcpy(json, s.c_str(), s.size() + 1);
  return MB_OK;
}

void mb_device_close(mb_device *dev) {
  if (!dev) return;
  {
    std::lock_guard<std::mutex> lock(dev->core->mu);
    dev->core->stop_runner();
    dev->core->closed = true;
  }
  delete dev;
}

// ---- pipelines --------------------------------------------------------------

int32_t mb_pipeline_compile(mb_device *dev, const char *source, const char *function,
                            const char *options, mb_pipeline **out, char *err, uint64_t err_cap) {
  CHECK_ARG(dev && source && function && out, "mb_pipeline_compile: null argument");
  *out = nullptr;
  Device &d = *dev->core;
  auto opt = parse_options(options);
  mbsim::CompileRequest req;
  req.source = source;
  req.function = function;
  if (opt.count("source_name") && !opt["source_name"].empty()) req.source_name = opt["source_name"];
  if (opt.count("include_dir")) req.include_dir = opt["include_dir"];
  if (opt.count("language_version") && !opt["language_version"].empty())
    req.language_version = opt["language_version"];
  if (opt.count("function_constants")) req.function_constants = opt["function_constants"];
  if (opt.count("metallib") && !opt["metallib"].empty())
    return set_err(err, err_cap, MB_E_UNSUPPORTED,
                   "metallib= needs the Metal backend; the simulator compiles from source");

  mbsim::CompileResult res = mbsim::compile_kernel(d.compiler, req); // no lock: runs clang
  std::shared_ptr<PipelineCore> p; // released after the lock (its destructor locks)
  std::lock_guard<std::mutex> lock(d.mu);
  d.compiler_runs += res.compiler_runs;
  d.cache_hits += res.cache_hit ? 1 : 0;
  if (res.status != MB_OK) return set_err(err, err_cap, res.status, res.message);
  if (d.closed) return set_err(err, err_cap, MB_E_ARGUMENT, "the device is closed");
  p = std::make_shared<PipelineCore>();
  p->dev = dev->core;
  p->id = d.next_id++;
  p->function = function;
  p->so_path = res.so_path;
  std::string msg;
  int32_t st = p->ensure_loaded(&msg);
  if (st != MB_OK) {
    p->generation = 0; // nothing to unload
    return set_err(err, err_cap, st, msg);
  }
  *out = new mb_pipeline{p};
  return MB_OK;
}

int32_t mb_pipeline_facts_get(mb_pipeline *pipeline, mb_pipeline_facts *out, char *err,
                              uint64_t err_cap) {
  CHECK_ARG(pipeline && out, "mb_pipeline_facts_get: null argument");
  out->max_total_threads_per_threadgroup = pipeline->core->max_threads;
  out->thread_execution_width = MB_SIM_SIMD_WIDTH;
  out->static_threadgroup_memory_length = pipeline->core->static_tg;
  out->reserved = 0;
  return MB_OK;
}

void mb_pipeline_free(mb_pipeline *pipeline) { delete pipeline; }

// ---- buffers ----------------------------------------------------------------

int32_t mb_buffer_new(mb_device *dev, uint64_t length, mb_buffer **out, char *err,
                      uint64_t err_cap) {
  CHECK_ARG(dev && out, "mb_buffer_new: null argument");
  *out = nullptr;
  CHECK_ARG(length > 0, "mb_buffer_new: length must be positive");
  auto b = std::make_shared<BufferCore>();
  b->dev = dev->core;
  b->length = length;
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t padded = (length + 15) / 16 * 16;
  b->map_len = (padded + page - 1) / page * page;
  b->front = b->map_len - padded;
  b->fd = static_cast<int>(memfd_create("mb_buffer", MFD_CLOEXEC));
  if (b->fd < 0 || ftruncate(b->fd, static_cast<off_t>(b->map_len)) != 0)
    return set_err(err, err_cap, MB_E_RESOURCE,
                   "cannot allocate a " + std::to_string(length) + "-byte buffer");
  void *m = mmap(nullptr, b->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
  if (m == MAP_FAILED)
    return set_err(err, err_cap, MB_E_RESOURCE,
                   "cannot map a " + std::to_string(length) + "-byte buffer");
  b->map = static_cast<unsigned char *>(m);
  b->data = b->map + b->front;
  // The slack holds the canary (the runner checks it after each dispatch).
  auto canary = [&](uint64_t from, uint64_t to) {
    for (uint64_t o = from; o < to; ++o)
      b->map[o] = static_cast<unsigned char>(mbipc::kCanaryWord >> (8 * (o % 4)));
  };
  canary(0, b->front);
  canary(b->front + length, b->map_len);
  {
    std::lock_guard<std::mutex> lock(dev->core->mu);
    b->id = dev->core->next_id++;
  }
  *out = new mb_buffer{b};
  return MB_OK;
}

int32_t mb_buffer_write(mb_buffer *buffer, uint64_t offset, const void *src, uint64_t length,
                        char *err, uint64_t err_cap) {
  CHECK_ARG(buffer && (src || length == 0), "mb_buffer_write: null argument");
  const BufferCore &b = *buffer->core;
  CHECK_ARG(offset <= b.length && length <= b.length - offset,
            "mb_buffer_write: " + std::to_string(length) + " bytes at offset " +
                std::to_string(offset) + " exceed the buffer's " + std::to_string(b.length));
  if (length) std::memcpy(b.data + offset, src, length);
  return MB_OK;
}

int32_t mb_buffer_read(mb_buffer *buffer, uint64_t offset, void *dst, uint64_t length, char *err,
                       uint64_t err_cap) {
  CHECK_ARG(buffer && (dst || length == 0), "mb_buffer_read: null argument");
  const BufferCore &b = *buffer->core;
  CHECK_ARG(offset <= b.length && length <= b.length - offset,
            "mb_buffer_read: " + std::to_string(length) + " bytes at offset " +
                std::to_string(offset) + " exceed the buffer's " + std::to_string(b.length));
  if (length) std::memcpy(dst, b.data + offset, length);
  return MB_OK;
}

void mb_buffer_free(mb_buffer *buffer) { delete buffer; }

// ---- commands ---------------------------------------------------------------

int32_t mb_command_new(mb_device *dev, mb_command **out, char *err, uint64_t err_cap) {
  CHECK_ARG(dev && out, "mb_command_new: null argument");
  *out = new mb_command{dev->core, Step{}, {}, {}};
  return MB_OK;
}

int32_t mb_command_set_pipeline(mb_command *cmd, mb_pipeline *pipeline, char *err,
                                uint64_t err_cap) {
  CHECK_ARG(cmd && pipeline, "mb_command_set_pipeline: null argument");
  CHECK_ARG(pipeline->core->dev == cmd->dev, "the pipeline belongs to another device");
  cmd->current.pipeline = pipeline->core;
  return MB_OK;
}

int32_t mb_command_set_buffer(mb_command *cmd, uint32_t index, mb_buffer *buffer, uint64_t offset,
                              char *err, uint64_t err_cap) {
  CHECK_ARG(cmd && buffer, "mb_command_set_buffer: null argument");
  CHECK_ARG(index < MB_SIM_MAX_BINDINGS, "buffer index " + std::to_string(index) +
                                             " is out of range (0..30)");
  CHECK_ARG(buffer->core->dev == cmd->dev, "the buffer belongs to another device");
  CHECK_ARG(offset <= buffer->core->length,
            "offset " + std::to_string(offset) + " is past the end of the buffer");
  Binding &b = cmd->current.bindings[index];
  b = Binding{};
  b.kind = 1;
  b.buffer = buffer->core;
  b.offset = offset;
  return MB_OK;
}

int32_t mb_command_set_bytes(mb_command *cmd, uint32_t index, const void *bytes, uint64_t length,
                             char *err, uint64_t err_cap) {
  CHECK_ARG(cmd && (bytes || length == 0), "mb_command_set_bytes: null argument");
  CHECK_ARG(index < MB_SIM_MAX_BINDINGS, "buffer index " + std::to_string(index) +
                                             " is out of range (0..30)");
  CHECK_ARG(length > 0 && length <= kMaxBytes,
            "setBytes takes 1 to 4096 bytes (got " + std::to_string(length) + "); use a buffer");
  Binding &b = cmd->current.bindings[index];
  b = Binding{};
  b.kind = 2;
  const auto *p = static_cast<const uint8_t *>(bytes);
  b.bytes.assign(p, p + length);
  return MB_OK;
}

int32_t mb_command_set_threadgroup_memory(mb_command *cmd, uint32_t index, uint64_t length,
                                          char *err, uint64_t err_cap) {
  CHECK_ARG(cmd, "mb_command_set_threadgroup_memory: null argument");
  CHECK_ARG(index < MB_SIM_MAX_BINDINGS, "threadgroup index " + std::to_string(index) +
                                             " is out of range (0..30)");
  CHECK_ARG(length % 16 == 0 && length <= kMaxThreadgroupMemory,
            "threadgroup memory length must be a multiple of 16 up to 32768 (got " +
                std::to_string(length) + ")");
  cmd->current.tg_len[index] = length;
  return MB_OK;
}

int32_t mb_command_dispatch(mb_command *cmd, uint32_t mode, uint32_t grid_x, uint32_t grid_y,
                            uint32_t grid_z, uint32_t group_x, uint32_t group_y, uint32_t group_z,
                            char *err, uint64_t err_cap) {
  CHECK_ARG(cmd, "mb_command_dispatch: null argument");
  Step s = cmd->current;
  CHECK_ARG(s.pipeline, "dispatch before a pipeline was set");
  const PipelineCore &p = *s.pipeline;
  const std::string k = "kernel '" + p.function + "'";
  CHECK_ARG(mode == MB_DISPATCH_THREADS || mode == MB_DISPATCH_THREADGROUPS,
            "unknown dispatch mode " + std::to_string(mode));
  uint64_t threads = uint64_t(group_x) * group_y * group_z;
  CHECK_ARG(group_x && group_y && group_z && threads <= p.max_threads,
            k + ": threadgroup size " + std::to_string(group_x) + "x" + std::to_string(group_y) +
                "x" + std::to_string(group_z) + " must be 1 to " + std::to_string(p.max_threads) +
                " threads");
  if (mode == MB_DISPATCH_THREADGROUPS)
    CHECK_ARG(uint64_t(grid_x) * group_x < (1ull << 32) && uint64_t(grid_y) * group_y < (1ull << 32) &&
                  uint64_t(grid_z) * group_z < (1ull << 32),
              k + ": the grid has more than 2^32 threads along one axis");
  uint64_t tg_total = p.static_tg;
  for (const Param &q : p.params) {
    const std::string what = (q.kind == MB_PARAM_BUFFER ? "[[buffer(" : "[[threadgroup(") +
                             std::to_string(q.index) + ")]]" +
                             (q.name.empty() ? "" : " '" + q.name + "'");
    if (q.kind == MB_PARAM_BUFFER) {
      const Binding &b = s.bindings[q.index];
      // As Metal, a pointer or reference the kernel does not use may stay
      // unbound: the runner gives it an address where any access faults,
      // naming it. A value is read on entry: it must be bound.
      const uint32_t need = q.min_bytes & ~MB_PARAM_REF_BIT;
      if (b.kind == 0 && (q.min_bytes == 0 || (q.min_bytes & MB_PARAM_REF_BIT))) continue;
      CHECK_ARG(b.kind != 0, k + " reads " + what + " but nothing is bound at index " +
                                 std::to_string(q.index));
      uint64_t have = b.kind == 1 ? b.buffer->length - b.offset : b.bytes.size();
      CHECK_ARG(have >= need, k + " reads " + std::to_string(need) + " bytes from " + what +
                                  " but only " + std::to_string(have) + " are bound");
    } else if (q.kind == MB_PARAM_THREADGROUP) {
      CHECK_ARG(s.tg_len[q.index] > 0, k + " takes " + what +
                                           " but no threadgroup memory length was set for it");
    }
  }
  // As on Metal, lengths set for earlier steps stay set, but a step binds
  // (and counts) only the [[threadgroup(n)]] indices its kernel declares.
  uint64_t declared[MB_SIM_MAX_BINDINGS] = {};
  for (const Param &q : p.params)
    if (q.kind == MB_PARAM_THREADGROUP) declared[q.index] = s.tg_len[q.index];
  std::copy(std::begin(declared), std::end(declared), std::begin(s.tg_len));
  for (uint64_t len : s.tg_len)
    if (len) tg_total = (tg_total + 15) / 16 * 16 + len;
  CHECK_ARG(tg_total <= kMaxThreadgroupMemory,
            k + " needs " + std::to_string(tg_total) + " bytes of threadgroup memory; the limit is " +
                std::to_string(kMaxThreadgroupMemory));
  s.mode = mode;
  s.grid[0] = grid_x;
  s.grid[1] = grid_y;
  s.grid[2] = grid_z;
  s.group[0] = group_x;
  s.group[1] = group_y;
  s.group[2] = group_z;
  cmd->steps.push_back(std::move(s));
  return MB_OK;
}

int32_t mb_command_end_launch(mb_command *cmd, char *err, uint64_t err_cap) {
  CHECK_ARG(cmd, "mb_command_end_launch: null argument");
  size_t from = cmd->launch_ends.empty() ? 0 : cmd->launch_ends.back();
  CHECK_ARG(cmd->steps.size() > from, "end of a launch with no dispatch in it");
  cmd->launch_ends.push_back(cmd->steps.size());
  return MB_OK;
}

int32_t mb_command_run(mb_command *cmd, uint32_t samples, uint32_t batch, double *wall_ns,
                       double *device_ns, char *err, uint64_t err_cap) {
  CHECK_ARG(cmd, "mb_command_run: null argument");
  CHECK_ARG(batch > 0, "batch must be at least 1");
  CHECK_ARG(samples == 0 || (wall_ns && device_ns), "mb_command_run: null timing arrays");
  Device &d = *cmd->dev;
  std::lock_guard<std::mutex> lock(d.mu);
  if (d.closed) return set_err(err, err_cap, MB_E_ARGUMENT, "the device is closed");
  if (cmd->steps.empty()) {
    for (uint32_t i = 0; i < samples; ++i) wall_ns[i] = device_ns[i] = 0;
    return MB_OK;
  }
  std::string msg;
  // A sandboxed runner loads nothing new: if this command needs a pipeline
  // the runner lacks, a fresh runner gets all of them.
  for (const Step &s : cmd->steps)
    if (s.pipeline->generation != d.generation && d.sandboxed) d.stop_runner();
  for (int attempt = 0;; ++attempt) {
    // (Re)load what the current runner lacks; a runner that died during a
    // previous call is replaced here.
    int32_t st = MB_OK;
    for (Step &s : cmd->steps) {
      if ((st = s.pipeline->ensure_loaded(&msg)) != MB_OK) break;
      for (Binding &b : s.bindings) {
        if (b.kind != 1 || b.buffer->generation == d.generation) continue;
        Writer w;
        w.put<uint32_t>(b.buffer->id);
        w.put<uint64_t>(b.buffer->length);
        w.put<uint64_t>(b.buffer->front);
        w.put<uint64_t>(b.buffer->map_len);
        if (!d.send(mbipc::BUFFER_ADD, w, b.buffer->fd)) {
          msg = d.runner_death(nullptr, nullptr);
          st = MB_E_EXECUTION;
          break;
        }
        b.buffer->generation = d.generation;
      }
      if (st != MB_OK) break;
    }
    if (st == MB_OK) break;
    if (attempt > 0 || st != MB_E_EXECUTION) return set_err(err, err_cap, st, msg);
  }

  // Each step serialized once; a sample's RUN lists the steps of its launches.
  std::vector<std::vector<uint8_t>> encoded;
  for (const Step &s : cmd->steps) {
    Writer w;
    w.put<uint32_t>(s.pipeline->id);
    w.put<uint32_t>(s.mode);
    for (uint32_t g : s.grid) w.put<uint32_t>(g);
    for (uint32_t g : s.group) w.put<uint32_t>(g);
    uint32_t nb = 0;
    for (const Binding &b : s.bindings) nb += b.kind != 0;
    w.put<uint32_t>(nb);
    for (uint32_t i = 0; i < MB_SIM_MAX_BINDINGS; ++i) {
      const Binding &b = s.bindings[i];
      if (b.kind == 0) continue;
      w.put<uint32_t>(i);
      w.put<uint32_t>(static_cast<uint32_t>(b.kind));
      if (b.kind == 1) {
        w.put<uint32_t>(b.buffer->id);
        w.put<uint64_t>(b.offset);
      } else {
        w.put<uint32_t>(static_cast<uint32_t>(b.bytes.size()));
        w.bytes(b.bytes.data(), b.bytes.size());
      }
    }
    uint32_t nt = 0;
    for (uint64_t len : s.tg_len) nt += len != 0;
    w.put<uint32_t>(nt);
    for (uint32_t i = 0; i < MB_SIM_MAX_BINDINGS; ++i)
      if (s.tg_len[i]) {
        w.put<uint32_t>(i);
        w.put<uint32_t>(static_cast<uint32_t>(s.tg_len[i]));
      }
    encoded.push_back(w.data());
  }
  // Launch k is steps [starts[k], ends[k]); steps after the last boundary are one more.
  std::vector<size_t> starts, ends = cmd->launch_ends;
  if (ends.empty() || ends.back() < cmd->steps.size()) ends.push_back(cmd->steps.size());
  for (size_t k = 0; k < ends.size(); ++k) starts.push_back(k ? ends[k - 1] : 0);
  const size_t launches = ends.size();
  // One launch: the runner repeats it `batch` times. Several: the sample's
  // launches are listed in rotation order and run once each.
  auto sample_request = [&](uint32_t sample, std::vector<std::string> *names, uint64_t *dispatches) {
    Writer w;
    std::vector<size_t> order;
    for (uint32_t b = 0; b < (launches == 1 ? 1u : batch); ++b) {
      size_t k = (uint64_t(sample) * batch + b) % launches;
      for (size_t i = starts[k]; i < ends[k]; ++i) order.push_back(i);
    }
    w.put<uint64_t>(0); // the nonce, set per sample
    w.put<uint32_t>(launches == 1 ? batch : 1);
    w.put<uint32_t>(static_cast<uint32_t>(order.size()));
    names->clear();
    for (size_t i : order) {
      names->push_back(cmd->steps[i].pipeline->function);
      w.bytes(encoded[i].data(), encoded[i].size());
    }
    *dispatches = uint64_t(order.size()) * (launches == 1 ? batch : 1);
    return w;
  };
  std::vector<std::string> names;
  uint64_t dispatches = 0;
  Writer w = sample_request(0, &names, &dispatches);
  d.sandboxed = d.sandbox; // the runner enters its sandbox before running
  d.clear_output();
  // Times from outside the runner: wall time on this process's clock, device
  // time from the runner's CPU clock. CPU time is billed from one answer to
  // the next, so work the runner does between samples is not hidden.
  uint64_t cpu_prev = 0;
  if (samples > 0 && !d.runner_cpu_ns(&cpu_prev))
    return set_err(err, err_cap, MB_E_INTERNAL, "simulator: cannot read the runner's CPU clock");
  // Nothing may wait on the channel (kernel code writing after an earlier
  // answer); within the run, a stray frame fails the next answer's check.
  int32_t st;
  std::string quiet = d.quiet_channel(nullptr, &st);
  if (!quiet.empty()) return set_err(err, err_cap, st, quiet);
  for (uint32_t i = 0; i < samples; ++i) {
    if (launches > 1 && i > 0) w = sample_request(i, &names, &dispatches);
    const uint64_t nonce = mbipc::fresh_nonce();
    w.set<uint64_t>(0, nonce);
    uint64_t t0 = now_ns();
    if (!d.send(mbipc::RUN, w))
      return set_err(err, err_cap, MB_E_EXECUTION, d.runner_death(&names, nullptr));
    // Each dispatch gets the time limit, and the sample one more: however
    // kernel code rewrites the control page, the wait ends.
    Wait wait{mbipc::RAN, nonce, after_ms(t0, d.timeout_ms, dispatches + 1), d.timeout_ms};
    wait.steps = &names;
    Reply r = d.wait_reply(wait);
    uint64_t t1 = now_ns();
    if (r.status != MB_OK) return set_err(err, err_cap, r.status, r.message);
    uint64_t cpu;
    if (!d.runner_cpu_ns(&cpu))
      return set_err(err, err_cap, MB_E_INTERNAL, "simulator: cannot read the runner's CPU clock");
    wall_ns[i] = static_cast<double>(t1 - t0) / batch;
    device_ns[i] = static_cast<double>(cpu - cpu_prev) / batch;
    cpu_prev = cpu;
  }
  quiet = d.quiet_channel(&names, &st);
  if (!quiet.empty()) return set_err(err, err_cap, st, quiet);
  return MB_OK;
}

int32_t mb_command_capture(mb_command *cmd, const char *trace_path, char *err, uint64_t err_cap) {
  (void)cmd;
  (void)trace_path;
  return set_err(err, err_cap, MB_E_UNSUPPORTED,
                 "GPU capture needs the Metal backend; the simulator cannot capture");
}

void mb_command_free(mb_command *cmd) { delete cmd; }

} // extern "C"
