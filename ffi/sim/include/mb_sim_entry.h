// MetalBench simulator: glue for the generated entry file of a kernel.so.
// The compile step learns each parameter's binding from clang's AST dump and
// writes calls of these templates; the parameter *types* come from the
// compiler (decltype of the kernel), never from parsing type text.
#pragma once

#include "metal_stdlib"

// The runner's services and the threadgroup variables' offsets, written by
// the runner when it loads kernel.so (see mb_kernel_info).
extern "C" {
const mb_rt *mb_kernel_rt = nullptr;
unsigned mb_kernel_tg_offsets[MB_SIM_MAX_TG_VARS];
// Bounds of the sections the shim fills (null when a section is empty).
extern const mb_tg_entry __start_mb_tg[] __attribute__((weak, visibility("hidden")));
extern const mb_tg_entry __stop_mb_tg[] __attribute__((weak, visibility("hidden")));
extern const char __start_mb_sync[] __attribute__((weak, visibility("hidden")));
extern const char __stop_mb_sync[] __attribute__((weak, visibility("hidden")));

// -fsanitize=alignment reports a misaligned load or store here (clang's
// UBSan data layout), and the runner turns it into a fault report.
struct __mb_ubsan_loc {
  const mb_cchar *file;
  unsigned line, column;
};
struct __mb_ubsan_type {
  unsigned short kind, info;
  char name[1];
};
struct __mb_ubsan_mismatch {
  __mb_ubsan_loc loc;
  const __mb_ubsan_type *type;
  unsigned char log_alignment, check_kind;
};
__attribute__((visibility("hidden"), noreturn)) void
__ubsan_handle_type_mismatch_v1_abort(const __mb_ubsan_mismatch *m, const void *address) {
  mb_kernel_rt->misaligned(m->loc.file, m->loc.line, m->loc.column, m->type->name,
                           1u << m->log_alignment, address,
                           m->check_kind == 1 ? MB_ACCESS_STORE : MB_ACCESS_LOAD);
  __builtin_trap();
}
// -fsanitize=array-bounds: an index outside an array of known size (a
// thread's `float x[8]`, a threadgroup array). A GPU would read or write
// whatever lies there; the runner reports it instead.
struct __mb_ubsan_oob {
  __mb_ubsan_loc loc;
  const __mb_ubsan_type *array_type;
  const __mb_ubsan_type *index_type;
};
__attribute__((visibility("hidden"), noreturn)) void
__ubsan_handle_out_of_bounds_abort(const __mb_ubsan_oob *d, unsigned long index) {
  long i = (long)index;
  const unsigned info = d->index_type->info;
  const unsigned bits = 1u << (info >> 1);
  if ((info & 1) && bits < 64) i = (long)(index << (64 - bits)) >> (64 - bits); // signed
  mb_kernel_rt->misaligned(d->loc.file, d->loc.line, d->loc.column, d->array_type->name, 0,
                           (const void *)i, MB_ACCESS_INDEX);
  __builtin_trap();
}
__attribute__((visibility("hidden"), noreturn)) void
__ubsan_handle_alignment_assumption_abort(const __mb_ubsan_loc *loc, const void *address,
                                          unsigned long alignment, unsigned long) {
  mb_kernel_rt->misaligned(loc->file, loc->line, loc->column,
                           __mb::addr_cast<const char *>("an assume_aligned pointer"),
                           (unsigned)alignment, address, MB_ACCESS_LOAD);
  __builtin_trap();
}
}

namespace __mb {
template <unsigned I, class... A> struct type_at;
template <class H, class... A> struct type_at<0, H, A...> {
  using type = H;
};
template <unsigned I, class H, class... A> struct type_at<I, H, A...> : type_at<I - 1, A...> {};

template <class F> struct fn_type;
template <class R, class... A> struct fn_type<R(A...)> {
  static constexpr unsigned arity = sizeof...(A);
  template <unsigned I> using arg = typename type_at<I, A...>::type;
};
// By the function type: in C++ for OpenCL a `R (*)(A...)` pattern carries
// an address space and never matches a kernel's pointer type.
template <class F> struct fn : fn_type<__remove_pointer(F)> {};
template <class F, unsigned I> using arg_t = typename fn<F>::template arg<I>;

template <class T> struct is_ptr {
  static constexpr bool value = false;
};
template <class T> struct is_ptr<T *> {
  static constexpr bool value = true;
};
template <class T> struct is_ptr<T *const> {
  static constexpr bool value = true;
};
template <class T> struct is_ref {
  static constexpr bool value = false;
};
template <class T> struct is_ref<T &> {
  static constexpr bool value = true;
};

// A [[buffer(n)]] or [[threadgroup(n)]] parameter from the bound memory.
template <class T> __MB_INL T bind_memory(void *p) {
  if constexpr (is_ptr<T>::value) return addr_cast<T>(p);
  else if constexpr (is_ref<T>::value) return *addr_cast<typename rmref<T>::type *>(p);
  else return *addr_cast<clean<T> *>(p);
}
// Bytes a parameter reads for sure (references and values), for checking
// the bound length before the kernel runs.
template <class T> constexpr unsigned min_bytes() {
  if constexpr (is_ptr<T>::value) return 0;
  else if constexpr (is_ref<T>::value) return sizeof(clean<T>) | MB_PARAM_REF_BIT;
  else return sizeof(clean<T>);
}

// Thread-position values: uint3 by id, then narrowed to the declared type
// (uint, ushort, uint2, ushort3, ...).
template <int ID>
__MB_INL metal::vec<uint, 3> position(const mb_dispatch *d, const mb_group *g, const mb_thread *t) {
  using u3 = metal::vec<uint, 3>;
  const uint w = MB_SIM_SIMD_WIDTH;
  auto v3 = [](const unsigned *p) { return u3{p[0], p[1], p[2]}; };
  if constexpr (ID == MB_ATTR_THREAD_POSITION_IN_GRID)
    return v3(g->position) * v3(d->group_threads) + v3(t->position);
  else if constexpr (ID == MB_ATTR_THREAD_POSITION_IN_THREADGROUP) return v3(t->position);
  else if constexpr (ID == MB_ATTR_THREADGROUP_POSITION_IN_GRID) return v3(g->position);
  else if constexpr (ID == MB_ATTR_THREADS_PER_THREADGROUP) return v3(g->size);
  else if constexpr (ID == MB_ATTR_THREADS_PER_GRID) return v3(d->grid_threads);
  else if constexpr (ID == MB_ATTR_THREADGROUPS_PER_GRID) return v3(d->grid_groups);
  else if constexpr (ID == MB_ATTR_THREAD_INDEX_IN_THREADGROUP) return u3{t->index, 0, 0};
  else if constexpr (ID == MB_ATTR_THREAD_INDEX_IN_SIMDGROUP) return u3{t->index % w, 0, 0};
  else if constexpr (ID == MB_ATTR_SIMDGROUP_INDEX_IN_THREADGROUP) return u3{t->index / w, 0, 0};
  else if constexpr (ID == MB_ATTR_THREADS_PER_SIMDGROUP) return u3{w, 0, 0};
  else if constexpr (ID == MB_ATTR_SIMDGROUPS_PER_THREADGROUP)
    return u3{(g->size[0] * g->size[1] * g->size[2] + w - 1) / w, 0, 0};
  else if constexpr (ID == MB_ATTR_DISPATCH_THREADS_PER_THREADGROUP)
    return v3(d->group_threads);
  else if constexpr (ID == MB_ATTR_DISPATCH_SIMDGROUPS_PER_THREADGROUP)
    return u3{(d->group_threads[0] * d->group_threads[1] * d->group_threads[2] + w - 1) / w, 0,
              0};
  else if constexpr (ID == MB_ATTR_THREAD_INDEX_IN_QUADGROUP) return u3{t->index % 4, 0, 0};
  else if constexpr (ID == MB_ATTR_QUADGROUP_INDEX_IN_THREADGROUP) return u3{t->index / 4, 0, 0};
  else if constexpr (ID == MB_ATTR_QUADGROUPS_PER_THREADGROUP)
    return u3{(g->size[0] * g->size[1] * g->size[2] + 3) / 4, 0, 0};
  else if constexpr (ID == MB_ATTR_GRID_ORIGIN) return u3{0, 0, 0};
  else static_assert(ID < 0, "unknown thread-position attribute");
}
template <class T> __MB_INL T bind_position(metal::vec<uint, 3> v) {
  using C = clean<T>;
  static_assert(is_int<C>, "a thread-position parameter must be uint/ushort or a vector of them");
  if constexpr (is_vec<C>) {
    C r{};
    for (int i = 0; i < vt<C>::N; ++i) r[i] = (elem<C>)v[i];
    return r;
  } else {
    return (C)v[0];
  }
}

// The kernel's threads, one after another (see mb_cursor). Kernel code is
// inlined here, so a barrier-free kernel is one loop.
template <class Call> __MB_INL void run_threads(mb_cursor *c, Call call) {
  while (c->next < c->count) {
    unsigned k = c->next++;
    mb_thread *t = c->threads + (c->order ? c->order[k] : k);
    c->current = t;
    call(t);
    t->done = 1;
  }
}
} // namespace __mb

#define MB_SIM_EXPORT extern "C" __attribute__((visibility("default")))
