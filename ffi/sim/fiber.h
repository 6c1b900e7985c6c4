// Minimal user-space context switch for the scheduler's fibers (one per
// simulated thread that blocks). swapcontext() would make a system call per
// switch to save the signal mask; these switch only callee-saved registers
// and the floating-point control words. See fiber_x86_64.S, fiber_aarch64.S.
#pragma once

#include <cstddef>

extern "C" {
// Saves the current context's stack pointer in *save_sp and resumes the
// context whose stack pointer is new_sp.
void mb_fiber_switch(void **save_sp, void *new_sp);
// First code run by a fresh fiber: calls fn(arg) (fn never returns).
void mb_fiber_trampoline(void);
}

namespace mbsim {
using FiberFn = void (*)(void *);
// Prepares a stack so that switching to the returned stack pointer starts
// fn(arg). `top` is the stack's highest address.
void *fiber_prepare(void *top, FiberFn fn, void *arg);
} // namespace mbsim
