// MetalBench simulator shim: the math, common, integer, geometric and
// relational functions of the Metal standard library, for scalars and
// vectors (component-wise; a scalar operand broadcasts to the vector's type).
// Floating-point functions compute in float and round to the argument type;
// metal::fast:: and metal::precise:: name the same (precise) functions.
#pragma once

#include "mb_sim_types.h"

#define __MB_INL __attribute__((always_inline)) inline

namespace __mb {
template <class T, class F> __MB_INL T map1f(T x, F f) {
  if constexpr (is_vec<T>) {
    T r{};
    for (int i = 0; i < vt<T>::N; ++i) r[i] = (elem<T>)f((float)x[i]);
    return r;
  } else {
    return (T)f((float)x);
  }
}
template <class T, class F> __MB_INL T map2f(T a, T b, F f) {
  if constexpr (is_vec<T>) {
    T r{};
    for (int i = 0; i < vt<T>::N; ++i) r[i] = (elem<T>)f((float)a[i], (float)b[i]);
    return r;
  } else {
    return (T)f((float)a, (float)b);
  }
}
template <class T, class F> __MB_INL T map3f(T a, T b, T c, F f) {
  if constexpr (is_vec<T>) {
    T r{};
    for (int i = 0; i < vt<T>::N; ++i)
      r[i] = (elem<T>)f((float)a[i], (float)b[i], (float)c[i]);
    return r;
  } else {
    return (T)f((float)a, (float)b, (float)c);
  }
}
// Element-wise over any scalar/vector type, keeping the element type.
template <class T, class F> __MB_INL T map1(T x, F f) {
  if constexpr (is_vec<T>) {
    T r{};
    for (int i = 0; i < vt<T>::N; ++i) r[i] = f(x[i]);
    return r;
  } else {
    return f(x);
  }
}
template <class T, class F> __MB_INL T map2(T a, T b, F f) {
  if constexpr (is_vec<T>) {
    T r{};
    for (int i = 0; i < vt<T>::N; ++i) r[i] = f(a[i], b[i]);
    return r;
  } else {
    return f(a, b);
  }
}
template <class T, class F> __MB_INL T map3(T a, T b, T c, F f) {
  if constexpr (is_vec<T>) {
    T r{};
    for (int i = 0; i < vt<T>::N; ++i) r[i] = f(a[i], b[i], c[i]);
    return r;
  } else {
    return f(a, b, c);
  }
}
template <class A, class B, class C>
using arith3_t = arith2_t<arith2_t<A, B>, C>;
// MSL boolN of the same width as T (0/1 per component), or bool.
template <class T>
using mask_t = typename cond<is_vec<T>, metal::vec<signed char, vt<T>::N>, bool>::type;
template <class T, class F> __MB_INL mask_t<T> test1(T x, F f) {
  if constexpr (is_vec<T>) {
    mask_t<T> r{};
    for (int i = 0; i < vt<T>::N; ++i) r[i] = f((float)x[i]) ? 1 : 0;
    return r;
  } else {
    return f((float)x);
  }
}
__MB_INL float fract1(float x) {
  float r = x - __builtin_floorf(x);
  return r < 0x1.fffffep-1f ? r : 0x1.fffffep-1f;
}
__MB_INL float pi_reduce(float x) { return x - 2.0f * __builtin_rintf(0.5f * x); }

// Integer helpers, per element; ubits() zero-extends the element's bits.
template <class E> __MB_INL unsigned long ubits(E v) {
  if constexpr (sizeof(E) == 1) return (unsigned char)v;
  else if constexpr (sizeof(E) == 2) return (unsigned short)v;
  else if constexpr (sizeof(E) == 4) return (unsigned)v;
  else return (unsigned long)v;
}
template <class E> constexpr int nbits = (int)sizeof(E) * 8;
template <class E> __MB_INL E popcount1(E v) { return (E)__builtin_popcountl(ubits(v)); }
template <class E> __MB_INL E clz1(E v) {
  return v == 0 ? (E)nbits<E> : (E)(__builtin_clzl(ubits(v)) - (64 - nbits<E>));
}
template <class E> __MB_INL E ctz1(E v) {
  return v == 0 ? (E)nbits<E> : (E)__builtin_ctzl(ubits(v));
}
template <class E> __MB_INL E reverse_bits1(E v) {
  unsigned long u = ubits(v), r = 0;
  for (int i = 0; i < nbits<E>; ++i) r |= ((u >> i) & 1ul) << (nbits<E> - 1 - i);
  return (E)r;
}
template <class E> __MB_INL E absdiff1(E x, E y) { return x > y ? (E)(x - y) : (E)(y - x); }
template <class E> __MB_INL E sat1(__int128 v) {
  __int128 lo = (__int128)(E)(is_signed_int<E> ? (E)1 << (nbits<E> - 1) : 0);
  __int128 hi = is_signed_int<E> ? -(lo + 1) : (__int128)(E)~(E)0;
  return (E)(v < lo ? lo : v > hi ? hi : v);
}
template <class E> __MB_INL E addsat1(E x, E y) { return sat1<E>((__int128)x + (__int128)y); }
template <class E> __MB_INL E subsat1(E x, E y) { return sat1<E>((__int128)x - (__int128)y); }
template <class E> __MB_INL E hadd1(E x, E y) { return (E)(((__int128)x + (__int128)y) >> 1); }
template <class E> __MB_INL E rhadd1(E x, E y) { return (E)(((__int128)x + (__int128)y + 1) >> 1); }
template <class E> __MB_INL E mulhi1(E x, E y) {
  return (E)(((__int128)x * (__int128)y) >> nbits<E>);
}
template <class E> __MB_INL E rotate1(E x, E y) {
  int n = nbits<E>, s = (int)(ubits(y) % (unsigned)n);
  unsigned long u = ubits(x);
  return s == 0 ? x : (E)((u << s) | (u >> (n - s)));
}
} // namespace __mb

namespace metal {
namespace __math {
#define __MB_FP1(name, body)                                                                         \
  template <class T, __mb::req<__mb::is_fp<T>> = 0> __MB_INL T name(T x) {                          \
    return __mb::map1f(x, [](float v) -> float { return body; });                                   \
  }
#define __MB_FP2(name, body)                                                                         \
  template <class A, class B, class R = __mb::arith2_t<A, B>, __mb::req<__mb::is_fp<R>> = 0>       \
  __MB_INL R name(A a, B b) {                                                                        \
    return __mb::map2f((R)a, (R)b, [](float x, float y) -> float { return body; });                 \
  }
#define __MB_FP3(name, body)                                                                         \
  template <class A, class B, class C, class R = __mb::arith3_t<A, B, C>,                          \
            __mb::req<__mb::is_fp<R>> = 0>                                                           \
  __MB_INL R name(A a, B b, C c) {                                                                   \
    return __mb::map3f((R)a, (R)b, (R)c, [](float x, float y, float z) -> float { return body; });  \
  }

__MB_FP1(acos, __builtin_acosf(v))
__MB_FP1(acosh, __builtin_acoshf(v))
__MB_FP1(asin, __builtin_asinf(v))
__MB_FP1(asinh, __builtin_asinhf(v))
__MB_FP1(atan, __builtin_atanf(v))
__MB_FP1(atanh, __builtin_atanhf(v))
__MB_FP1(ceil, __builtin_ceilf(v))
__MB_FP1(cos, __builtin_cosf(v))
__MB_FP1(cosh, __builtin_coshf(v))
__MB_FP1(cospi, __builtin_cosf(M_PI_F * __mb::pi_reduce(v)))
__MB_FP1(exp, __builtin_expf(v))
__MB_FP1(exp2, __builtin_exp2f(v))
__MB_FP1(exp10, __builtin_exp10f(v))
__MB_FP1(fabs, __builtin_fabsf(v))
__MB_FP1(floor, __builtin_floorf(v))
__MB_FP1(fract, __mb::fract1(v))
__MB_FP1(log, __builtin_logf(v))
__MB_FP1(log2, __builtin_log2f(v))
__MB_FP1(log10, __builtin_log10f(v))
__MB_FP1(rint, __builtin_rintf(v))
__MB_FP1(round, __builtin_roundf(v))
__MB_FP1(rsqrt, 1.0f / __builtin_sqrtf(v))
__MB_FP1(sin, __builtin_sinf(v))
__MB_FP1(sinh, __builtin_sinhf(v))
__MB_FP1(sinpi, __builtin_sinf(M_PI_F * __mb::pi_reduce(v)))
__MB_FP1(sqrt, __builtin_sqrtf(v))
__MB_FP1(tan, __builtin_tanf(v))
__MB_FP1(tanh, __builtin_tanhf(v))
__MB_FP1(tanpi, __builtin_tanf(M_PI_F * __mb::pi_reduce(v)))
__MB_FP1(trunc, __builtin_truncf(v))
__MB_FP1(saturate, __builtin_fminf(__builtin_fmaxf(v, 0.0f), 1.0f))
__MB_FP1(sign, v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v == v ? v : 0.0f)

__MB_FP2(atan2, __builtin_atan2f(x, y))
__MB_FP2(copysign, __builtin_copysignf(x, y))
__MB_FP2(fdim, x > y ? x - y : (x == x && y == y) ? 0.0f : __builtin_nanf(""))
__MB_FP2(fmax, __builtin_fmaxf(x, y))
__MB_FP2(fmin, __builtin_fminf(x, y))
__MB_FP2(fmod, __builtin_fmodf(x, y))
__MB_FP2(nextafter, __builtin_nextafterf(x, y))
__MB_FP2(pow, __builtin_powf(x, y))
__MB_FP2(powr, __builtin_powf(x, y))
__MB_FP2(step, y < x ? 0.0f : 1.0f)
__MB_FP2(divide, x / y)

__MB_FP3(fma, __builtin_fmaf(x, y, z))
__MB_FP3(mix, x + (y - x) * z)
__MB_FP3(smoothstep, [&] {
  float t = __builtin_fminf(__builtin_fmaxf((z - x) / (y - x), 0.0f), 1.0f);
  return t * t * (3.0f - 2.0f * t);
}())
__MB_FP3(fmax3, __builtin_fmaxf(__builtin_fmaxf(x, y), z))
__MB_FP3(fmin3, __builtin_fminf(__builtin_fminf(x, y), z))
__MB_FP3(fmedian3, __builtin_fmaxf(__builtin_fminf(x, y), __builtin_fminf(__builtin_fmaxf(x, y), z)))
#undef __MB_FP1
#undef __MB_FP2
#undef __MB_FP3

// ---- functions on both integer and floating-point types -------------------
template <class T, __mb::req<__mb::is_arith<T>> = 0> __MB_INL T abs(T x) {
  if constexpr (__mb::is_fp<T>) return fabs(x);
  else return __mb::map1(x, [](__mb::elem<T> v) -> __mb::elem<T> { return v < 0 ? -v : v; });
}
template <class A, class B, class R = __mb::arith2_t<A, B>, __mb::req<__mb::is_arith<R>> = 0>
__MB_INL R max(A a, B b) {
  if constexpr (__mb::is_fp<R>) return fmax(a, b);
  else return __mb::map2((R)a, (R)b, [](auto x, auto y) { return x > y ? x : y; });
}
template <class A, class B, class R = __mb::arith2_t<A, B>, __mb::req<__mb::is_arith<R>> = 0>
__MB_INL R min(A a, B b) {
  if constexpr (__mb::is_fp<R>) return fmin(a, b);
  else return __mb::map2((R)a, (R)b, [](auto x, auto y) { return x < y ? x : y; });
}
template <class A, class B, class C, class R = __mb::arith3_t<A, B, C>,
          __mb::req<__mb::is_arith<R>> = 0>
__MB_INL R clamp(A x, B lo, C hi) {
  return min(max((R)x, (R)lo), (R)hi);
}
template <class A, class B, class C, class R = __mb::arith3_t<A, B, C>,
          __mb::req<__mb::is_arith<R>> = 0>
__MB_INL R max3(A a, B b, C c) {
  return max(max((R)a, (R)b), (R)c);
}
template <class A, class B, class C, class R = __mb::arith3_t<A, B, C>,
          __mb::req<__mb::is_arith<R>> = 0>
__MB_INL R min3(A a, B b, C c) {
  return min(min((R)a, (R)b), (R)c);
}
template <class A, class B, class C, class R = __mb::arith3_t<A, B, C>,
          __mb::req<__mb::is_arith<R>> = 0>
__MB_INL R median3(A a, B b, C c) {
  return max(min((R)a, (R)b), min(max((R)a, (R)b), (R)c));
}

// ---- integer functions ---------------------------------------------------
#define __MB_INT1(name)                                                                              \
  template <class T, __mb::req<__mb::is_int<T>> = 0> __MB_INL T name(T x) {                         \
    return __mb::map1(x, __mb::name##1<__mb::elem<T>>);                                              \
  }
#define __MB_INT2(name)                                                                              \
  template <class A, class B, class R = __mb::arith2_t<A, B>, __mb::req<__mb::is_int<R>> = 0>      \
  __MB_INL R name(A a, B b) {                                                                        \
    return __mb::map2((R)a, (R)b, __mb::name##1<__mb::elem<R>>);                                     \
  }
__MB_INT1(popcount)
__MB_INT1(clz)
__MB_INT1(ctz)
__MB_INT1(reverse_bits)
__MB_INT2(absdiff)
__MB_INT2(addsat)
__MB_INT2(subsat)
__MB_INT2(hadd)
__MB_INT2(rhadd)
__MB_INT2(mulhi)
__MB_INT2(rotate)
#undef __MB_INT1
#undef __MB_INT2

// ---- geometric functions --------------------------------------------------
template <class T, __mb::req<__mb::is_fp<T> && __mb::is_vec<T>> = 0>
__MB_INL __mb::elem<T> dot(T a, T b) {
  float s = 0.0f;
  for (int i = 0; i < __mb::vt<T>::N; ++i) s += (float)a[i] * (float)b[i];
  return (__mb::elem<T>)s;
}
template <class T, __mb::req<__mb::is_fp<T> && __mb::is_vec<T>> = 0>
__MB_INL __mb::elem<T> length_squared(T a) {
  return dot(a, a);
}
template <class T, __mb::req<__mb::is_fp<T> && __mb::is_vec<T>> = 0>
__MB_INL __mb::elem<T> length(T a) {
  return (__mb::elem<T>)__builtin_sqrtf((float)dot(a, a));
}
template <class T, __mb::req<__mb::is_fp<T> && __mb::is_vec<T>> = 0>
__MB_INL __mb::elem<T> distance(T a, T b) {
  return length(a - b);
}
template <class T, __mb::req<__mb::is_fp<T> && __mb::is_vec<T>> = 0>
__MB_INL __mb::elem<T> distance_squared(T a, T b) {
  return length_squared(a - b);
}
template <class T, __mb::req<__mb::is_fp<T> && __mb::is_vec<T>> = 0> __MB_INL T normalize(T a) {
  return a * (__mb::elem<T>)(1.0f / __builtin_sqrtf((float)dot(a, a)));
}
template <class T, __mb::req<__mb::is_fp<T> && __mb::vt<T>::N == 3> = 0>
__MB_INL T cross(T a, T b) {
  return a.yzx * b.zxy - a.zxy * b.yzx;
}
template <class T, __mb::req<__mb::is_fp<T> && __mb::is_vec<T>> = 0>
__MB_INL T reflect(T i, T n) {
  return i - (__mb::elem<T>)2 * dot(n, i) * n;
}

// ---- relational functions -----------------------------------------------
template <class T, __mb::req<__mb::is_fp<T>> = 0> __MB_INL __mb::mask_t<T> isnan(T x) {
  return __mb::test1(x, [](float v) { return v != v; });
}
template <class T, __mb::req<__mb::is_fp<T>> = 0> __MB_INL __mb::mask_t<T> isinf(T x) {
  return __mb::test1(x, [](float v) { return __builtin_isinf(v) != 0; });
}
template <class T, __mb::req<__mb::is_fp<T>> = 0> __MB_INL __mb::mask_t<T> isfinite(T x) {
  return __mb::test1(x, [](float v) { return __builtin_isfinite(v) != 0; });
}
template <class T, __mb::req<__mb::is_fp<T>> = 0> __MB_INL __mb::mask_t<T> isnormal(T x) {
  return __mb::test1(x, [](float v) { return __builtin_isnormal(v) != 0; });
}
template <class T, __mb::req<__mb::is_fp<T>> = 0> __MB_INL __mb::mask_t<T> signbit(T x) {
  return __mb::test1(x, [](float v) { return __builtin_signbit(v) != 0; });
}
template <class T, __mb::req<__mb::is_arith<T> || __mb::same<T, bool>> = 0>
__MB_INL bool all(T x) {
  if constexpr (__mb::is_vec<T>) {
    for (int i = 0; i < __mb::vt<T>::N; ++i)
      if (!x[i]) return false;
    return true;
  } else {
    return (bool)x;
  }
}
template <class T, __mb::req<__mb::is_arith<T> || __mb::same<T, bool>> = 0>
__MB_INL bool any(T x) {
  if constexpr (__mb::is_vec<T>) {
    for (int i = 0; i < __mb::vt<T>::N; ++i)
      if (x[i]) return true;
    return false;
  } else {
    return (bool)x;
  }
}
// select(a, b, c): c ? b : a, per component when c is a vector.
template <class A, class B, class C, class R = __mb::arith2_t<A, B>,
          __mb::req<__mb::is_arith<R>> = 0>
__MB_INL R select(A a, B b, C c) {
  R x = (R)a, y = (R)b;
  if constexpr (__mb::is_vec<C>) {
    static_assert(__mb::vt<C>::N == __mb::vt<R>::N, "select: mask width differs");
    R r{};
    for (int i = 0; i < __mb::vt<R>::N; ++i) r[i] = c[i] ? y[i] : x[i];
    return r;
  } else {
    return c ? y : x;
  }
}

// c ? a : b with a vector condition (the compile step's rewrite): per
// component, as MSL's select (clang's own vector ?: tests the sign bit).
template <class C, class A, class B> __MB_INL auto vsel(C c, A a, B b) {
  return select(b, a, c);
}
template <class A, class B, class R = __mb::arith2_t<A, B>, __mb::req<__mb::is_fp<R>> = 0>
__MB_INL __mb::mask_t<R> isordered(A a, B b) {
  return __mb::bvec(((R)a == (R)a) && ((R)b == (R)b));
}
template <class A, class B, class R = __mb::arith2_t<A, B>, __mb::req<__mb::is_fp<R>> = 0>
__MB_INL __mb::mask_t<R> isunordered(A a, B b) {
  return __mb::bvec(!(((R)a == (R)a) && ((R)b == (R)b)));
}
template <class T, __mb::req<__mb::is_fp<T> && __mb::is_vec<T>> = 0>
__MB_INL T faceforward(T n, T i, T nref) {
  return dot(nref, i) < (__mb::elem<T>)0 ? n : -n;
}
template <class T, __mb::req<__mb::is_fp<T> && __mb::is_vec<T>> = 0>
__MB_INL T refract(T i, T n, __mb::elem<T> eta) {
  float d = (float)dot(n, i), e = (float)eta, k = 1.0f - e * e * (1.0f - d * d);
  if (k < 0.0f) return T(0);
  return i * eta - n * (__mb::elem<T>)(e * d + __builtin_sqrtf(k));
}
template <class T, __mb::req<__mb::is_int<T>> = 0>
__MB_INL T extract_bits(T x, uint offset, uint bits) {
  return __mb::map1(x, [=](__mb::elem<T> v) -> __mb::elem<T> {
    using E = __mb::elem<T>;
    if (bits == 0) return 0;
    constexpr int n = __mb::nbits<E>;
    unsigned long u = __mb::ubits(v) >> offset;
    unsigned long m = bits >= 64 ? ~0ul : (1ul << bits) - 1;
    u &= m;
    if (__mb::is_signed_int<E> && bits < (unsigned)n && ((u >> (bits - 1)) & 1)) u |= ~m;
    return (E)u;
  });
}
template <class T, __mb::req<__mb::is_int<T>> = 0>
__MB_INL T insert_bits(T base, T ins, uint offset, uint bits) {
  return __mb::map2(base, ins, [=](__mb::elem<T> b, __mb::elem<T> v) -> __mb::elem<T> {
    using E = __mb::elem<T>;
    unsigned long m = (bits >= 64 ? ~0ul : (1ul << bits) - 1) << offset;
    return (E)((__mb::ubits(b) & ~m) | ((__mb::ubits(v) << offset) & m));
  });
}
template <class T, __mb::req<__mb::is_int<T>> = 0> __MB_INL T mul24(T x, T y) {
  return __mb::map2(x, y, [](auto a, auto b) {
    using E = decltype(a);
    if constexpr (__mb::is_signed_int<E>) return (E)(((int)(a << 8) >> 8) * ((int)(b << 8) >> 8));
    else return (E)((a & 0xffffffu) * (b & 0xffffffu));
  });
}
template <class T, __mb::req<__mb::is_int<T>> = 0> __MB_INL T mad24(T x, T y, T z) {
  return mul24(x, y) + z;
}
template <class T, __mb::req<__mb::is_int<T>> = 0> __MB_INL T madhi(T a, T b, T c) {
  return mulhi(a, b) + c;
}
template <class T, __mb::req<__mb::is_int<T>> = 0> __MB_INL T madsat(T a, T b, T c) {
  return __mb::map3(a, b, c, [](auto x, auto y, auto z) {
    using E = decltype(x);
    __int128 r = (__int128)x * (__int128)y + (__int128)z;
    __int128 lo = (__int128)metal::numeric_limits<E>::min(), hi = (__int128)metal::numeric_limits<E>::max();
    return (E)(r < lo ? lo : r > hi ? hi : r);
  });
}

// frexp, ldexp, modf, sincos, ilogb (scalar and vector).
// The out-parameters take memory of any address space (their type is
// deduced apart, with its address space).
template <class T, class R, __mb::req<__mb::is_fp<T> && __mb::same<__mb::clean<R>, T>> = 0>
__MB_INL T modf(T x, R &ip) {
  T i = trunc(x);
  ip = i;
  return __mb::map2f(x, i, [](float v, float w) { return __builtin_isinf(v) ? 0.0f : v - w; });
}
template <class T, class R, __mb::req<__mb::is_fp<T> && __mb::same<__mb::clean<R>, T>> = 0>
__MB_INL T sincos(T x, R &c) {
  c = cos(x);
  return sin(x);
}
template <class T, class I, __mb::req<__mb::is_fp<T> && __mb::is_int<I>> = 0>
__MB_INL T ldexp(T x, I e) {
  if constexpr (__mb::is_vec<T>) {
    T r{};
    for (int i = 0; i < __mb::vt<T>::N; ++i) {
      int k;
      if constexpr (__mb::is_vec<I>) k = (int)e[i];
      else k = (int)e;
      r[i] = (__mb::elem<T>)__builtin_ldexpf((float)x[i], k);
    }
    return r;
  } else {
    return (T)__builtin_ldexpf((float)x, (int)e);
  }
}
template <class T, class I, __mb::req<__mb::is_fp<T> && __mb::is_int<__mb::clean<I>>> = 0>
__MB_INL T frexp(T x, I &e) {
  if constexpr (__mb::is_vec<T>) {
    T r{};
    for (int i = 0; i < __mb::vt<T>::N; ++i) {
      int k;
      r[i] = (__mb::elem<T>)__builtin_frexpf((float)x[i], &k);
      e[i] = k;
    }
    return r;
  } else {
    int k;
    T r = (T)__builtin_frexpf((float)x, &k);
    e = k;
    return r;
  }
}
template <class T, __mb::req<__mb::is_fp<T>> = 0> __MB_INL auto ilogb(T x) {
  if constexpr (__mb::is_vec<T>) {
    metal::vec<int, __mb::vt<T>::N> r{};
    for (int i = 0; i < __mb::vt<T>::N; ++i) r[i] = __builtin_ilogbf((float)x[i]);
    return r;
  } else {
    return __builtin_ilogbf((float)x);
  }
}
} // namespace __math

// Each function is also declared here by name (a using-declaration): a
// kernel that adds an overload in namespace metal (exp(bfloat), as MLX
// does) then overloads the shim's exp instead of hiding it from metal::exp.
#define __MB_MATH_NAMES(X) X(abs) X(absdiff) X(acos) X(acosh) X(addsat) X(all) X(any) X(asin)        \
  X(asinh) X(atan) X(atan2) X(atanh) X(ceil) X(clamp) X(clz) X(copysign) X(cos) X(cosh) X(cospi)     \
  X(cross) X(ctz) X(distance) X(distance_squared) X(divide) X(dot) X(exp) X(exp10) X(exp2)           \
  X(extract_bits) X(fabs) X(faceforward) X(fdim) X(floor) X(fma) X(fmax) X(fmax3) X(fmedian3)        \
  X(fmin) X(fmin3) X(fmod) X(fract) X(frexp) X(hadd) X(ilogb) X(insert_bits) X(isfinite) X(isinf)    \
  X(isnan) X(isnormal) X(isordered) X(isunordered) X(ldexp) X(length) X(length_squared) X(log)       \
  X(log10) X(log2) X(mad24) X(madhi) X(madsat) X(max) X(max3) X(median3) X(min) X(min3) X(mix)       \
  X(modf) X(mul24) X(mulhi) X(nextafter) X(normalize) X(popcount) X(pow) X(powr) X(reflect)          \
  X(refract) X(reverse_bits) X(rhadd) X(rint) X(rotate) X(round) X(rsqrt) X(saturate) X(select)      \
  X(sign) X(signbit) X(sin) X(sincos) X(sinh) X(sinpi) X(smoothstep) X(sqrt) X(step) X(subsat)       \
  X(tan) X(tanh) X(tanpi) X(trunc) X(vsel)
#define __MB_USING(n) using __math::n;
using namespace __math;
__MB_MATH_NAMES(__MB_USING)
namespace fast {
using namespace metal::__math;
__MB_MATH_NAMES(__MB_USING)
}
namespace precise {
using namespace metal::__math;
__MB_MATH_NAMES(__MB_USING)
}
#undef __MB_USING
} // namespace metal
