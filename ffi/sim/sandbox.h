// The runner's sandbox, two seccomp-bpf filters:
// - enter_sandbox, on all of the runner's threads: only what the runner
//   needs once kernels run (memory, futexes, the bridge's socket, clocks,
//   exit). Opening files, starting processes, networking, signalling other
//   processes and the like raise SIGSYS, which the runner's fault handler
//   reports as a forbidden system call of the kernel.
// - restrict_thread, stacked on it by each worker thread (the only threads
//   that run kernel code) for itself: no file descriptor at all (no write,
//   send, read, close, dup, fd-backed mmap), so kernel code cannot speak on
//   the bridge's channel; memory, futexes, clocks and exit only.
//
// The runner enters it before the first kernel code runs and never leaves it;
// it loads further kernels only in a new runner (the bridge starts one).
#pragma once

#include <string>

namespace mbsim {

// False with *err if this system cannot install the filter.
bool enter_sandbox(std::string *err);

// Stacks the worker filter on the calling thread (after enter_sandbox).
bool restrict_thread(std::string *err);

// A system call's name for reports ("openat"), or nullptr.
const char *syscall_name(long nr);

} // namespace mbsim
