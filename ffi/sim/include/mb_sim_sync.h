// MetalBench simulator shim: threadgroup barriers, SIMD-group functions and
// atomics. Barriers and SIMD collectives call into the runner (mb_rt), whose
// scheduler runs the threads of a threadgroup as fibers: a lane deposits its
// value in a slot on its own stack and yields; once every taking-part lane of
// its SIMD group (32 consecutive thread indices) has arrived, the runner calls
// the slot's combine function, which this header instantiates per type.
#pragma once

#include "mb_sim_math.h"

extern "C" {
// Defined by the generated entry file; the runner fills them in (mb_sim_abi.h).
extern const mb_rt *mb_kernel_rt;
extern unsigned mb_kernel_tg_offsets[MB_SIM_MAX_TG_VARS];
}

namespace __mb {
__MB_INL const mb_rt *rt() { return mb_kernel_rt; }

// Marks kernel.so as calling barriers or SIMD-group functions: without the
// mark its threads run as a plain loop (the section stays empty unless some
// emitted code calls one of them).
__MB_INL void uses_sync() {
  static const char mark __attribute__((used, section("mb_sync"))) = 1;
  (void)mark;
}

template <class T> __MB_INL T load(const unsigned char *p) {
  T v;
  __builtin_memcpy(&v, p, sizeof(T));
  return v;
}
template <class T> __MB_INL void store(unsigned char *p, T v) { __builtin_memcpy(p, &v, sizeof(T)); }
// What a lane reads from a lane that is not taking part: undefined in MSL,
// poison here (all bits set: NaN for floating point) so that it shows.
template <class T> __MB_INL void store_poison(unsigned char *p) {
  __builtin_memset(p, 0xFF, sizeof(T));
}

// Where a SIMD-group function was called: default arguments of each public
// function, so they name the caller's line and column. Lanes in divergent
// branches call from different places and form separate collectives, as on
// a GPU, even where the optimizer merged the two calls into one.
#define __MB_SITE_PARAMS                                                                             \
  const mb_cchar *__file = __builtin_FILE(), unsigned __line = __builtin_LINE(),                        \
             unsigned __column = __builtin_COLUMN()
#define __MB_SITE __file, __line, __column

// Deposits x and waits for the SIMD group; the combine function leaves an
// Out in the slot (by default the type deposited).
template <class Out, class In>
__MB_INL Out simd_exchange(In x, unsigned arg, mb_simd_combine combine, const mb_cchar *file,
                           unsigned line, unsigned column) {
  static_assert(sizeof(In) <= MB_SIM_SLOT_BYTES && sizeof(Out) <= MB_SIM_SLOT_BYTES,
                "SIMD-group value too large");
  uses_sync();
  mb_simd_slot s;
  s.combine = combine;
  s.site_file = file;
  s.site_line = line;
  s.site_column = column;
  s.arg = arg;
  store(s.in, x);
  rt()->simd(&s);
  return load<Out>(s.out);
}
template <class T>
__MB_INL T simd_call(T x, unsigned arg, mb_simd_combine combine, const mb_cchar *file, unsigned line,
                     unsigned column) {
  return simd_exchange<T>(x, arg, combine, file, line, column);
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

// The collectives work on groups of W lanes: W = 32 for simd_*, 4 for
// quad_* (a quad group is lanes 4q..4q+3 of the SIMD group).

// Reduction over the taking-part lanes as a pairwise tree (as hardware
// butterflies do); every taking-part lane receives the result.
template <class T, class Op, int W> void c_reduce(mb_simd_slot *const *lanes, unsigned) {
  for (int base = 0; base < MB_SIM_SIMD_WIDTH; base += W) {
    T v[W];
    bool has[W];
    for (int i = 0; i < W; ++i) {
      has[i] = lanes[base + i] != nullptr;
      if (has[i]) v[i] = load<T>(lanes[base + i]->in);
    }
    for (int step = 1; step < W; step *= 2)
      for (int i = 0; i + step < W; i += 2 * step) {
        if (has[i] && has[i + step]) v[i] = Op::f(v[i], v[i + step]);
        else if (has[i + step]) v[i] = v[i + step], has[i] = true;
      }
    for (int i = 0; i < W; ++i)
      if (lanes[base + i]) store(lanes[base + i]->out, v[0]);
  }
}
template <class T, class Op, bool Inclusive, int W>
void c_prefix(mb_simd_slot *const *lanes, unsigned) {
  for (int base = 0; base < MB_SIM_SIMD_WIDTH; base += W) {
    T acc = Op::template id<T>();
    for (int i = base; i < base + W; ++i) {
      if (!lanes[i]) continue;
      T x = load<T>(lanes[i]->in);
      if (Inclusive) acc = Op::f(acc, x);
      store(lanes[i]->out, acc);
      if (!Inclusive) acc = Op::f(acc, x);
    }
  }
}
// Shuffles: lane i reads lane src(i) of its group of W. Past the group's
// ends, shuffle_up/_down leave the caller's value (MSL: "doesn't modify the
// lower/upper delta lanes"); a source lane that exists but is not taking
// part (inactive, or missing from a partial SIMD group) gives poison.
enum shuffle_kind { SH_INDEX, SH_UP, SH_DOWN, SH_XOR, SH_ROT_UP, SH_ROT_DOWN };
template <class T, int K, int W> void c_shuffle(mb_simd_slot *const *lanes, unsigned) {
  T in[MB_SIM_SIMD_WIDTH];
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i]) in[i] = load<T>(lanes[i]->in);
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i) {
    if (!lanes[i]) continue;
    long a = lanes[i]->arg, l = i % W, base = i - l, src;
    switch (K) {
    case SH_INDEX: src = a; break;
    case SH_UP: src = l - a; break;
    case SH_DOWN: src = l + a; break;
    case SH_XOR: src = l ^ a; break;
    case SH_ROT_UP: src = ((l - a) % W + W) % W; break;
    default: src = (l + a) % W; break;
    }
    if (src < 0 || src >= W) {
      if (K == SH_UP || K == SH_DOWN) store(lanes[i]->out, in[i]);
      else store_poison<T>(lanes[i]->out);
    } else if (lanes[base + src]) {
      store(lanes[i]->out, in[base + src]);
    } else {
      store_poison<T>(lanes[i]->out);
    }
  }
}
// simd_shuffle_and_fill_up/_down: `in` holds {data, filling}; lanes that
// would read past the end of their vector of `modulo` lanes read `filling`
// from the other end instead.
template <class T, bool Down> void c_fill(mb_simd_slot *const *lanes, unsigned) {
  T data[MB_SIM_SIMD_WIDTH], fill[MB_SIM_SIMD_WIDTH];
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i]) {
      data[i] = load<T>(lanes[i]->in);
      fill[i] = load<T>(lanes[i]->in + sizeof(T));
    }
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i) {
    if (!lanes[i]) continue;
    long delta = lanes[i]->arg & 0xFFFF, modulo = lanes[i]->arg >> 16;
    long l = i % modulo, base = i - l, src = Down ? l + delta : l - delta;
    bool wrap = src < 0 || src >= modulo;
    src = ((src % modulo) + modulo) % modulo;
    if (!lanes[base + src]) store_poison<T>(lanes[i]->out);
    else store(lanes[i]->out, wrap ? fill[base + src] : data[base + src]);
  }
}
template <class T, int W> void c_first(mb_simd_slot *const *lanes, unsigned) {
  for (int base = 0; base < MB_SIM_SIMD_WIDTH; base += W) {
    int first = base;
    while (first < base + W && !lanes[first]) ++first;
    if (first == base + W) continue;
    T v = load<T>(lanes[first]->in);
    for (int i = base; i < base + W; ++i)
      if (lanes[i]) store(lanes[i]->out, v);
  }
}
template <int W> void c_ballot(mb_simd_slot *const *lanes, unsigned) {
  for (int base = 0; base < MB_SIM_SIMD_WIDTH; base += W) {
    unsigned long m = 0;
    for (int i = base; i < base + W; ++i)
      if (lanes[i] && load<bool>(lanes[i]->in)) m |= 1ul << (i - base);
    for (int i = base; i < base + W; ++i)
      if (lanes[i]) store(lanes[i]->out, m);
  }
}
template <int W> void c_active(mb_simd_slot *const *lanes, unsigned active) {
  for (int base = 0; base < MB_SIM_SIMD_WIDTH; base += W) {
    unsigned long m = (active >> base) & ((W == 32) ? 0xfffffffful : ((1ul << W) - 1));
    for (int i = base; i < base + W; ++i)
      if (lanes[i]) store(lanes[i]->out, m);
  }
}
template <int W> void c_is_first(mb_simd_slot *const *lanes, unsigned) {
  for (int base = 0; base < MB_SIM_SIMD_WIDTH; base += W) {
    bool first = true;
    for (int i = base; i < base + W; ++i)
      if (lanes[i]) store(lanes[i]->out, first), first = false;
  }
}
// simdgroup_barrier: lanes wait for each other, nothing to compute.
inline void c_none(mb_simd_slot *const *lanes, unsigned) {
  for (int i = 0; i < MB_SIM_SIMD_WIDTH; ++i)
    if (lanes[i]) store(lanes[i]->out, 0u);
}
template <class T> constexpr bool simd_ok = is_arith<T> || same<T, bool>;

// Element access through a vector pointer (p->x, p[i].x): the compile step
// routes the pointer through these, which check the vector's alignment as
// a whole-vector load would (Metal requires it; clang would load the one
// element).
template <class E> constexpr const mb_cchar *scalar_name() {
  if constexpr (same<E, float>) return "float";
  else if constexpr (same<E, half>) return "half";
  else if constexpr (same<E, bfloat>) return "bfloat";
  else if constexpr (same<E, int>) return "int";
  else if constexpr (same<E, uint>) return "uint";
  else if constexpr (same<E, short>) return "short";
  else if constexpr (same<E, ushort>) return "ushort";
  else if constexpr (same<E, char> || same<E, signed char>) return "char";
  else if constexpr (same<E, uchar>) return "uchar";
  else if constexpr (same<E, long>) return "long";
  else if constexpr (same<E, ulong>) return "ulong";
  else return "vector";
}
template <class T> __MB_INL void check_aligned(const void *p, const mb_cchar *file, unsigned line,
                                               unsigned column) {
  if (reinterpret_cast<unsigned long>(p) % alignof(T) == 0) return;
  using E = elem<clean<T>>;
  char text[32];
  int n = 0;
  text[n++] = '\'';
  for (const mb_cchar *s = scalar_name<E>(); *s && n < 24; ++s) text[n++] = *s;
  text[n++] = (char)('0' + vt<clean<T>>::N);
  text[n++] = '\'';
  text[n] = 0;
  rt()->misaligned(file, line, column, text, alignof(T), p, MB_ACCESS_LOAD);
}
template <class T> __MB_INL T *vptr(T *p, __MB_SITE_PARAMS) {
  check_aligned<T>(p, __MB_SITE);
  return p;
}
template <class T> __MB_INL T &vref(T &r, __MB_SITE_PARAMS) {
  check_aligned<T>(&r, __MB_SITE);
  return r;
}
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
__MB_INL void threadgroup_barrier(mem_flags flags, __MB_SITE_PARAMS) {
  __mb::uses_sync();
  __mb::rt()->barrier((unsigned)flags, __MB_SITE);
}
// A SIMD group's lanes wait for each other; on the CPU nothing else to do.
__MB_INL void simdgroup_barrier(mem_flags, __MB_SITE_PARAMS) {
  (void)__mb::simd_call<unsigned>(0u, 0, __mb::c_none, __MB_SITE);
}
enum memory_order { memory_order_relaxed = 0, memory_order_seq_cst = 5 };
enum thread_scope { thread_scope_thread, thread_scope_simdgroup, thread_scope_threadgroup,
                    thread_scope_device };
__MB_INL void atomic_thread_fence(mem_flags, memory_order, thread_scope = thread_scope_device) {
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

// ---- SIMD-group and quad-group functions -------------------------------
#define __MB_REDUCE(name, W, op, cond)                                                               \
  template <class T, __mb::req<cond> = 0> __MB_INL T name(T x, __MB_SITE_PARAMS) {                   \
    return __mb::simd_call(x, 0, __mb::c_reduce<T, __mb::op, W>, __MB_SITE);                         \
  }
#define __MB_PREFIX(name, W, op, incl)                                                               \
  template <class T, __mb::req<__mb::is_arith<T>> = 0> __MB_INL T name(T x, __MB_SITE_PARAMS) {     \
    return __mb::simd_call(x, 0, __mb::c_prefix<T, __mb::op, incl, W>, __MB_SITE);                   \
  }
#define __MB_SHUFFLE(name, W, kind)                                                                  \
  template <class T, __mb::req<__mb::simd_ok<T>> = 0>                                               \
  __MB_INL T name(T x, ushort arg, __MB_SITE_PARAMS) {                                               \
    return __mb::simd_call(x, arg, __mb::c_shuffle<T, __mb::kind, W>, __MB_SITE);                    \
  }
#define __MB_GROUP_FUNCTIONS(p, W)                                                                   \
  __MB_REDUCE(p##_sum, W, op_sum, __mb::is_arith<T>)                                                 \
  __MB_REDUCE(p##_product, W, op_product, __mb::is_arith<T>)                                         \
  __MB_REDUCE(p##_min, W, op_min, __mb::is_arith<T>)                                                 \
  __MB_REDUCE(p##_max, W, op_max, __mb::is_arith<T>)                                                 \
  __MB_REDUCE(p##_and, W, op_and, __mb::is_int<T>)                                                   \
  __MB_REDUCE(p##_or, W, op_or, __mb::is_int<T>)                                                     \
  __MB_REDUCE(p##_xor, W, op_xor, __mb::is_int<T>)                                                   \
  __MB_PREFIX(p##_prefix_inclusive_sum, W, op_sum, true)                                             \
  __MB_PREFIX(p##_prefix_exclusive_sum, W, op_sum, false)                                            \
  __MB_PREFIX(p##_prefix_inclusive_product, W, op_product, true)                                     \
  __MB_PREFIX(p##_prefix_exclusive_product, W, op_product, false)                                    \
  __MB_SHUFFLE(p##_shuffle, W, SH_INDEX)                                                             \
  __MB_SHUFFLE(p##_broadcast, W, SH_INDEX)                                                           \
  __MB_SHUFFLE(p##_shuffle_up, W, SH_UP)                                                             \
  __MB_SHUFFLE(p##_shuffle_down, W, SH_DOWN)                                                         \
  __MB_SHUFFLE(p##_shuffle_xor, W, SH_XOR)                                                           \
  __MB_SHUFFLE(p##_shuffle_rotate_up, W, SH_ROT_UP)                                                  \
  __MB_SHUFFLE(p##_shuffle_rotate_down, W, SH_ROT_DOWN)                                              \
  template <class T, __mb::req<__mb::simd_ok<T>> = 0>                                               \
  __MB_INL T p##_broadcast_first(T x, __MB_SITE_PARAMS) {                                            \
    return __mb::simd_call(x, 0, __mb::c_first<T, W>, __MB_SITE);                                    \
  }                                                                                                  \
  __MB_INL bool p##_all(bool x, __MB_SITE_PARAMS) {                                                  \
    return __mb::simd_call<int>(x ? 1 : 0, 0, __mb::c_reduce<int, __mb::op_and, W>, __MB_SITE) != 0; \
  }                                                                                                  \
  __MB_INL bool p##_any(bool x, __MB_SITE_PARAMS) {                                                  \
    return __mb::simd_call<int>(x ? 1 : 0, 0, __mb::c_reduce<int, __mb::op_or, W>, __MB_SITE) != 0; \
  }                                                                                                  \
  __MB_INL bool p##_is_first(__MB_SITE_PARAMS) {                                                     \
    return __mb::simd_call<bool>(false, 0, __mb::c_is_first<W>, __MB_SITE);                          \
  }
__MB_GROUP_FUNCTIONS(simd, MB_SIM_SIMD_WIDTH)
__MB_GROUP_FUNCTIONS(quad, 4)
#undef __MB_GROUP_FUNCTIONS
#undef __MB_REDUCE
#undef __MB_PREFIX
#undef __MB_SHUFFLE

// simd_shuffle_and_fill_up/_down(data, filling, delta[, modulo]).
#define __MB_FILL(name, down)                                                                        \
  template <class T, __mb::req<__mb::simd_ok<T> && sizeof(T) * 2 <= MB_SIM_SLOT_BYTES> = 0>         \
  __MB_INL T name(T data, T filling, ushort delta, ushort modulo = MB_SIM_SIMD_WIDTH,               \
                  __MB_SITE_PARAMS) {                                                                \
    struct pair {                                                                                    \
      T d, f;                                                                                        \
    };                                                                                               \
    unsigned m = modulo >= 1 && modulo <= MB_SIM_SIMD_WIDTH ? modulo : MB_SIM_SIMD_WIDTH;           \
    return __mb::simd_call(pair{data, filling}, (m << 16) | delta, __mb::c_fill<T, down>,           \
                           __MB_SITE)                                                                \
        .d;                                                                                          \
  }
__MB_FILL(simd_shuffle_and_fill_up, false)
__MB_FILL(simd_shuffle_and_fill_down, true)
#undef __MB_FILL

// simd_vote / quad_vote: the lanes' bits of a ballot.
struct simd_vote {
  using vote_t = ulong;
  vote_t __v;
  explicit constexpr simd_vote(vote_t v = 0) : __v(v) {}
  explicit constexpr operator vote_t() const { return __v; }
  constexpr bool all() const { return (__v & 0xfffffffful) == 0xfffffffful; }
  constexpr bool any() const { return (__v & 0xfffffffful) != 0; }
};
struct quad_vote {
  using vote_t = ushort;
  vote_t __v;
  explicit constexpr quad_vote(vote_t v = 0) : __v(v) {}
  explicit constexpr operator vote_t() const { return __v; }
  constexpr bool all() const { return (__v & 0xf) == 0xf; }
  constexpr bool any() const { return (__v & 0xf) != 0; }
};
__MB_INL simd_vote simd_ballot(bool x, __MB_SITE_PARAMS) {
  return simd_vote(__mb::simd_call<unsigned long>(x, 0, __mb::c_ballot<32>, __MB_SITE));
}
__MB_INL simd_vote simd_active_threads_mask(__MB_SITE_PARAMS) {
  return simd_vote(__mb::simd_call<unsigned long>(0, 0, __mb::c_active<32>, __MB_SITE));
}
__MB_INL quad_vote quad_ballot(bool x, __MB_SITE_PARAMS) {
  return quad_vote(
      (ushort)__mb::simd_call<unsigned long>(x, 0, __mb::c_ballot<4>, __MB_SITE));
}
__MB_INL quad_vote quad_active_threads_mask(__MB_SITE_PARAMS) {
  return quad_vote(
      (ushort)__mb::simd_call<unsigned long>(0, 0, __mb::c_active<4>, __MB_SITE));
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
// `expected` may be in any address space (thread memory, as a rule).
template <class T, class E, class U, __mb::req<__mb::same<__mb::clean<E>, T>> = 0>
__MB_INL bool atomic_compare_exchange_weak_explicit(volatile atomic<T> *obj, E *expected,
                                                    U desired, memory_order, memory_order) {
  T v = (T)desired;
  return __atomic_compare_exchange(&obj->__v, expected, &v, false, __ATOMIC_RELAXED,
                                   __ATOMIC_RELAXED);
}
template <class T, class E, class U, __mb::req<__mb::same<__mb::clean<E>, T>> = 0>
__MB_INL bool atomic_compare_exchange_strong_explicit(volatile atomic<T> *obj, E *expected,
                                                      U desired, memory_order, memory_order) {
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
// Every such variable lists its size in the section mb_tg of kernel.so (data,
// no code runs at load); the runner lays them out and each threadgroup gets
// them fresh, poisoned, in its arena.
namespace __mb {
template <class T, int ID> __MB_INL T &tg_var() {
  static_assert(ID < MB_SIM_MAX_TG_VARS, "too many threadgroup variables");
  static_assert(!__is_pointer(T), "a threadgroup pointer is per thread, not shared");
  static const mb_tg_entry entry __attribute__((used, section("mb_tg"))) = {ID, sizeof(T),
                                                                           alignof(T)};
  (void)entry;
  return *addr_cast<T *>(rt()->threadgroup_arena() + mb_kernel_tg_offsets[ID]);
}
// A threadgroup variable of a kernel in the file that is not the one run.
template <class T> __MB_INL T &tg_unused() { return *addr_cast<T *>((unsigned char *)nullptr); }
} // namespace __mb
