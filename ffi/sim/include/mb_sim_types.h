// MetalBench simulator shim: MSL keywords, attributes, scalar and vector
// types, type traits, limits and constants. Kernels are compiled as C++17 by
// clang with only this folder on the include path.
#pragma once

#include "mb_sim_abi.h"

// ---- address spaces and function qualifiers ------------------------------
// Kernels compile as C++ for OpenCL, whose address spaces are real type
// qualifiers (one flat space on the CPU underneath). `threadgroup` also
// carries an annotation so that clang's AST dump shows which kernel-scope
// declarations the compile step must move into the threadgroup's shared
// arena. `constant` is const too, as in MSL. The compile step writes member
// qualifiers and thread references generic (msl_source.cpp).
#define kernel __attribute__((annotate("mb", MB_MARK_KERNEL)))
#define device __global
#define thread __private
#define constant __constant const
#define threadgroup __local __attribute__((annotate("mb", MB_MARK_THREADGROUP)))

// ---- attributes ----------------------------------------------------------
// The compile step maps each MSL attribute name to __mb_a_<name> (by -D
// options, or by renaming it inside [[...]] where the source also uses the
// name otherwise). Each binding becomes clang::annotate("mb", kind, value),
// which the AST dump reports on the parameter; `kernel` and [[kernel]] mark
// the function.
#define __mb_a_buffer(n) clang::annotate("mb", MB_PARAM_BUFFER, n)
#define __mb_a_threadgroup(n) clang::annotate("mb", MB_PARAM_THREADGROUP, n)
#define __mb_a_texture(n) clang::annotate("mb", MB_PARAM_UNSUPPORTED, 1)
#define __mb_a_sampler(n) clang::annotate("mb", MB_PARAM_UNSUPPORTED, 2)
#define __mb_a_stage_in clang::annotate("mb", MB_PARAM_UNSUPPORTED, 3)
#define __mb_a_max_total_threads_per_threadgroup(n) clang::annotate("mb", MB_MARK_MAX_THREADS, n)
#define __mb_a_host_name(n) clang::annotate("mb", MB_MARK_HOST_NAME, n)
#define __mb_a_function_constant(n) clang::annotate("mb", MB_MARK_FUNCTION_CONSTANT, n)
#define __mb_a_kernel clang::annotate("mb", MB_MARK_KERNEL)
#define __MB_ATTR(id) clang::annotate("mb", MB_PARAM_ATTR, id)
#define __mb_a_thread_position_in_grid __MB_ATTR(MB_ATTR_THREAD_POSITION_IN_GRID)
#define __mb_a_thread_position_in_threadgroup __MB_ATTR(MB_ATTR_THREAD_POSITION_IN_THREADGROUP)
#define __mb_a_threadgroup_position_in_grid __MB_ATTR(MB_ATTR_THREADGROUP_POSITION_IN_GRID)
#define __mb_a_threads_per_threadgroup __MB_ATTR(MB_ATTR_THREADS_PER_THREADGROUP)
#define __mb_a_threads_per_grid __MB_ATTR(MB_ATTR_THREADS_PER_GRID)
#define __mb_a_threadgroups_per_grid __MB_ATTR(MB_ATTR_THREADGROUPS_PER_GRID)
#define __mb_a_thread_index_in_threadgroup __MB_ATTR(MB_ATTR_THREAD_INDEX_IN_THREADGROUP)
#define __mb_a_thread_index_in_simdgroup __MB_ATTR(MB_ATTR_THREAD_INDEX_IN_SIMDGROUP)
#define __mb_a_simdgroup_index_in_threadgroup __MB_ATTR(MB_ATTR_SIMDGROUP_INDEX_IN_THREADGROUP)
#define __mb_a_threads_per_simdgroup __MB_ATTR(MB_ATTR_THREADS_PER_SIMDGROUP)
#define __mb_a_thread_execution_width __MB_ATTR(MB_ATTR_THREADS_PER_SIMDGROUP)
#define __mb_a_simdgroups_per_threadgroup __MB_ATTR(MB_ATTR_SIMDGROUPS_PER_THREADGROUP)
#define __mb_a_dispatch_threads_per_threadgroup __MB_ATTR(MB_ATTR_DISPATCH_THREADS_PER_THREADGROUP)
#define __mb_a_dispatch_simdgroups_per_threadgroup                                                   \
  __MB_ATTR(MB_ATTR_DISPATCH_SIMDGROUPS_PER_THREADGROUP)
#define __mb_a_thread_index_in_quadgroup __MB_ATTR(MB_ATTR_THREAD_INDEX_IN_QUADGROUP)
#define __mb_a_quadgroup_index_in_threadgroup __MB_ATTR(MB_ATTR_QUADGROUP_INDEX_IN_THREADGROUP)
#define __mb_a_quadgroups_per_threadgroup __MB_ATTR(MB_ATTR_QUADGROUPS_PER_THREADGROUP)
#define __mb_a_grid_origin __MB_ATTR(MB_ATTR_GRID_ORIGIN)

// ---- scalar types ----------------------------------------------------------
typedef unsigned char uchar;
typedef unsigned short ushort;
typedef unsigned int uint;
typedef unsigned long ulong;
typedef __bf16 bfloat;
typedef __SIZE_TYPE__ size_t;
typedef __PTRDIFF_TYPE__ ptrdiff_t;
typedef __INTPTR_TYPE__ intptr_t;
typedef __UINTPTR_TYPE__ uintptr_t;
#define offsetof(type, member) __builtin_offsetof(type, member)
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long int64_t;
typedef unsigned long uint64_t;

// ---- vector types (clang ext_vector_type: swizzles, element access) ------
// boolN holds 0/1 in one byte per component, as in MSL. clang's vector
// comparisons yield -1 masks of the operands' width: the compile step wraps
// every vector comparison and logical operator in __mb::bvec, which turns
// the mask into a boolN (so uint4(a > b) is 1 where true, as in Metal).
#define __MB_VEC(T, name)                                                                            \
  typedef T name##2 __attribute__((ext_vector_type(2)));                                            \
  typedef T name##3 __attribute__((ext_vector_type(3)));                                            \
  typedef T name##4 __attribute__((ext_vector_type(4)));
__MB_VEC(char, char)
__MB_VEC(uchar, uchar)
__MB_VEC(short, short)
__MB_VEC(ushort, ushort)
__MB_VEC(int, int)
__MB_VEC(uint, uint)
__MB_VEC(long, long)
__MB_VEC(ulong, ulong)
__MB_VEC(half, half)
__MB_VEC(float, float)
__MB_VEC(bfloat, bfloat)
__MB_VEC(signed char, bool)
#undef __MB_VEC

// The shim's `metal` is ::metal; a kernel's own `namespace metal { ... }`
// (in the compile step's namespace __mbu) sees its names through
// mb_sim_kernel_ns.h.
namespace metal {
template <class T, int N> using vec = T __attribute__((ext_vector_type(N)));
} // namespace metal

// ---- internal traits -------------------------------------------------------
namespace __mb {
// A pointer into another address space. The CPU has one flat space, but C++
// for OpenCL refuses casts between named spaces: the shim, which hands out
// the memory behind each space, goes through the address.
template <class P, class Q> inline P addr_cast(Q *p) { return (P)(__UINTPTR_TYPE__)p; }
template <bool B, class T = int> struct enable_if {};
template <class T> struct enable_if<true, T> { using type = T; };
template <bool B, class T = int> using req = typename enable_if<B, T>::type;
template <class A, class B> constexpr bool same = __is_same(A, B);
template <bool B, class T, class F> struct cond { using type = T; };
template <class T, class F> struct cond<false, T, F> { using type = F; };
template <class T> struct rmref { using type = T; };
template <class T> struct rmref<T &> { using type = T; };
template <class T> struct rmref<T &&> { using type = T; };
template <class T> struct rmcv { using type = T; };
template <class T> struct rmcv<const T> { using type = T; };
template <class T> struct rmcv<volatile T> { using type = T; };
template <class T> struct rmcv<const volatile T> { using type = T; };
// The address space of an object's type (C++ for OpenCL spells MSL's
// device/threadgroup/constant/thread as __global/__local/__constant/__private).
template <class T> struct rmas { using type = T; };
template <class T> struct rmas<__global T> { using type = T; };
template <class T> struct rmas<__local T> { using type = T; };
template <class T> struct rmas<__constant T> { using type = T; };
template <class T> struct rmas<__private T> { using type = T; };
template <class T> struct rmas<__generic T> { using type = T; };
template <class T> using clean = typename rmcv<typename rmas<typename rmref<T>::type>::type>::type;

// vt<T>: element type and width of a scalar (N = 1) or ext vector.
template <class T> struct vt {
  using E = T;
  static constexpr int N = 1;
  static constexpr bool vec = false;
};
template <class T, int N_> struct vt<T __attribute__((ext_vector_type(N_)))> {
  using E = T;
  static constexpr int N = N_;
  static constexpr bool vec = true;
};
template <class T> using elem = typename vt<T>::E;
template <class T> constexpr bool is_vec = vt<T>::vec;

template <class T>
constexpr bool is_fp_scalar = same<T, float> || same<T, half> || same<T, bfloat> ||
                              same<T, double>;
template <class T>
constexpr bool is_int_scalar =
    same<T, bool> || same<T, char> || same<T, signed char> || same<T, unsigned char> ||
    same<T, short> || same<T, unsigned short> || same<T, int> || same<T, unsigned int> ||
    same<T, long> || same<T, unsigned long> || same<T, long long> || same<T, unsigned long long>;
template <class T> constexpr bool is_scalar = is_fp_scalar<T> || is_int_scalar<T>;
template <class T> constexpr bool is_fp = is_fp_scalar<elem<T>> && !same<elem<T>, double>;
template <class T> constexpr bool is_int = is_int_scalar<elem<T>> && !same<elem<T>, bool>;
template <class T> constexpr bool is_arith = is_fp<T> || is_int<T>;
template <class T> constexpr bool is_signed_int = elem<T>(-1) < elem<T>(0);

// MSL has no double: a double literal in an MSL expression acts as float.
template <class T> using nodouble = typename cond<same<T, double>, float, T>::type;

// The result type of a two-operand math function (scalars broadcast to the
// vector operand's type; no result when the operands do not fit together).
template <class A, class B, class = void> struct arith2 {};
template <class A, class B>
struct arith2<A, B, req<!is_vec<A> && !is_vec<B> && is_scalar<A> && is_scalar<B>, void>> {
  using type = typename cond<
      same<A, B>, nodouble<A>,
      typename cond<is_fp_scalar<A> || is_fp_scalar<B>,
                    typename cond<same<A, float> || same<B, float> || same<A, double> ||
                                      same<B, double>,
                                  float,
                                  typename cond<is_fp_scalar<A>, A, B>::type>::type,
                    decltype(A() + B())>::type>::type;
};
template <class A, class B> struct arith2<A, B, req<is_vec<A> && same<A, B>, void>> {
  using type = A;
};
template <class A, class B> struct arith2<A, B, req<is_vec<A> && is_scalar<B>, void>> {
  using type = A;
};
template <class A, class B> struct arith2<A, B, req<is_scalar<A> && is_vec<B>, void>> {
  using type = B;
};
template <class A, class B> using arith2_t = typename arith2<clean<A>, clean<B>>::type;
} // namespace __mb

// ---- the compile step's rewrites --------------------------------------------
namespace __mb {
// A comparison or logical operator's result: a mask vector becomes boolN
// (0/1 per component); a scalar stays as it is.
template <class T> __attribute__((always_inline)) constexpr auto bvec(T x) {
  if constexpr (is_vec<T>) {
    using B = signed char __attribute__((ext_vector_type(vt<T>::N)));
    return __builtin_convertvector(x != (elem<T>)0, B) & (B)1;
  } else {
    return x;
  }
}
// A vector conversion, component by component as MSL defines it: float to
// integer saturates as on Apple GPUs (NaN -> 0; scalar casts compile to
// saturating conversions, __builtin_convertvector would wrap on x86), and
// half <-> bfloat goes through float (clang refuses it directly).
template <class V, class S> __attribute__((always_inline)) constexpr V convert(S x) {
  using To = elem<V>;
  using From = elem<S>;
  if constexpr ((is_fp_scalar<From> && !is_fp_scalar<To>) ||
                (same<From, half> && same<To, bfloat>) || (same<From, bfloat> && same<To, half>)) {
    V r{};
    for (int i = 0; i < vt<V>::N; ++i) r[i] = (To)(float)x[i];
    return r;
  } else {
    return __builtin_convertvector(x, V);
  }
}
// p += x and p -= x as the compile step writes them in templates: a class
// operand (an integral_constant) converted first, which C++ for OpenCL
// misses for a pointer into an address space; anything else unchanged.
template <class A, class B> __attribute__((always_inline)) inline A &step_by(A &a, B b, int sign) {
  if constexpr (__is_pointer(A) && __is_class(B)) {
    const long n = static_cast<long>(b);
    return a = sign > 0 ? a + n : a - n;
  } else {
    return sign > 0 ? (a += b) : (a -= b);
  }
}
// A function pointer type as a template parameter's: a reference to the
// function type instead (see the compile step), called the same way.
template <class P> using fn_ref = __remove_pointer(P) &;
// reinterpret_cast as MSL has it: across address spaces too (through the
// address; the CPU has one flat space).
template <class T, class U> __attribute__((always_inline)) inline T reinterp(U &&x) {
  if constexpr (__is_pointer(T)) return (T)(__UINTPTR_TYPE__)x;
  else if constexpr (__is_reference(T))
    return *(typename rmref<T>::type *)(__UINTPTR_TYPE__)&x;
  else return reinterpret_cast<T>(x);
}
// A copy of a struct in constant memory (the compile step writes it where
// MSL copies one: C++ for OpenCL's implicit copy constructor and assignment
// take no __constant object). Its bytes, as a copy of a GPU struct is.
template <class T> __attribute__((always_inline)) constexpr T from_constant(const __constant T &x) {
  return __builtin_bit_cast(T, x);
}
// A C-style cast (T)x: between vector types of different element types MSL
// converts each component (clang would reinterpret the bits); every other
// cast keeps its C++ meaning.
template <class T, class U> __attribute__((always_inline)) constexpr T vcast(U &&x) {
  using S = clean<U>;
  if constexpr (is_vec<T> && is_vec<S> && !same<elem<T>, elem<S>>) {
    static_assert(vt<T>::N == vt<S>::N, "a vector cast needs the same number of components");
    return convert<T>(S(x));
  } else {
    return (T) static_cast<U &&>(x);
  }
}
} // namespace __mb

// ---- metal type traits (the commonly used part of metal_type_traits) ------
namespace metal {
template <bool B, class T = void> struct enable_if {};
template <class T> struct enable_if<true, T> { using type = T; };
template <bool B, class T = void> using enable_if_t = typename enable_if<B, T>::type;
template <bool B, class T, class F> using conditional = __mb::cond<B, T, F>;
template <bool B, class T, class F> using conditional_t = typename __mb::cond<B, T, F>::type;
template <class T, T v> struct integral_constant {
  static constexpr T value = v;
  constexpr operator T() const { return v; }
};
using true_type = integral_constant<bool, true>;
using false_type = integral_constant<bool, false>;
template <class A, class B> struct is_same : integral_constant<bool, __is_same(A, B)> {};
template <class A, class B> constexpr bool is_same_v = __is_same(A, B);
template <class T> struct is_floating_point : integral_constant<bool, __mb::is_fp_scalar<T>> {};
template <class T> constexpr bool is_floating_point_v = __mb::is_fp_scalar<T>;
template <class T> struct is_integral : integral_constant<bool, __mb::is_int_scalar<T>> {};
template <class T> constexpr bool is_integral_v = __mb::is_int_scalar<T>;
template <class T> struct is_arithmetic : integral_constant<bool, __mb::is_scalar<T>> {};
template <class T> constexpr bool is_arithmetic_v = __mb::is_scalar<T>;
template <class T> struct is_scalar : integral_constant<bool, __mb::is_scalar<T>> {};
template <class T> constexpr bool is_scalar_v = __mb::is_scalar<T>;
template <class T> struct is_vector : integral_constant<bool, __mb::is_vec<T>> {};
template <class T> constexpr bool is_vector_v = __mb::is_vec<T>;
template <class T> struct is_signed : integral_constant<bool, (T(-1) < T(0))> {};
template <class T> constexpr bool is_signed_v = T(-1) < T(0);
template <class T> struct is_unsigned : integral_constant<bool, !(T(-1) < T(0))> {};
template <class T> constexpr bool is_unsigned_v = !(T(-1) < T(0));
template <class T> struct remove_cv : __mb::rmcv<T> {};
template <class T> using remove_cv_t = typename __mb::rmcv<T>::type;
template <class T> struct remove_reference : __mb::rmref<T> {};
template <class T> using remove_reference_t = typename __mb::rmref<T>::type;
template <class T> struct vec_elements : integral_constant<int, __mb::vt<T>::N> {};
template <class T> struct make_scalar {
  using type = __mb::elem<T>;
};
template <class T> using make_scalar_t = __mb::elem<T>;

// metal::array (metal_array): a fixed-size array with size() and [].
template <class T, size_t N> struct array {
  T __elems[N ? N : 1];
  constexpr size_t size() const { return N; }
  T &operator[](size_t i) { return __elems[i]; }
  constexpr const T &operator[](size_t i) const { return __elems[i]; }
};
} // namespace metal

// ---- limits and constants ----------------------------------------------
namespace metal {
template <class T> struct numeric_limits {
  static constexpr bool is_specialized = false;
};
#define __MB_LIMITS_INT(T, MIN, MAX, DIG)                                                            \
  template <> struct numeric_limits<T> {                                                             \
    static constexpr bool is_specialized = true;                                                     \
    static constexpr bool is_signed = (T)(-1) < (T)(0);                                                  \
    static constexpr bool is_integer = true;                                                         \
    static constexpr bool has_infinity = false;                                                      \
    static constexpr bool has_quiet_NaN = false;                                                     \
    static constexpr int digits = DIG;                                                               \
    static constexpr T min() { return MIN; }                                                         \
    static constexpr T lowest() { return MIN; }                                                      \
    static constexpr T max() { return MAX; }                                                         \
    static constexpr T epsilon() { return 0; }                                                       \
  };
__MB_LIMITS_INT(bool, false, true, 1)
__MB_LIMITS_INT(char, -128, 127, 7)
__MB_LIMITS_INT(signed char, -128, 127, 7)
__MB_LIMITS_INT(uchar, 0, 255, 8)
__MB_LIMITS_INT(short, -32768, 32767, 15)
__MB_LIMITS_INT(ushort, 0, 65535, 16)
__MB_LIMITS_INT(int, -2147483647 - 1, 2147483647, 31)
__MB_LIMITS_INT(uint, 0, 4294967295u, 32)
__MB_LIMITS_INT(long, -9223372036854775807L - 1, 9223372036854775807L, 63)
__MB_LIMITS_INT(ulong, 0, 18446744073709551615ul, 64)
#undef __MB_LIMITS_INT
#define __MB_LIMITS_FP(T, MIN, LOWEST, MAX, EPS, DIG)                                               \
  template <> struct numeric_limits<T> {                                                             \
    static constexpr bool is_specialized = true;                                                     \
    static constexpr bool is_signed = true;                                                          \
    static constexpr bool is_integer = false;                                                        \
    static constexpr bool has_infinity = true;                                                       \
    static constexpr bool has_quiet_NaN = true;                                                      \
    static constexpr int digits = DIG;                                                               \
    static constexpr T min() { return MIN; }                                                         \
    static constexpr T lowest() { return LOWEST; }                                                   \
    static constexpr T max() { return MAX; }                                                         \
    static constexpr T epsilon() { return EPS; }                                                     \
    static constexpr T infinity() { return T(__builtin_inff()); }                                    \
    static constexpr T quiet_NaN() { return T(__builtin_nanf("")); }                                 \
    static constexpr T signaling_NaN() { return T(__builtin_nansf("")); }                            \
    static constexpr T denorm_min() { return __builtin_bit_cast(T, (__MB_UINT_OF_##T)1); }           \
  };
#define __MB_UINT_OF_float uint
#define __MB_UINT_OF_half ushort
#define __MB_UINT_OF_bfloat ushort
__MB_LIMITS_FP(float, 0x1p-126f, -0x1.fffffep127f, 0x1.fffffep127f, 0x1p-23f, 24)
__MB_LIMITS_FP(half, half(0x1p-14f), half(-65504.0f), half(65504.0f), half(0x1p-10f), 11)
__MB_LIMITS_FP(bfloat, bfloat(0x1p-126f), bfloat(-0x1.fep127f), bfloat(0x1.fep127f),
               bfloat(0x1p-7f), 8)
#undef __MB_LIMITS_FP
} // namespace metal

#define MAXFLOAT 0x1.fffffep127f
#define HUGE_VALF __builtin_huge_valf()
#define INFINITY __builtin_inff()
#define NAN __builtin_nanf("")
#define FLT_DIG 6
#define FLT_MANT_DIG 24
#define FLT_MAX 0x1.fffffep127f
#define FLT_MIN 0x1p-126f
#define FLT_EPSILON 0x1p-23f
#define FLT_MAX_EXP 128
#define FLT_MIN_EXP -125
#define HALF_MAX ((half)65504.0f)
#define HALF_MIN ((half)0x1p-14f)
#define HALF_EPSILON ((half)0x1p-10f)
#define MAXHALF HALF_MAX
#define HUGE_VALH ((half)__builtin_inff())
#define CHAR_BIT 8
#define SCHAR_MAX 127
#define SCHAR_MIN (-128)
#define UCHAR_MAX 255
#define CHAR_MAX SCHAR_MAX
#define CHAR_MIN SCHAR_MIN
#define SHRT_MAX 32767
#define SHRT_MIN (-32768)
#define USHRT_MAX 65535
#define INT_MAX 2147483647
#define INT_MIN (-2147483647 - 1)
#define UINT_MAX 4294967295u
#define LONG_MAX 9223372036854775807L
#define LONG_MIN (-9223372036854775807L - 1)
#define ULONG_MAX 18446744073709551615ul
#define M_E_F 2.71828182845904523536f
#define M_LOG2E_F 1.44269504088896340736f
#define M_LOG10E_F 0.434294481903251827651f
#define M_LN2_F 0.693147180559945309417f
#define M_LN10_F 2.30258509299404568402f
#define M_PI_F 3.14159265358979323846f
#define M_PI_2_F 1.57079632679489661923f
#define M_PI_4_F 0.785398163397448309616f
#define M_1_PI_F 0.318309886183790671538f
#define M_2_PI_F 0.636619772367581343076f
#define M_2_SQRTPI_F 1.12837916709551257390f
#define M_SQRT2_F 1.41421356237309504880f
#define M_SQRT1_2_F 0.707106781186547524401f
#define M_E_H ((half)M_E_F)
#define M_LOG2E_H ((half)M_LOG2E_F)
#define M_LOG10E_H ((half)M_LOG10E_F)
#define M_LN2_H ((half)M_LN2_F)
#define M_LN10_H ((half)M_LN10_F)
#define M_PI_H ((half)M_PI_F)
#define M_PI_2_H ((half)M_PI_2_F)
#define M_PI_4_H ((half)M_PI_4_F)
#define M_1_PI_H ((half)M_1_PI_F)
#define M_2_PI_H ((half)M_2_PI_F)
#define M_2_SQRTPI_H ((half)M_2_SQRTPI_F)
#define M_SQRT2_H ((half)M_SQRT2_F)
#define M_SQRT1_2_H ((half)M_SQRT1_2_F)

// as_type<T>(x): reinterpret the bits (same size required, as in MSL).
namespace metal {
template <class T, class U> __attribute__((always_inline)) inline T as_type(U x) {
  static_assert(sizeof(T) == sizeof(U), "as_type<T>(x) needs sizeof(T) == sizeof(x)");
  return __builtin_bit_cast(T, x);
}
} // namespace metal
