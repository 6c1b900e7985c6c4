// Fiber stack preparation: lays out the frame that mb_fiber_switch pops so
// that the first switch to a fiber "returns" into mb_fiber_trampoline.
#include "fiber.h"

#include <cstdint>
#include <cstring>

namespace mbsim {

void *fiber_prepare(void *top, FiberFn fn, void *arg) {
  auto t = reinterpret_cast<uintptr_t>(top) & ~uintptr_t(15);
#if defined(__x86_64__)
  // r15 r14 r13 r12 rbx rbp, then the return address; `ret` leaves rsp = t.
  auto *f = reinterpret_cast<uint64_t *>(t - 56);
  std::memset(f, 0, 56);
  f[2] = reinterpret_cast<uint64_t>(arg); // r13
  f[3] = reinterpret_cast<uint64_t>(fn);  // r12
  f[6] = reinterpret_cast<uint64_t>(&mb_fiber_trampoline);
  return f;
#elif defined(__aarch64__)
  // x19..x28, x29, x30 (the return address), d8..d15; sp ends at t.
  auto *f = reinterpret_cast<uint64_t *>(t - 160);
  std::memset(f, 0, 160);
  f[0] = reinterpret_cast<uint64_t>(fn);                    // x19
  f[1] = reinterpret_cast<uint64_t>(arg);                   // x20
  f[11] = reinterpret_cast<uint64_t>(&mb_fiber_trampoline); // x30
  return f;
#else
#error "fibers: add a context switch for this architecture"
#endif
}

} // namespace mbsim
