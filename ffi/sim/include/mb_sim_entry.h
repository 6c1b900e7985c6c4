// MetalBench simulator: glue for the generated entry file of a kernel.so.
// The compile step learns each parameter's binding from clang's AST dump and
// writes calls of these templates; the parameter *types* come from the
// compiler (decltype of the kernel), never from parsing type text.
#pragma once

#include "metal_stdlib"

namespace __mb {
template <unsigned I, class... A> struct type_at;
template <class H, class... A> struct type_at<0, H, A...> {
  using type = H;
};
template <unsigned I, class H, class... A> struct type_at<I, H, A...> : type_at<I - 1, A...> {};

template <class F> struct fn;
template <class R, class... A> struct fn<R (*)(A...)> {
  static constexpr unsigned arity = sizeof...(A);
  template <unsigned I> using arg = typename type_at<I, A...>::type;
};
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
  if constexpr (is_ptr<T>::value) return (T)p;
  else if constexpr (is_ref<T>::value) return *(typename rmref<T>::type *)p;
  else return *(clean<T> *)p;
}
// Bytes a parameter reads for sure (references and values), for checking
// the bound length before the kernel runs.
template <class T> constexpr unsigned min_bytes() {
  if constexpr (is_ptr<T>::value) return 0;
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
    return u3{(d->group_threads[0] * d->group_threads[1] *
                   d->group_threads[2] +
               w - 1) /
                  w,
              0, 0};
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

// Lays out the threadgroup variables registered while kernel.so loaded.
inline unsigned layout_threadgroup_vars() {
  unsigned off = 0;
  for (unsigned i = 0; i < tg.count; ++i) {
    unsigned a = tg.align[i] < 16 ? 16 : tg.align[i];
    off = (off + a - 1) / a * a;
    tg.offset[i] = off;
    off += tg.size[i];
  }
  return (off + 15) / 16 * 16;
}
} // namespace __mb

#define MB_SIM_EXPORT extern "C" __attribute__((visibility("default")))
