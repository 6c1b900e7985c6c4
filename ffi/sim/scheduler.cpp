// Scheduler: threadgroups over OS threads, simulated threads over fibers.
#include "scheduler.h"

#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace mbsim {

namespace {

enum ThreadState : unsigned char { T_UNSTARTED, T_RUNNING, T_READY, T_BARRIER, T_SIMD, T_DONE };
enum FiberEvent : unsigned char { EV_BLOCKED, EV_IDLE };

struct Fiber {
  void *sp = nullptr;
  Fiber *next_idle = nullptr;
};

struct SimThread {
  mb_thread info;
  ThreadState state;
  Fiber *fiber;
  mb_simd_slot *slot; // of the pending SIMD collective
};

bool same_site(const mb_simd_slot *a, const mb_simd_slot *b) {
  return a->site_line == b->site_line && a->site_column == b->site_column &&
         a->site_file == b->site_file;
}

constexpr unsigned kMaxFibers = MB_SIM_MAX_THREADS + 1;
constexpr size_t kGuard = 64 * 1024; // below each fiber stack: overflow faults
constexpr size_t kArenaBytes = 64 * 1024;

} // namespace

class Worker {
public:
  explicit Worker(size_t stack_bytes);
  ~Worker();

  bool run_group(const DispatchJob &job, const unsigned pos[3], std::string *err);

  // Runtime services, called from kernel code on one of this worker's fibers.
  unsigned char *arena() { return arena_; }
  void wait(ThreadState why, mb_simd_slot *slot);

  // For the fault handler.
  bool in_stack_guard(uintptr_t a) const {
    auto base = reinterpret_cast<uintptr_t>(stacks_);
    size_t slot = kGuard + stack_bytes_;
    return stacks_ && a >= base && a < base + kMaxFibers * slot && (a - base) % slot < kGuard;
  }
  size_t stack_bytes() const { return stack_bytes_; }
  const DispatchJob *job_ = nullptr;
  unsigned group_pos_[3] = {0, 0, 0};
  SimThread *volatile current_ = nullptr;

private:
  static void fiber_entry(void *self) { static_cast<Worker *>(self)->fiber_loop(); }
  [[noreturn]] void fiber_loop();
  Fiber *take_fiber();
  void resume(Fiber *f);
  bool settle(std::string *err);
  void reset_stuck_fibers();
  void *fresh_stack_pointer(Fiber *f);

  size_t stack_bytes_;
  unsigned char *stacks_ = nullptr; // kMaxFibers x (guard + stack), reserved once
  Fiber fibers_[kMaxFibers];
  unsigned n_fibers_ = 0;
  Fiber *idle_ = nullptr;
  Fiber *running_ = nullptr;
  void *sched_sp_ = nullptr;
  FiberEvent event_ = EV_IDLE;

  unsigned char *arena_ = nullptr;
  mb_group group_{};
  SimThread threads_[MB_SIM_MAX_THREADS];
  unsigned n_ = 0;
  unsigned next_ = 0;
  unsigned done_ = 0;
};

namespace {
thread_local Worker *tls_worker = nullptr;

unsigned char *rt_arena() { return tls_worker->arena(); }
void rt_barrier(unsigned) { tls_worker->wait(T_BARRIER, nullptr); }
void rt_simd(mb_simd_slot *slot) { tls_worker->wait(T_SIMD, slot); }
const mb_rt kRuntime = {MB_SIM_RT_ABI, rt_arena, rt_barrier, rt_simd};

void *reserve(size_t bytes) {
  void *p = mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
} // namespace

const mb_rt *runtime_table() { return &kRuntime; }

bool current_fault_info(const void *addr, FaultInfo *out) {
  Worker *w = tls_worker;
  if (!w || !w->job_) return false;
  out->stack_overflow = w->in_stack_guard(reinterpret_cast<uintptr_t>(addr));
  out->stack_kb = static_cast<unsigned>(w->stack_bytes() / 1024);
  out->kernel = w->job_->kernel->name.c_str();
  out->dispatch = &w->job_->d;
  std::memcpy(out->group, w->group_pos_, sizeof out->group);
  SimThread *t = w->current_;
  out->in_thread = t != nullptr;
  if (t) std::memcpy(out->thread, t->info.position, sizeof out->thread);
  return true;
}

// ---- Worker -----------------------------------------------------------

Worker::Worker(size_t stack_bytes) : stack_bytes_(stack_bytes) {
  stacks_ = static_cast<unsigned char *>(reserve(kMaxFibers * (kGuard + stack_bytes_)));
  void *a = mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  arena_ = a == MAP_FAILED ? nullptr : static_cast<unsigned char *>(a);
}

Worker::~Worker() {
  if (stacks_) munmap(stacks_, kMaxFibers * (kGuard + stack_bytes_));
  if (arena_) munmap(arena_, kArenaBytes);
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
  if (event_ == EV_IDLE) {
    f->next_idle = idle_;
    idle_ = f;
  }
}

// Runs simulated threads, in index order, until one blocks; then hands the
// fiber back with that thread parked on it. Resumed, it finishes that thread
// and takes the next unstarted one, if any.
void Worker::fiber_loop() {
  for (;;) {
    Fiber *self = running_;
    while (next_ < n_) {
      SimThread &t = threads_[next_++];
      t.fiber = self;
      t.state = T_RUNNING;
      current_ = &t;
      job_->kernel->run(&job_->d, &group_, &t.info);
      t.state = T_DONE;
      t.fiber = nullptr;
      ++done_;
      current_ = nullptr;
    }
    event_ = EV_IDLE;
    mb_fiber_switch(&self->sp, sched_sp_);
  }
}

void Worker::wait(ThreadState why, mb_simd_slot *slot) {
  SimThread *t = current_;
  t->state = why;
  t->slot = slot;
  current_ = nullptr;
  event_ = EV_BLOCKED;
  mb_fiber_switch(&t->fiber->sp, sched_sp_);
  current_ = t; // resumed by settle(), state already T_RUNNING
}

bool Worker::run_group(const DispatchJob &job, const unsigned pos[3], std::string *err) {
  job_ = &job;
  unsigned size[3];
  for (int i = 0; i < 3; ++i) {
    unsigned tg = job.d.group_threads[i];
    size[i] = job.partial_edges ? std::min(tg, job.d.grid_threads[i] - pos[i] * tg) : tg;
    group_.position[i] = pos[i];
    group_.size[i] = size[i];
    group_pos_[i] = pos[i];
  }
  if (!arena_ || !stacks_) {
    *err = "simulator: out of memory for threadgroup stacks";
    return false;
  }
  // Threadgroup memory starts poisoned: 0xFF bytes read as NaN / -1.
  std::memset(arena_, 0xFF, job.arena_bytes);
  for (int i = 0; i < MB_SIM_MAX_BINDINGS; ++i)
    group_.threadgroup_args[i] = arena_ + job.tg_arg_offset[i];

  n_ = size[0] * size[1] * size[2];
  unsigned i = 0;
  for (unsigned z = 0; z < size[2]; ++z)
    for (unsigned y = 0; y < size[1]; ++y)
      for (unsigned x = 0; x < size[0]; ++x, ++i) {
        SimThread &t = threads_[i];
        t.info = mb_thread{{x, y, z}, i};
        t.state = T_UNSTARTED;
        t.fiber = nullptr;
      }
  next_ = 0;
  done_ = 0;
  while (next_ < n_) {
    Fiber *f = take_fiber();
    if (!f) {
      *err = "simulator: out of fiber stacks";
      return false;
    }
    resume(f);
  }
  bool ok = settle(err);
  if (!ok) reset_stuck_fibers();
  job_ = nullptr;
  return ok;
}

// Every thread has started; all are finished or waiting. Resolve SIMD
// collectives first (lanes waiting at a barrier do not take part, as
// inactive lanes on a GPU), then barriers, until all threads finish.
bool Worker::settle(std::string *err) {
  const unsigned w = MB_SIM_SIMD_WIDTH;
  while (done_ < n_) {
    bool any = false;
    for (unsigned lo = 0; lo < n_; lo += w) {
      unsigned hi = std::min(n_, lo + w);
      // The lowest waiting lane's call site goes first (as a GPU runs the
      // first branch first); lanes waiting elsewhere wait for their turn.
      const mb_simd_slot *site = nullptr;
      for (unsigned t = lo; t < hi && !site; ++t)
        if (threads_[t].state == T_SIMD) site = threads_[t].slot;
      if (!site) continue;
      mb_simd_slot *lanes[MB_SIM_SIMD_WIDTH] = {};
      unsigned mask = 0;
      mb_simd_combine combine = nullptr;
      for (unsigned t = lo; t < hi; ++t) {
        SimThread &th = threads_[t];
        if (th.state != T_SIMD || !same_site(th.slot, site)) continue;
        lanes[t - lo] = th.slot;
        th.slot->lane = t - lo;
        mask |= 1u << (t - lo);
        combine = th.slot->combine;
        th.state = T_READY;
      }
      combine(lanes, mask);
      any = true;
    }
    if (!any) {
      // Every unfinished thread waits at a barrier.
      if (done_ > 0) {
        const SimThread *first = nullptr;
        for (unsigned t = 0; t < n_ && !first; ++t)
          if (threads_[t].state == T_BARRIER) first = &threads_[t];
        const unsigned *g = group_.position, *p = first->info.position;
        *err = "threadgroup_barrier reached by only some threads of threadgroup (" +
               std::to_string(g[0]) + "," + std::to_string(g[1]) + "," + std::to_string(g[2]) +
               ") in kernel '" + job_->kernel->name + "': " + std::to_string(n_ - done_) +
               " thread(s) wait at a barrier (first: thread (" + std::to_string(p[0]) + "," +
               std::to_string(p[1]) + "," + std::to_string(p[2]) + ")), " +
               std::to_string(done_) +
               " returned without reaching it (every thread of a threadgroup must reach each "
               "barrier)";
        return false;
      }
      for (unsigned t = 0; t < n_; ++t)
        if (threads_[t].state == T_BARRIER) threads_[t].state = T_READY;
    }
    for (unsigned t = 0; t < n_; ++t) {
      SimThread &th = threads_[t];
      if (th.state != T_READY) continue;
      // The next fiber's saved registers are cold (a stack of its own):
      // fetch them while this one runs.
      for (unsigned u = t + 1; u < n_ && u < t + 4; ++u)
        if (threads_[u].state == T_READY) {
          const char *sp = static_cast<const char *>(threads_[u].fiber->sp);
          for (int line = 0; line < 6; ++line) __builtin_prefetch(sp + 64 * line);
          break;
        }
      th.state = T_RUNNING;
      current_ = &th;
      resume(th.fiber);
    }
  }
  return true;
}

// After a deadlock, fibers still hold parked threads: restart them fresh.
void Worker::reset_stuck_fibers() {
  for (unsigned t = 0; t < n_; ++t) {
    SimThread &th = threads_[t];
    if (!th.fiber) continue;
    th.fiber->sp = fresh_stack_pointer(th.fiber);
    th.fiber->next_idle = idle_;
    idle_ = th.fiber;
    th.fiber = nullptr;
  }
  current_ = nullptr;
}

// ---- Executor ---------------------------------------------------------

Executor::Executor(unsigned workers, size_t stack_bytes, void (*thread_init)())
    : thread_init_(thread_init) {
  workers = std::max(1u, std::min(workers, 64u));
  for (unsigned i = 0; i < workers; ++i) workers_.push_back(std::make_unique<Worker>(stack_bytes));
}

Executor::~Executor() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  for (auto &t : helpers_) t.join();
}

void Executor::run_groups(Worker &w) {
  const DispatchJob &job = *job_;
  const unsigned *n = job.d.grid_groups;
  std::string err;
  for (;;) {
    if (failed_.load(std::memory_order_relaxed)) return;
    unsigned long i = next_group_.fetch_add(1, std::memory_order_relaxed);
    if (i >= total_groups_) return;
    unsigned pos[3] = {static_cast<unsigned>(i % n[0]),
                       static_cast<unsigned>(i / n[0] % n[1]),
                       static_cast<unsigned>(i / n[0] / n[1])};
    if (!w.run_group(job, pos, &err)) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!failed_.exchange(true)) error_ = err;
      return;
    }
  }
}

void Executor::helper_main(unsigned index) {
  if (thread_init_) thread_init_();
  Worker &w = *workers_[index];
  tls_worker = &w;
  unsigned long seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return quit_ || generation_ != seen; });
      if (quit_) return;
      seen = generation_;
    }
    run_groups(w);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --busy_;
    }
    done_cv_.notify_one();
  }
}

bool Executor::run(const DispatchJob &job, std::string *err) {
  const unsigned *n = job.d.grid_groups;
  total_groups_ = static_cast<unsigned long>(n[0]) * n[1] * n[2];
  if (total_groups_ == 0) return true;
  job_ = &job;
  next_group_ = 0;
  failed_ = false;
  error_.clear();
  unsigned helpers = static_cast<unsigned>(
      std::min<unsigned long>(workers_.size() - 1, total_groups_ - 1));
  while (helpers_.size() < helpers) {
    unsigned index = static_cast<unsigned>(helpers_.size()) + 1;
    helpers_.emplace_back([this, index] { helper_main(index); });
  }
  if (helpers > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    busy_ = static_cast<unsigned>(helpers_.size());
    ++generation_;
  }
  if (helpers > 0) cv_.notify_all();
  tls_worker = workers_[0].get();
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
