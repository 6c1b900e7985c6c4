// The simulator's scheduler: runs the threadgroups of a dispatch on a few OS
// threads (one group at a time per OS thread), and the threads of a group
// either as a plain loop (kernels that call no barrier and no SIMD-group
// function) or as cooperative fibers on that OS thread, so that
// threadgroup_barrier and the SIMD-group collectives are exact.
//
// With fibers, SIMD groups run one at a time, each as far as it can go
// (through its collectives) before the next one starts, and in a different
// order between each pair of barriers: a missing barrier shows as a wrong
// result instead of hiding behind a lockstep schedule. The order is a
// shuffle seeded by the group, the phase and the job's order_seed (the
// runner counts its dispatches): repeated runs try different orders, and a
// runner given the same sequence of dispatches repeats them.
#pragma once

#include "mb_sim_abi.h"

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace mbsim {

struct Kernel {
  std::string name;
  mb_kernel_run_fn run = nullptr;
  unsigned static_tg_bytes = 0;
  bool uses_sync = true; // calls barriers or SIMD-group functions: fibers
};

// One dispatch, ready to run.
struct DispatchJob {
  const Kernel *kernel = nullptr;
  mb_dispatch d{};          // grid sizes, bound buffers
  bool partial_edges = false; // dispatchThreads: edge groups hold only the grid's threads
  unsigned tg_arg_offset[MB_SIM_MAX_BINDINGS]{}; // [[threadgroup(n)]] offsets in the arena
  unsigned arena_bytes = 0;                      // static vars + [[threadgroup(n)]] allocations
  unsigned long long order_seed = 0;             // varies the SIMD groups' order run to run
};

// What the fault handler reports about the simulated thread that was running
// on the faulting OS thread. Read from a signal handler: plain data only.
struct FaultInfo {
  const char *kernel;
  const mb_dispatch *dispatch;
  unsigned group[3];
  unsigned thread[3];
  bool in_thread;      // a simulated thread was running (else: scheduler code)
  bool stack_overflow; // the address is in the guard below a fiber's stack
  unsigned stack_kb;
  const unsigned char *arena; // this group's threadgroup memory
  unsigned arena_bytes;
};
bool current_fault_info(const void *addr, FaultInfo *out);

// The services kernel code calls (barrier, SIMD collectives, arena).
// `misaligned` reports through the runner's fault channel and never returns.
using MisalignedFn = void (*)(const char *file, unsigned line, unsigned column, const char *type,
                              unsigned alignment, const void *address, unsigned access);
const mb_rt *runtime_table(MisalignedFn misaligned);

class Worker;

// Runs dispatches on its own worker threads; the thread that owns it (the
// runner's control thread, which talks to the bridge) never runs kernel
// code. Worker 0 (the lead) runs the caller's tasks and takes part in every
// dispatch; the others join dispatches large enough to share.
class Executor {
public:
  // `workers` OS threads, all started here (before any sandbox);
  // thread_init runs first on each (e.g. sigaltstack).
  Executor(unsigned workers, size_t stack_bytes, void (*thread_init)());
  ~Executor();
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;

  // Runs task(arg) on the lead worker and waits for it to return.
  void perform(void (*task)(void *), void *arg);

  // From now on every worker thread calls `restrict` on itself before it
  // next runs kernel code (e.g. a stricter seccomp filter); a failure fails
  // that dispatch.
  void restrict_threads(bool (*restrict)(std::string *err));

  // Runs every threadgroup of the job; only inside a task (on the lead). On
  // a deadlock (barrier reached by only some threads) returns false with a
  // message naming the kernel.
  bool run(const DispatchJob &job, std::string *err);

private:
  void lead_main();
  void helper_main(unsigned index);
  void thread_start(unsigned index);
  void run_groups(Worker &w);

  void (*thread_init_)();
  bool (*restrict_)(std::string *) = nullptr;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  const DispatchJob *job_ = nullptr;
  unsigned long generation_ = 0;
  unsigned busy_ = 0;
  unsigned active_helpers_ = 0; // helpers taking part in the current job
  size_t started_ = 0;          // threads past their start-up
  bool quit_ = false;
  std::atomic<unsigned long> next_group_{0};
  unsigned long total_groups_ = 0;
  std::atomic<bool> failed_{false};
  std::string error_;

  // The lead's task: posted and done count tasks (futex words).
  void (*task_)(void *) = nullptr;
  void *task_arg_ = nullptr;
  std::atomic<uint32_t> task_posted_{0};
  std::atomic<uint32_t> task_done_{0};
  std::atomic<bool> task_quit_{false};
};

} // namespace mbsim
