// MetalBench simulator shim: MSL vector constructors.
// float4(x) splats, float4(a.xy, b, c) concatenates components, float4(i4)
// converts component-wise. C++ has no such constructors for clang's ext
// vectors, so each vector type name is also a function-like macro: a name
// followed by "(" builds the vector with __mb_vmake; the bare name is still
// the type. Included last: after this, the shim itself must not use them.
#pragma once

#include "mb_sim_matrix.h"

namespace __mb {
template <class E, class A> __attribute__((always_inline)) inline void vput(E *out, int &n, A a) {
  if constexpr (is_vec<A>) {
    for (int i = 0; i < vt<A>::N; ++i) out[n++] = (E)a[i];
  } else {
    out[n++] = (E)a;
  }
}
template <class A> constexpr int width = vt<clean<A>>::N;
} // namespace __mb

template <class V, class... A> __attribute__((always_inline)) inline V __mb_vmake_(A... a) {
  using E = __mb::elem<V>;
  constexpr int N = __mb::vt<V>::N;
  if constexpr (sizeof...(A) == 0) {
    return V{};
  } else if constexpr (sizeof...(A) == 1 && (__mb::is_vec<A> && ...)) {
    static_assert(((__mb::width<A> == N) && ...), "vector conversion needs the same width");
    return __mb::convert<V>(a...);
  } else if constexpr (sizeof...(A) == 1) {
    return V((E)(a + ...)); // splat: the one argument
  } else {
    static_assert((__mb::width<A> + ...) == N, "wrong number of components for this vector");
    E c[N];
    int n = 0;
    (__mb::vput(c, n, a), ...);
    V r{};
    for (int i = 0; i < N; ++i) r[i] = c[i];
    return r;
  }
}
// Packed vectors take part as their vector types (float4(packed_half4)).
template <class V, class... A> __attribute__((always_inline)) inline V __mb_vmake(A... a) {
  return __mb_vmake_<V>(__mb::unpack(a)...);
}
namespace metal {
using ::__mb_vmake;
} // namespace metal

namespace __mb {
// T(args) as MSL reads it: a vector constructor when T is a vector type
// (the compile step writes V(a, b) in templates, and `short2 v(a, b)`, so).
// half <-> bfloat: explicit conversions in MSL, refused by clang; through
// float, which holds both exactly (one rounding, as a direct conversion).
template <class T, class U> constexpr bool half_bfloat =
    (same<clean<T>, half> && same<clean<U>, bfloat>) ||
    (same<clean<T>, bfloat> && same<clean<U>, half>);
// By value: an argument may be a vector component (v.x), which binds to no
// reference. A cast to a reference type keeps the reference.
template <class T, class U, req<!__is_reference(T)> = 0>
__attribute__((always_inline)) constexpr T fpcast(U x) {
  if constexpr (half_bfloat<T, U>) return (clean<T>)(float)x;
  else if constexpr (is_vec<clean<T>> && is_vec<U> && !same<elem<clean<T>>, elem<U>>)
    return convert<clean<T>>(x); // static_cast<int4>(f4) in a template: a conversion
  else return static_cast<T>(x);
}
template <class T, class U, req<__is_reference(T)> = 0>
__attribute__((always_inline)) constexpr T fpcast(U &&x) {
  return static_cast<T>(x);
}
template <class T, class... A> __attribute__((always_inline)) constexpr T construct(A... a) {
  if constexpr (is_vec<clean<T>>) return __mb_vmake<clean<T>>(a...);
  else if constexpr (sizeof...(A) == 1) return fpcast<T>(a...);
  else return T(a...);
}
// {x, y, z} as an argument: converts to whichever vector type the
// parameter has (a tuple of the values; a generic lambda here crashed
// clang). vpad: `uint4 v = {a, b, c}`, the missing components zero.
template <class T, T... I> struct iseq {};
template <int I, class T> struct list_item {
  T v;
};
template <bool Pad, class S, class... A> struct brace_list;
template <bool Pad, int... I, class... A>
struct brace_list<Pad, iseq<int, I...>, A...> : list_item<I, A>... {
  template <class V, req<is_vec<V>> = 0> operator V() const {
    if constexpr (Pad) {
      elem<V> c[vt<V>::N] = {};
      int n = 0;
      (vput(c, n, static_cast<const list_item<I, A> &>(*this).v), ...);
      V v{};
      for (int i = 0; i < vt<V>::N; ++i) v[i] = c[i];
      return v;
    } else {
      return __mb_vmake<V>(static_cast<const list_item<I, A> &>(*this).v...);
    }
  }
};
template <class... A>
__attribute__((always_inline)) inline brace_list<false, __make_integer_seq<iseq, int, sizeof...(A)>,
                                                 A...>
vlist(A... a) {
  return {{a}...};
}
template <class... A>
__attribute__((always_inline)) inline brace_list<true, __make_integer_seq<iseq, int, sizeof...(A)>,
                                                 A...>
vpad(A... a) {
  return {{a}...};
}
} // namespace __mb

#define char2(...) __mb_vmake<char2>(__VA_ARGS__)
#define char3(...) __mb_vmake<char3>(__VA_ARGS__)
#define char4(...) __mb_vmake<char4>(__VA_ARGS__)
#define uchar2(...) __mb_vmake<uchar2>(__VA_ARGS__)
#define uchar3(...) __mb_vmake<uchar3>(__VA_ARGS__)
#define uchar4(...) __mb_vmake<uchar4>(__VA_ARGS__)
#define short2(...) __mb_vmake<short2>(__VA_ARGS__)
#define short3(...) __mb_vmake<short3>(__VA_ARGS__)
#define short4(...) __mb_vmake<short4>(__VA_ARGS__)
#define ushort2(...) __mb_vmake<ushort2>(__VA_ARGS__)
#define ushort3(...) __mb_vmake<ushort3>(__VA_ARGS__)
#define ushort4(...) __mb_vmake<ushort4>(__VA_ARGS__)
#define int2(...) __mb_vmake<int2>(__VA_ARGS__)
#define int3(...) __mb_vmake<int3>(__VA_ARGS__)
#define int4(...) __mb_vmake<int4>(__VA_ARGS__)
#define uint2(...) __mb_vmake<uint2>(__VA_ARGS__)
#define uint3(...) __mb_vmake<uint3>(__VA_ARGS__)
#define uint4(...) __mb_vmake<uint4>(__VA_ARGS__)
#define long2(...) __mb_vmake<long2>(__VA_ARGS__)
#define long3(...) __mb_vmake<long3>(__VA_ARGS__)
#define long4(...) __mb_vmake<long4>(__VA_ARGS__)
#define ulong2(...) __mb_vmake<ulong2>(__VA_ARGS__)
#define ulong3(...) __mb_vmake<ulong3>(__VA_ARGS__)
#define ulong4(...) __mb_vmake<ulong4>(__VA_ARGS__)
#define half2(...) __mb_vmake<half2>(__VA_ARGS__)
#define half3(...) __mb_vmake<half3>(__VA_ARGS__)
#define half4(...) __mb_vmake<half4>(__VA_ARGS__)
#define float2(...) __mb_vmake<float2>(__VA_ARGS__)
#define float3(...) __mb_vmake<float3>(__VA_ARGS__)
#define float4(...) __mb_vmake<float4>(__VA_ARGS__)
#define bfloat2(...) __mb_vmake<bfloat2>(__VA_ARGS__)
#define bfloat3(...) __mb_vmake<bfloat3>(__VA_ARGS__)
#define bfloat4(...) __mb_vmake<bfloat4>(__VA_ARGS__)
#define bool2(...) __mb_vmake<bool2>(__VA_ARGS__)
#define bool3(...) __mb_vmake<bool3>(__VA_ARGS__)
#define bool4(...) __mb_vmake<bool4>(__VA_ARGS__)
// half(b) and bfloat(h): conversions between the two, which clang refuses.
#define half(...) ::__mb::construct<half>(__VA_ARGS__)
#define bfloat(...) ::__mb::construct<bfloat>(__VA_ARGS__)
