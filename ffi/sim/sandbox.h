// The runner's sandbox: a seccomp-bpf filter, on all of the runner's threads,
// that allows only what running kernels needs (memory, futexes, the bridge's
// socket, clocks, exit). Opening files, starting processes, networking,
// signalling other processes and the like raise SIGSYS, which the runner's
// fault handler reports as a forbidden system call of the kernel.
//
// The runner enters it before the first kernel code runs and never leaves it;
// it loads further kernels only in a new runner (the bridge starts one).
#pragma once

#include <string>

namespace mbsim {

// False with *err if this system cannot install the filter.
bool enter_sandbox(std::string *err);

// A system call's name for reports ("openat"), or nullptr.
const char *syscall_name(long nr);

} // namespace mbsim
