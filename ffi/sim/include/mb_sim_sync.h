// MetalBench simulator shim: threadgroup barriers, SIMD-group functions and
// atomics. Barriers and SIMD collectives call into the runner (mb_rt), whose
// scheduler runs the threads of a threadgroup as fibers: a lane deposits its
// value in a slot on its own stack and yields; once every taking-part lane of
// its SIMD group (32 consecutive thread indices) has arrived, the runner calls
// the slot's combine function, which this header instantiates per type.
#pragma once

#include "mb_sim_math.h"

namespace __mb {
inline const mb_rt *rt = nullptr; // set by mb_kernel_init

template <class T> __MB_INL T load(const unsigned char *p) {
  T v;
  __builtin_memcpy(&v, p, sizeof(T));
  return v;
}
template <class T> __MB_INL void store(unsigned char *p, T v) { __builtin_memcpy(p, &v, sizeof(T)); }

// Where a SIMD-group function was called: default arguments of each public
// function, so they name the caller's line and column. Lanes in divergent
// branches call from different places and form separate collectives, as on
// a GPU, even where the optimizer merged the two calls into one.
#define __MB_SITE_PARAMS                                                                             \
  const char *__file = __builtin_FILE(), unsigned __line = __builtin_LINE(),                        \
             unsigned __column = __builtin_COLUMN()
#define __MB_SITE __file, __line, __column

// Deposits x and waits for the SIMD group.
template <class T>
__MB_INL T simd_call(T x, unsigned arg, mb_simd_combine combine, const char *file, unsigned line,
                     unsigned column) {
  static_assert(sizeof(T) <= MB_SIM_SLOT_BYTES, "SIMD-group value too large");
  mb_simd_slot s;
  s.combine = combine;
  s.site_file = file;
  s.site_line = line;
  s.site_column = column;
  s.arg = arg;
  store(s.in, x);
  rt->simd(&s);
  return load<T>(s.out);
}

struct op_sum {
  template <class T> static T id() { return T(0); }
  template <class T> static T f(T a, T b) { return a + b; }
};
struct op_product {
  template <class T> static T id() { return T(1); }
  template <class T> static T f(T a, T b) { return a * b; }
};
struct op_min {
  template <class T> static T f(T a, T b) { return metal::min(a, b); }
};
struct op_max {
  template <class T> static T f(T a, T b) { return metal::max(a, b); }
};
struct op_and {
  template <class T> static T f(T a, T b) { return a & b; }
};
struct op_or {
  template <class T> static T f(T a, T b) { return a | b; }
};
struct op_xor {
  template <class T> static T f(T a, T b) { return a ^ b; }
};

// Reduction over the taking-part lanes as a pairwise tree (as hardware
// butterflies do); every taking-part lane receives the result.
template <class T, class Op> void c_reduce(mb_simd_slot *const *lanes, unsigned) {
  T v[MB_SIM_SIMD_WIDTH];
  bool has[MB_SIM_SIMD_WIDTH];
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i) {
    has[i] = lanes[i] != nullptr;
    if (has[i]) v[i] = load<T>(lanes[i]->in);
  }
  for (int step = 1; step < MB_SIM_SIMD_WIDTH; step *= 2)
    for (int i = 0; i + step < MB_SIM_SIMD_WIDTH; i += 2 * step) {
      if (has[i] && has[i + step]) v[i] = Op::f(v[i], v[i + step]);
      else if (has[i + step]) v[i] = v[i + step], has[i] = true;
    }
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i]) store(lanes[i]->out, v[0]);
}
template <class T, class Op, bool Inclusive>
void c_prefix(mb_simd_slot *const *lanes, unsigned) {
  T acc = Op::template id<T>();
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i) {
    if (!lanes[i]) continue;
    T x = load<T>(lanes[i]->in);
    if (Inclusive) acc = Op::f(acc, x);
    store(lanes[i]->out, acc);
    if (!Inclusive) acc = Op::f(acc, x);
  }
}
// Shuffles: lane i reads lane src(i); a source lane that is outside the SIMD
// group or not taking part leaves the caller's own value (MSL: "upper delta
// lanes are unchanged" for shuffle_down, likewise for shuffle_up).
enum shuffle_kind { SH_INDEX, SH_UP, SH_DOWN, SH_XOR, SH_ROT_UP, SH_ROT_DOWN, SH_BROADCAST };
template <class T, int K> void c_shuffle(mb_simd_slot *const *lanes, unsigned) {
  T in[MB_SIM_SIMD_WIDTH];
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i]) in[i] = load<T>(lanes[i]->in);
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i) {
    if (!lanes[i]) continue;
    long a = lanes[i]->arg, src;
    switch (K) {
    case SH_INDEX:
    case SH_BROADCAST: src = a; break;
    case SH_UP: src = i - a; break;
    case SH_DOWN: src = i + a; break;
    case SH_XOR: src = i ^ a; break;
    case SH_ROT_UP: src = ((i - a) % MB_SIM_SIMD_WIDTH + MB_SIM_SIMD_WIDTH) % MB_SIM_SIMD_WIDTH; break;
    default: src = (i + a) % MB_SIM_SIMD_WIDTH; break;
    }
    bool ok = src >= 0 && src < MB_SIM_SIMD_WIDTH && lanes[src];
    store(lanes[i]->out, ok ? in[src] : in[i]);
  }
}
template <class T> void c_first(mb_simd_slot *const *lanes, unsigned) {
  int first = 0;
  while (!lanes[first]) ++first;
  T v = load<T>(lanes[first]->in);
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i]) store(lanes[i]->out, v);
}
inline void c_ballot(mb_simd_slot *const *lanes, unsigned) {
  unsigned long long m = 0;
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i] && load<bool>(lanes[i]->in)) m |= 1ull << i;
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i]) store(lanes[i]->out, m);
}
inline void c_active(mb_simd_slot *const *lanes, unsigned active) {
  unsigned long long m = active;
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i]) store(lanes[i]->out, m);
}
inline void c_is_first(mb_simd_slot *const *lanes, unsigned) {
  bool first = true;
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i]) store(lanes[i]->out, first), first = false;
}
template <class T> constexpr bool simd_ok = is_arith<T> || same<T, bool>;
} // namespace __mb

namespace metal {
// ---- barriers ---------------------------------------------------------
enum class mem_flags : unsigned {
  mem_none = 0,
  mem_device = 1,
  mem_threadgroup = 2,
  mem_texture = 4,
  mem_threadgroup_imageblock = 8,
  mem_object_data = 16,
};
constexpr mem_flags operator|(mem_flags a, mem_flags b) {
  return mem_flags((unsigned)a | (unsigned)b);
}
constexpr mem_flags operator&(mem_flags a, mem_flags b) {
  return mem_flags((unsigned)a & (unsigned)b);
}
__MB_INL void threadgroup_barrier(mem_flags flags) { __mb::rt->barrier((unsigned)flags); }
// A SIMD group's lanes wait for each other; on the CPU nothing else to do.
__MB_INL void simdgroup_barrier(mem_flags, __MB_SITE_PARAMS) {
  (void)__mb::simd_call<unsigned>(0u, 0, __mb::c_first<unsigned>, __MB_SITE);
}
enum memory_order { memory_order_relaxed = 0, memory_order_seq_cst = 5 };
enum thread_scope { thread_scope_thread, thread_scope_simdgroup, thread_scope_threadgroup,
                    thread_scope_device };
__MB_INL void atomic_thread_fence(mem_flags, memory_order, thread_scope = thread_scope_device) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

// ---- SIMD-group functions ---------------------------------------------
#define __MB_SIMD_REDUCE(name, op, cond)                                                             \
  template <class T, __mb::req<cond> = 0> __MB_INL T name(T x, __MB_SITE_PARAMS) {                   \
    return __mb::simd_call(x, 0, __mb::c_reduce<T, __mb::op>, __MB_SITE);                            \
  }
__MB_SIMD_REDUCE(simd_sum, op_sum, __mb::is_arith<T>)
__MB_SIMD_REDUCE(simd_product, op_product, __mb::is_arith<T>)
__MB_SIMD_REDUCE(simd_min, op_min, __mb::is_arith<T>)
__MB_SIMD_REDUCE(simd_max, op_max, __mb::is_arith<T>)
__MB_SIMD_REDUCE(simd_and, op_and, __mb::is_int<T>)
__MB_SIMD_REDUCE(simd_or, op_or, __mb::is_int<T>)
__MB_SIMD_REDUCE(simd_xor, op_xor, __mb::is_int<T>)
#undef __MB_SIMD_REDUCE
#define __MB_SIMD_PREFIX(name, op, incl)                                                             \
  template <class T, __mb::req<__mb::is_arith<T>> = 0> __MB_INL T name(T x, __MB_SITE_PARAMS) {     \
    return __mb::simd_call(x, 0, __mb::c_prefix<T, __mb::op, incl>, __MB_SITE);                      \
  }
__MB_SIMD_PREFIX(simd_prefix_inclusive_sum, op_sum, true)
__MB_SIMD_PREFIX(simd_prefix_exclusive_sum, op_sum, false)
__MB_SIMD_PREFIX(simd_prefix_inclusive_product, op_product, true)
__MB_SIMD_PREFIX(simd_prefix_exclusive_product, op_product, false)
#undef __MB_SIMD_PREFIX
#define __MB_SIMD_SHUFFLE(name, kind)                                                                \
  template <class T, __mb::req<__mb::simd_ok<T>> = 0>                                               \
  __MB_INL T name(T x, ushort arg, __MB_SITE_PARAMS) {                                               \
    return __mb::simd_call(x, arg, __mb::c_shuffle<T, __mb::kind>, __MB_SITE);                       \
  }
__MB_SIMD_SHUFFLE(simd_shuffle, SH_INDEX)
__MB_SIMD_SHUFFLE(simd_shuffle_up, SH_UP)
__MB_SIMD_SHUFFLE(simd_shuffle_down, SH_DOWN)
__MB_SIMD_SHUFFLE(simd_shuffle_xor, SH_XOR)
__MB_SIMD_SHUFFLE(simd_shuffle_rotate_up, SH_ROT_UP)
__MB_SIMD_SHUFFLE(simd_shuffle_rotate_down, SH_ROT_DOWN)
__MB_SIMD_SHUFFLE(simd_broadcast, SH_BROADCAST)
#undef __MB_SIMD_SHUFFLE
template <class T, __mb::req<__mb::simd_ok<T>> = 0>
__MB_INL T simd_broadcast_first(T x, __MB_SITE_PARAMS) {
  return __mb::simd_call(x, 0, __mb::c_first<T>, __MB_SITE);
}

// simd_vote: the lanes' bits of a ballot.
struct simd_vote {
  using vote_t = ulong;
  vote_t __v;
  explicit constexpr simd_vote(vote_t v = 0) : __v(v) {}
  explicit constexpr operator vote_t() const { return __v; }
  constexpr bool all() const { return __v == 0xffffffffull; }
  constexpr bool any() const { return __v != 0; }
};
__MB_INL simd_vote simd_ballot(bool x, __MB_SITE_PARAMS) {
  return simd_vote(__mb::simd_call<unsigned long long>(x, 0, __mb::c_ballot, __MB_SITE));
}
__MB_INL simd_vote simd_active_threads_mask(__MB_SITE_PARAMS) {
  return simd_vote(__mb::simd_call<unsigned long long>(0, 0, __mb::c_active, __MB_SITE));
}
__MB_INL bool simd_all(bool x, __MB_SITE_PARAMS) {
  return __mb::simd_call<int>(x ? 1 : 0, 0, __mb::c_reduce<int, __mb::op_and>, __MB_SITE) != 0;
}
__MB_INL bool simd_any(bool x, __MB_SITE_PARAMS) {
  return __mb::simd_call<int>(x ? 1 : 0, 0, __mb::c_reduce<int, __mb::op_or>, __MB_SITE) != 0;
}
__MB_INL bool simd_is_first(__MB_SITE_PARAMS) {
  return __mb::simd_call<bool>(false, 0, __mb::c_is_first, __MB_SITE);
}

// ---- atomics (device and threadgroup memory) --------------------------
template <class T> struct atomic {
  T __v;
};
typedef atomic<int> atomic_int;
typedef atomic<uint> atomic_uint;
typedef atomic<bool> atomic_bool;
typedef atomic<float> atomic_float;
typedef atomic<ulong> atomic_ulong;
typedef atomic<long> atomic_long;

// The generic __atomic builtins work for float as well as integers.
template <class T, class U>
__MB_INL void atomic_store_explicit(volatile atomic<T> *obj, U desired, memory_order) {
  T v = (T)desired;
  __atomic_store(&obj->__v, &v, __ATOMIC_RELAXED);
}
template <class T> __MB_INL T atomic_load_explicit(const volatile atomic<T> *obj, memory_order) {
  T v;
  __atomic_load(&obj->__v, &v, __ATOMIC_RELAXED);
  return v;
}
template <class T, class U>
__MB_INL T atomic_exchange_explicit(volatile atomic<T> *obj, U desired, memory_order) {
  T v = (T)desired, old;
  __atomic_exchange(&obj->__v, &v, &old, __ATOMIC_RELAXED);
  return old;
}
template <class T, class U>
__MB_INL bool atomic_compare_exchange_weak_explicit(volatile atomic<T> *obj, thread T *expected,
                                                    U desired, memory_order, memory_order) {
  T v = (T)desired;
  return __atomic_compare_exchange(&obj->__v, expected, &v, false, __ATOMIC_RELAXED,
                                   __ATOMIC_RELAXED);
}
template <class T, class U>
__MB_INL bool atomic_compare_exchange_strong_explicit(volatile atomic<T> *obj,
                                                      thread T *expected, U desired,
                                                      memory_order, memory_order) {
  T v = (T)desired;
  return __atomic_compare_exchange(&obj->__v, expected, &v, false, __ATOMIC_RELAXED,
                                   __ATOMIC_RELAXED);
}
namespace __atomic_detail {
// A read-modify-write as a compare-and-swap loop (float add, min, max).
template <class T, class F> __MB_INL T cas_loop(volatile atomic<T> *obj, F f) {
  T old, next;
  __atomic_load(&obj->__v, &old, __ATOMIC_RELAXED);
  do {
    next = f(old);
  } while (!__atomic_compare_exchange(&obj->__v, &old, &next, true, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED));
  return old;
}
} // namespace __atomic_detail
template <class T, class U>
__MB_INL T atomic_fetch_add_explicit(volatile atomic<T> *obj, U v, memory_order) {
  if constexpr (__mb::is_fp<T>)
    return __atomic_detail::cas_loop(obj, [&](T o) { return (T)(o + (T)v); });
  else return __atomic_fetch_add(&obj->__v, (T)v, __ATOMIC_RELAXED);
}
template <class T, class U>
__MB_INL T atomic_fetch_sub_explicit(volatile atomic<T> *obj, U v, memory_order) {
  if constexpr (__mb::is_fp<T>)
    return __atomic_detail::cas_loop(obj, [&](T o) { return (T)(o - (T)v); });
  else return __atomic_fetch_sub(&obj->__v, (T)v, __ATOMIC_RELAXED);
}
template <class T, class U>
__MB_INL T atomic_fetch_min_explicit(volatile atomic<T> *obj, U v, memory_order) {
  return __atomic_detail::cas_loop(obj, [&](T o) { return (T)v < o ? (T)v : o; });
}
template <class T, class U>
__MB_INL T atomic_fetch_max_explicit(volatile atomic<T> *obj, U v, memory_order) {
  return __atomic_detail::cas_loop(obj, [&](T o) { return (T)v > o ? (T)v : o; });
}
template <class T, class U>
__MB_INL T atomic_fetch_and_explicit(volatile atomic<T> *obj, U v, memory_order) {
  return __atomic_fetch_and(&obj->__v, (T)v, __ATOMIC_RELAXED);
}
template <class T, class U>
__MB_INL T atomic_fetch_or_explicit(volatile atomic<T> *obj, U v, memory_order) {
  return __atomic_fetch_or(&obj->__v, (T)v, __ATOMIC_RELAXED);
}
template <class T, class U>
__MB_INL T atomic_fetch_xor_explicit(volatile atomic<T> *obj, U v, memory_order) {
  return __atomic_fetch_xor(&obj->__v, (T)v, __ATOMIC_RELAXED);
}
} // namespace metal

// ---- threadgroup variables ----------------------------------------------
// The compile step rewrites each kernel-scope `threadgroup T name;` into
//   typedef T __mb_tgtN; __mb_tgtN &name = __mb::tg_var<__mb_tgtN, N>();
// Every such variable registers its size when kernel.so is loaded (a static
// member's initializer), mb_kernel_init lays them out, and each threadgroup
// gets them fresh, poisoned, in its arena.
namespace __mb {
struct tg_layout {
  unsigned size[MB_SIM_MAX_TG_VARS];
  unsigned align[MB_SIM_MAX_TG_VARS];
  unsigned offset[MB_SIM_MAX_TG_VARS];
  unsigned count;
};
inline tg_layout tg = {};
inline int tg_register(unsigned id, unsigned size, unsigned align) {
  if (id < MB_SIM_MAX_TG_VARS) {
    tg.size[id] = size;
    tg.align[id] = align;
    if (id + 1 > tg.count) tg.count = id + 1;
  }
  return (int)id;
}
template <class T, int ID> struct tg_reg {
  static const int id;
};
template <class T, int ID> const int tg_reg<T, ID>::id = tg_register(ID, sizeof(T), alignof(T));
template <class T, int ID> __MB_INL T &tg_var() {
  static_assert(ID < MB_SIM_MAX_TG_VARS, "too many threadgroup variables");
  static_assert(!__is_pointer(T), "a threadgroup pointer is per thread, not shared");
  return *reinterpret_cast<T *>(rt->threadgroup_arena() + tg.offset[tg_reg<T, ID>::id]);
}
} // namespace __mb
