// Scheduler: threadgroups over OS threads; the threads of a group as a plain
// loop, or over fibers when the kernel synchronizes (see scheduler.h).
#include "scheduler.h"

#include "fiber.h"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace mbsim {

namespace {

// Where a simulated thread is parked (set while its fiber is switched out).
enum Park : unsigned char { P_NONE, P_READY, P_BARRIER, P_SIMD };

struct Fiber {
  void *sp = nullptr;
  Fiber *next_idle = nullptr;
};

struct Parked {
  Park park;
  Fiber *fiber;
  mb_simd_slot *slot;                 // P_SIMD: the pending collective
  const char *file;                   // P_BARRIER: the barrier's call site
  unsigned line, column;
};

bool same_site(const mb_simd_slot *a, const mb_simd_slot *b) {
  return a->site_line == b->site_line && a->site_column == b->site_column &&
         a->site_file == b->site_file;
}

const char *base_name(const char *path) {
  const char *b = path;
  for (const char *p = path; p && *p; ++p)
    if (*p == '/') b = p + 1;
  return b ? b : "?";
}

std::string xyz(const unsigned *p) {
  return "(" + std::to_string(p[0]) + "," + std::to_string(p[1]) + "," + std::to_string(p[2]) +
         ")";
}

constexpr unsigned kWidth = MB_SIM_SIMD_WIDTH;
constexpr unsigned kMaxFibers = MB_SIM_MAX_THREADS + 1;
constexpr unsigned kMaxSimdGroups = MB_SIM_MAX_THREADS / kWidth;
constexpr size_t kGuard = 64 * 1024; // below each fiber stack: overflow faults
constexpr size_t kArenaBytes = 64 * 1024;
constexpr size_t kArenaGuard = 64 * 1024; // after the arena: overruns fault
// Below this many threads a dispatch runs on one OS thread: waking helpers
// costs more than they save.
constexpr unsigned long kParallelThreads = 2048;

MisalignedFn g_misaligned = nullptr;

// A futex word: wait while it holds `seen`, wake its waiters.
void word_wait(std::atomic<uint32_t> &w, uint32_t seen) {
  while (w.load(std::memory_order_acquire) == seen)
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(&w), FUTEX_WAIT_PRIVATE, seen, nullptr,
            nullptr, 0);
}
void word_wake(std::atomic<uint32_t> &w) {
  syscall(SYS_futex, reinterpret_cast<uint32_t *>(&w), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

} // namespace

class Worker {
public:
  explicit Worker(size_t stack_bytes);
  ~Worker();

  bool run_group(const DispatchJob &job, unsigned long linear, const unsigned pos[3],
                 std::string *err);

  // Runtime services, called from kernel code on one of this worker's fibers.
  unsigned char *arena() { return arena_; }
  void wait(Park why, mb_simd_slot *slot, const char *file, unsigned line, unsigned column);
  unsigned current_index() const { return cursor_.current ? cursor_.current->index : 0; }

  // For the fault handler.
  bool in_stack_guard(uintptr_t a) const {
    auto base = reinterpret_cast<uintptr_t>(stacks_);
    size_t slot = kGuard + stack_bytes_;
    return stacks_ && a >= base && a < base + kMaxFibers * slot && (a - base) % slot < kGuard;
  }
  size_t stack_bytes() const { return stack_bytes_; }
  const mb_thread *current() const { return cursor_.current; }
  const DispatchJob *job_ = nullptr;
  unsigned group_pos_[3] = {0, 0, 0};
  bool restricted_ = false; // Executor::restrict_threads' filter is on this thread

private:
  static void fiber_entry(void *self) { static_cast<Worker *>(self)->fiber_loop(); }
  [[noreturn]] void fiber_loop();
  Fiber *take_fiber();
  void resume(Fiber *f);
  void reset_stuck_fibers();
  void *fresh_stack_pointer(Fiber *f);

  bool run_fibers(std::string *err);
  Fiber *continue_simd_group(unsigned s);
  int release_barrier(std::string *err); // 1 released, 0 all done, -1 error
  void shuffle_order(unsigned phase);
  unsigned sg_end(unsigned s) const { return std::min(n_, (s + 1) * kWidth); }
  bool sg_started(unsigned s) const { return cursor_.next >= sg_first_[s] + (sg_end(s) - s * kWidth); }

  size_t stack_bytes_;
  unsigned char *stacks_ = nullptr; // kMaxFibers x (guard + stack), reserved once
  Fiber fibers_[kMaxFibers];
  unsigned n_fibers_ = 0;
  Fiber *idle_ = nullptr;
  Fiber *running_ = nullptr;
  void *sched_sp_ = nullptr;

  unsigned char *arena_map_ = nullptr;
  unsigned char *arena_ = nullptr; // this group's threadgroup memory, ending at the guard
  mb_group group_{};
  mb_cursor cursor_{};
  mb_thread threads_[MB_SIM_MAX_THREADS];
  Parked parked_[MB_SIM_MAX_THREADS];
  unsigned short order_[MB_SIM_MAX_THREADS];
  unsigned sg_prio_[kMaxSimdGroups];  // SIMD groups in this phase's order
  unsigned sg_first_[kMaxSimdGroups]; // position of a SIMD group's first lane in order_
  unsigned ready_[kMaxSimdGroups];    // per SIMD group: lanes ready to go on (bit = lane)
  unsigned n_ = 0, n_sg_ = 0, phase_ = 0;
  unsigned long linear_ = 0;
  unsigned last_size_[3] = {0, 0, 0};
  bool stacks_ok_ = true;
};

namespace {
thread_local Worker *tls_worker = nullptr;

unsigned char *rt_arena() { return tls_worker->arena(); }
void rt_barrier(unsigned, const char *file, unsigned line, unsigned column) {
  tls_worker->wait(P_BARRIER, nullptr, file, line, column);
}
void rt_simd(mb_simd_slot *slot) { tls_worker->wait(P_SIMD, slot, nullptr, 0, 0); }
unsigned rt_thread_index() { return tls_worker->current_index(); }
void rt_misaligned(const char *file, unsigned line, unsigned column, const char *type,
                   unsigned alignment, const void *address, unsigned access) {
  g_misaligned(file, line, column, type, alignment, address, access);
}
const mb_rt kRuntime = {MB_SIM_RT_ABI, rt_arena,        rt_barrier, rt_simd,
                        rt_misaligned, rt_thread_index};

void *reserve(size_t bytes) {
  void *p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
} // namespace

const mb_rt *runtime_table(MisalignedFn misaligned) {
  g_misaligned = misaligned;
  return &kRuntime;
}

bool current_fault_info(const void *addr, FaultInfo *out) {
  Worker *w = tls_worker;
  if (!w || !w->job_) return false;
  out->stack_overflow = w->in_stack_guard(reinterpret_cast<uintptr_t>(addr));
  out->stack_kb = static_cast<unsigned>(w->stack_bytes() / 1024);
  out->kernel = w->job_->kernel->name.c_str();
  out->dispatch = &w->job_->d;
  out->arena = w->arena();
  out->arena_bytes = w->job_->arena_bytes;
  std::memcpy(out->group, w->group_pos_, sizeof out->group);
  const mb_thread *t = w->current();
  out->in_thread = t != nullptr;
  if (t) std::memcpy(out->thread, t->position, sizeof out->thread);
  return true;
}

// ---- Worker -----------------------------------------------------------

Worker::Worker(size_t stack_bytes) : stack_bytes_(stack_bytes) {
  stacks_ = static_cast<unsigned char *>(reserve(kMaxFibers * (kGuard + stack_bytes_)));
  // The arena, then an inaccessible guard: each group's memory ends right
  // at the guard, so running past its end faults.
  auto *a = static_cast<unsigned char *>(reserve(kArenaBytes + kArenaGuard));
  if (a && mprotect(a, kArenaBytes, PROT_READ | PROT_WRITE) == 0) arena_map_ = a;
  arena_ = arena_map_ ? arena_map_ + kArenaBytes : nullptr;
}

Worker::~Worker() {
  if (stacks_) munmap(stacks_, kMaxFibers * (kGuard + stack_bytes_));
  if (arena_map_) munmap(arena_map_, kArenaBytes + kArenaGuard);
}

void *Worker::fresh_stack_pointer(Fiber *f) {
  size_t i = static_cast<size_t>(f - fibers_);
  // Stack tops at different cache sets: equally spaced stacks would all
  // compete for the same few sets, and a barrier touches every one of them.
  size_t color = (i % 64) * 64 + (i / 64 % 4) * 4096;
  unsigned char *top = stacks_ + (i + 1) * (kGuard + stack_bytes_) - color;
  return fiber_prepare(top, &Worker::fiber_entry, this);
}

Fiber *Worker::take_fiber() {
  if (Fiber *f = idle_) {
    idle_ = f->next_idle;
    return f;
  }
  if (!stacks_ || n_fibers_ == kMaxFibers) return nullptr;
  Fiber *f = &fibers_[n_fibers_];
  unsigned char *stack = stacks_ + n_fibers_ * (kGuard + stack_bytes_) + kGuard;
  if (mprotect(stack, stack_bytes_, PROT_READ | PROT_WRITE) != 0) return nullptr;
  ++n_fibers_;
  f->sp = fresh_stack_pointer(f);
  return f;
}

void Worker::resume(Fiber *f) {
  running_ = f;
  mb_fiber_switch(&sched_sp_, f->sp);
  running_ = nullptr;
  cursor_.current = nullptr;
}

// A fiber runs the kernel's thread loop (mb_kernel_run): threads one after
// another until one blocks; resumed, it finishes that thread and goes on
// with the next unstarted one, if any. With none left it is idle.
void Worker::fiber_loop() {
  for (;;) {
    job_->kernel->run(&job_->d, &group_, &cursor_);
    Fiber *self = running_;
    self->next_idle = idle_;
    idle_ = self;
    mb_fiber_switch(&self->sp, sched_sp_);
  }
}

// The calling thread parks; its SIMD group goes on directly on the next
// fiber (a ready lane, a lane to start, or the lanes of a collective that is
// now complete), without a round trip through the scheduler.
void Worker::wait(Park why, mb_simd_slot *slot, const char *file, unsigned line,
                  unsigned column) {
  mb_thread *t = cursor_.current;
  if (!running_ || !t) __builtin_trap(); // not on a fiber: the kernel's sync mark is missing
  Parked &p = parked_[t->index];
  p.park = why;
  p.fiber = running_;
  p.slot = slot;
  p.file = file;
  p.line = line;
  p.column = column;
  Fiber *self = running_;
  Fiber *next = continue_simd_group(t->index / kWidth);
  if (next == self) return; // this very thread is the next to run
  running_ = next;
  mb_fiber_switch(&self->sp, next ? next->sp : sched_sp_);
  // resumed: cursor_.current is this thread again
}

// The SIMD groups' order for a phase (the stretch between two barriers).
void Worker::shuffle_order(unsigned phase) {
  for (unsigned k = 0; k < n_sg_; ++k) sg_prio_[k] = k;
  unsigned long long x = (linear_ + 1) * 0x9E3779B97F4A7C15ull ^ (phase + 1) * 0xBF58476D1CE4E5B9ull ^
                         (job_->order_seed + 1) * 0xD6E8FEB86659FD93ull;
  for (unsigned k = n_sg_; k > 1; --k) {
    x ^= x >> 31;
    x *= 0x94D049BB133111EBull;
    x ^= x >> 29;
    std::swap(sg_prio_[k - 1], sg_prio_[x % k]);
  }
}

bool Worker::run_group(const DispatchJob &job, unsigned long linear, const unsigned pos[3],
                       std::string *err) {
  job_ = &job;
  linear_ = linear;
  unsigned size[3];
  for (int i = 0; i < 3; ++i) {
    unsigned tg = job.d.group_threads[i];
    size[i] = job.partial_edges ? std::min(tg, job.d.grid_threads[i] - pos[i] * tg) : tg;
    group_.position[i] = pos[i];
    group_.size[i] = size[i];
    group_pos_[i] = pos[i];
  }
  if (!arena_map_ || !stacks_) {
    *err = "simulator: out of memory for threadgroup stacks";
    return false;
  }
  // Threadgroup memory starts poisoned: 0xFF bytes read as NaN / -1.
  arena_ = arena_map_ + kArenaBytes - (job.arena_bytes + 15) / 16 * 16;
  std::memset(arena_, 0xFF, job.arena_bytes);
  for (int i = 0; i < MB_SIM_MAX_BINDINGS; ++i)
    group_.threadgroup_args[i] = arena_ + job.tg_arg_offset[i];

  n_ = size[0] * size[1] * size[2];
  if (std::memcmp(size, last_size_, sizeof size) != 0) {
    unsigned i = 0;
    for (unsigned z = 0; z < size[2]; ++z)
      for (unsigned y = 0; y < size[1]; ++y)
        for (unsigned x = 0; x < size[0]; ++x, ++i) threads_[i] = mb_thread{{x, y, z}, i, 0};
    std::memcpy(last_size_, size, sizeof size);
  } else {
    for (unsigned i = 0; i < n_; ++i) threads_[i].done = 0;
  }
  bool ok = true;
  stacks_ok_ = true;
  if (!job.kernel->uses_sync) {
    cursor_ = mb_cursor{0, n_, nullptr, threads_, nullptr};
    job.kernel->run(&job.d, &group_, &cursor_);
    cursor_.current = nullptr;
  } else {
    ok = run_fibers(err);
    if (!ok) reset_stuck_fibers();
  }
  job_ = nullptr;
  return ok;
}

// Runs the group's threads on fibers, SIMD group by SIMD group.
bool Worker::run_fibers(std::string *err) {
  n_sg_ = (n_ + kWidth - 1) / kWidth;
  phase_ = 0;
  shuffle_order(0);
  unsigned k = 0;
  for (unsigned j = 0; j < n_sg_; ++j) {
    unsigned s = sg_prio_[j];
    sg_first_[s] = k;
    for (unsigned i = s * kWidth; i < sg_end(s); ++i) order_[k++] = static_cast<unsigned short>(i);
  }
  for (unsigned i = 0; i < n_; ++i) parked_[i].park = P_NONE;
  for (unsigned j = 0; j < n_sg_; ++j) ready_[j] = 0;
  cursor_ = mb_cursor{0, n_, order_, threads_, nullptr};
  for (;;) {
    bool any = false;
    for (unsigned j = 0; j < n_sg_; ++j)
      while (Fiber *f = continue_simd_group(sg_prio_[j])) {
        resume(f);
        any = true;
      }
    if (!stacks_ok_) {
      *err = "simulator: out of fiber stacks";
      return false;
    }
    if (any) continue;
    int r = release_barrier(err);
    if (r < 0) return false;
    if (r == 0) return true;
  }
}

// What SIMD group s runs next: its lowest ready lane; else a fiber to start
// its next lane; else, once all its lanes have started, a collective its
// lanes wait at is completed and its lowest lane goes on. Lanes
// waiting at a barrier, or returned, do not take part (inactive lanes).
// nullptr when all its lanes wait at a barrier or have returned.
Fiber *Worker::continue_simd_group(unsigned s) {
  const unsigned lo = s * kWidth, hi = sg_end(s);
  for (;;) {
    if (ready_[s]) {
      unsigned i = lo + static_cast<unsigned>(__builtin_ctz(ready_[s]));
      ready_[s] &= ready_[s] - 1;
      parked_[i].park = P_NONE;
      cursor_.current = &threads_[i];
      return parked_[i].fiber;
    }
    if (cursor_.next < n_ && !sg_started(s)) {
      Fiber *f = take_fiber();
      if (!f) stacks_ok_ = false;
      return f;
    }
    // Lanes at different collectives (divergent branches): the one earliest
    // in the source goes first, as a GPU runs a branch body before the lanes
    // that skipped it rejoin them further down.
    const mb_simd_slot *site = nullptr;
    for (unsigned i = lo; i < hi; ++i) {
      if (parked_[i].park != P_SIMD) continue;
      const mb_simd_slot *c = parked_[i].slot;
      if (!site || (c->site_file == site->site_file &&
                    (c->site_line < site->site_line ||
                     (c->site_line == site->site_line && c->site_column < site->site_column))))
        site = c;
    }
    if (!site) return nullptr;
    mb_simd_slot *lanes[kWidth] = {};
    unsigned mask = 0;
    mb_simd_combine combine = nullptr;
    for (unsigned i = lo; i < hi; ++i) {
      Parked &p = parked_[i];
      if (p.park != P_SIMD || !same_site(p.slot, site)) continue;
      lanes[i - lo] = p.slot;
      p.slot->lane = i - lo;
      mask |= 1u << (i - lo);
      combine = p.slot->combine;
      p.park = P_READY;
    }
    combine(lanes, mask);
    ready_[s] = mask;
  }
}

// Every thread has returned or waits at a barrier: release the barrier (1),
// or all are done (0), or the barrier is not one all threads reach (-1).
int Worker::release_barrier(std::string *err) {
  unsigned waiting = 0, done = 0;
  const mb_thread *first = nullptr, *other = nullptr;
  unsigned at_first = 0;
  for (unsigned i = 0; i < n_; ++i) {
    if (threads_[i].done) {
      ++done;
      continue;
    }
    const Parked &p = parked_[i];
    if (p.park != P_BARRIER) continue;
    ++waiting;
    if (!first) first = &threads_[i];
    const Parked &f = parked_[first->index];
    if (p.line == f.line && p.column == f.column && p.file == f.file) ++at_first;
    else if (!other) other = &threads_[i];
  }
  if (waiting == 0) return 0;
  if (done == 0 && !other) {
    for (unsigned i = 0; i < n_; ++i)
      if (parked_[i].park == P_BARRIER) {
        parked_[i].park = P_READY;
        ready_[i / kWidth] |= 1u << (i % kWidth);
      }
    shuffle_order(++phase_);
    return 1;
  }
  const std::string where = "threadgroup " + xyz(group_.position) + " in kernel '" +
                            job_->kernel->name + "'";
  auto site = [&](const mb_thread *t) {
    const Parked &p = parked_[t->index];
    return std::string(base_name(p.file)) + ":" + std::to_string(p.line);
  };
  if (done > 0) {
    *err = "threadgroup_barrier reached by only some threads of " + where + ": " +
           std::to_string(waiting) + " thread(s) wait at the barrier at " + site(first) +
           " (first: thread " + xyz(first->position) + "), " + std::to_string(done) +
           " returned without reaching it (every thread of a threadgroup must reach each "
           "barrier)";
    return -1;
  }
  *err = "threads of " + where + " wait at different barriers: " + std::to_string(at_first) +
           " at " + site(first) + " (first: thread " + xyz(first->position) + "), " +
           std::to_string(waiting - at_first) + " elsewhere, e.g. thread " +
           xyz(other->position) + " at " + site(other) +
           " (every thread of a threadgroup must reach the same barrier)";
  return -1;
}

// After a deadlock, fibers still hold parked threads: restart them fresh.
void Worker::reset_stuck_fibers() {
  for (unsigned i = 0; i < n_; ++i) {
    Parked &p = parked_[i];
    if (p.park == P_NONE) continue;
    p.fiber->sp = fresh_stack_pointer(p.fiber);
    p.fiber->next_idle = idle_;
    idle_ = p.fiber;
    p.park = P_NONE;
  }
  cursor_.current = nullptr;
}

// ---- Executor ---------------------------------------------------------

Executor::Executor(unsigned workers, size_t stack_bytes, void (*thread_init)())
    : thread_init_(thread_init) {
  workers = std::max(1u, std::min(workers, 64u));
  for (unsigned i = 0; i < workers; ++i) workers_.push_back(std::make_unique<Worker>(stack_bytes));
  // All threads exist, fully started, before the runner sandboxes itself:
  // a thread still starting up makes system calls the sandbox refuses.
  threads_.emplace_back([this] { lead_main(); });
  for (unsigned i = 1; i < workers; ++i) threads_.emplace_back([this, i] { helper_main(i); });
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return started_ == threads_.size(); });
}

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  task_quit_ = true;
  task_posted_.fetch_add(1, std::memory_order_release);
  word_wake(task_posted_);
  for (auto &t : threads_) t.join();
}

void Executor::thread_start(unsigned index) {
  if (thread_init_) thread_init_();
  // This thread's malloc arena, made now: making one inside the sandbox
  // would ask the system how many CPUs there are.
  void *volatile probe = std::malloc(64);
  std::free(probe);
  tls_worker = workers_[index].get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++started_;
  }
  done_cv_.notify_all();
}

void Executor::restrict_threads(bool (*restrict)(std::string *err)) { restrict_ = restrict; }

// One handoff each way per task: the caller posts and sleeps, the lead wakes,
// runs the task and wakes the caller (no spinning: a spinning thread's time
// would count as the kernel's CPU time).
void Executor::perform(void (*task)(void *), void *arg) {
  task_ = task;
  task_arg_ = arg;
  const uint32_t posted = task_posted_.load() + 1;
  task_posted_.store(posted, std::memory_order_release);
  word_wake(task_posted_);
  word_wait(task_done_, posted - 1);
}

void Executor::lead_main() {
  thread_start(0);
  for (uint32_t seen = 0;;) {
    word_wait(task_posted_, seen);
    seen = task_posted_.load(std::memory_order_acquire);
    if (task_quit_.load()) return;
    task_(task_arg_);
    task_done_.store(seen, std::memory_order_release);
    word_wake(task_done_);
  }
}

void Executor::run_groups(Worker &w) {
  // Kernel code runs on worker threads only, each restricted first.
  if (tls_worker != &w) __builtin_trap();
  if (restrict_ && !w.restricted_) {
    std::string why;
    if (!restrict_(&why)) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!failed_.exchange(true)) error_ = "simulator: cannot restrict a worker thread: " + why;
      return;
    }
    w.restricted_ = true;
  }
  const DispatchJob &job = *job_;
  const unsigned *n = job.d.grid_groups;
  std::string err;
  for (;;) {
    if (failed_.load(std::memory_order_relaxed)) return;
    unsigned long i = next_group_.fetch_add(1, std::memory_order_relaxed);
    if (i >= total_groups_) return;
    unsigned pos[3] = {static_cast<unsigned>(i % n[0]), static_cast<unsigned>(i / n[0] % n[1]),
                       static_cast<unsigned>(i / n[0] / n[1])};
    if (!w.run_group(job, i, pos, &err)) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!failed_.exchange(true)) error_ = err;
      return;
    }
  }
}

void Executor::helper_main(unsigned index) {
  thread_start(index);
  Worker &w = *workers_[index];
  unsigned long seen = 0;
  for (;;) {
    bool take_part;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return quit_ || generation_ != seen; });
      if (quit_) return;
      seen = generation_;
      take_part = index <= active_helpers_;
    }
    if (take_part) run_groups(w);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --busy_;
    }
    done_cv_.notify_one();
  }
}

bool Executor::run(const DispatchJob &job, std::string *err) {
  if (tls_worker != workers_[0].get()) __builtin_trap(); // only the lead runs dispatches
  const unsigned *n = job.d.grid_groups;
  total_groups_ = static_cast<unsigned long>(n[0]) * n[1] * n[2];
  if (total_groups_ == 0) return true;
  job_ = &job;
  next_group_ = 0;
  failed_ = false;
  error_.clear();
  const unsigned *g = job.d.group_threads;
  unsigned long threads = total_groups_ * g[0] * g[1] * g[2];
  const unsigned n_helpers = static_cast<unsigned>(workers_.size() - 1);
  unsigned helpers =
      threads < kParallelThreads
          ? 0
          : static_cast<unsigned>(std::min<unsigned long>(n_helpers, total_groups_ - 1));
  if (helpers > 0) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      busy_ = n_helpers;
      active_helpers_ = helpers;
      ++generation_;
    }
    cv_.notify_all();
  }
  run_groups(*workers_[0]);
  if (helpers > 0) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return busy_ == 0; });
  }
  job_ = nullptr;
  if (failed_) {
    *err = error_;
    return false;
  }
  return true;
}

} // namespace mbsim
