// MetalBench simulator shim: the macros Apple's Metal compiler predefines and
// the __metal_* compiler builtins that real code (MLX's bf16_math.h) calls
// directly. Each builtin does what the stdlib function of the same name does;
// the trailing fast-math flag is accepted and ignored, as the simulator's
// metal::fast and metal::precise functions are the same precise ones.
#pragma once

// __METAL_VERSION__, __METAL__ and __HAVE_BFLOAT__ come from the compile step
// (the language version it was asked for).
#define __METAL_MACOS__ 1
#define METAL_FUNC inline __attribute__((__always_inline__))
#define METAL_INTERNAL inline __attribute__((__always_inline__))
// coherent(system) / coherent(device): memory coherent across the system;
// the simulator has one memory and runs the dispatch to its end, so it holds.
#define coherent(scope)
#define __METAL_FAST_MATH__ true
#define __METAL_PRECISE_MATH__ false
// What plain metal:: math is: precise on the simulator (Apple's default,
// fast math, may differ within its documented ulp bounds).
#define __METAL_MAYBE_FAST_MATH__ __METAL_PRECISE_MATH__

#define __MB_B1(name)                                                                                \
  template <class T> __MB_INL auto __metal_##name(T x, bool = false) { return ::metal::name(x); }
#define __MB_B2(name)                                                                                \
  template <class T, class U> __MB_INL auto __metal_##name(T x, U y, bool = false) {                 \
    return ::metal::name(x, y);                                                                      \
  }
#define __MB_B3(name)                                                                                \
  template <class T, class U, class V> __MB_INL auto __metal_##name(T x, U y, V z, bool = false) {   \
    return ::metal::name(x, y, z);                                                                   \
  }
__MB_B1(acos) __MB_B1(acosh) __MB_B1(asin) __MB_B1(asinh) __MB_B1(atan) __MB_B1(atanh)
__MB_B1(ceil) __MB_B1(cos) __MB_B1(cosh) __MB_B1(cospi) __MB_B1(exp) __MB_B1(exp10)
__MB_B1(exp2) __MB_B1(fabs) __MB_B1(floor) __MB_B1(fract) __MB_B1(log) __MB_B1(log10)
__MB_B1(log2) __MB_B1(rint) __MB_B1(round) __MB_B1(rsqrt) __MB_B1(sin) __MB_B1(sinh)
__MB_B1(sinpi) __MB_B1(sqrt) __MB_B1(tan) __MB_B1(tanh) __MB_B1(tanpi) __MB_B1(trunc)
__MB_B2(atan2) __MB_B2(divide) __MB_B2(fmax) __MB_B2(fmin) __MB_B2(fmod) __MB_B2(nextafter)
__MB_B2(pow) __MB_B2(powr)
__MB_B3(fma) __MB_B3(fmax3) __MB_B3(fmin3) __MB_B3(fmedian3)
#undef __MB_B1
#undef __MB_B2
#undef __MB_B3
template <class T, class I> __MB_INL auto __metal_ldexp(T x, I k, bool = false) {
  return ::metal::ldexp(x, k);
}
template <class T> __MB_INL auto __metal_frexp(T x, int *e) { return ::metal::frexp(x, *e); }

// The SIMD-group builtins: macros, so that the call site the simulator
// reports (divergence, races) is the kernel's own line.
#define __metal_get_simdgroup_size(t) ((decltype(t))MB_SIM_SIMD_WIDTH)
#define __metal_get_thread_index_in_simdgroup(t)                                                     \
  ((decltype(t))(::__mb::rt()->thread_index() % MB_SIM_SIMD_WIDTH))
#define __metal_simd_broadcast(...) ::metal::simd_broadcast(__VA_ARGS__)
#define __metal_simd_shuffle(...) ::metal::simd_shuffle(__VA_ARGS__)
#define __metal_simd_shuffle_and_fill_down(...) ::metal::simd_shuffle_and_fill_down(__VA_ARGS__)
#define __metal_simd_shuffle_and_fill_up(...) ::metal::simd_shuffle_and_fill_up(__VA_ARGS__)
#define __metal_simd_shuffle_down(...) ::metal::simd_shuffle_down(__VA_ARGS__)
#define __metal_simd_shuffle_up(...) ::metal::simd_shuffle_up(__VA_ARGS__)
#define __metal_simd_shuffle_rotate_down(...) ::metal::simd_shuffle_rotate_down(__VA_ARGS__)
#define __metal_simd_shuffle_rotate_up(...) ::metal::simd_shuffle_rotate_up(__VA_ARGS__)
#define __metal_simd_shuffle_xor(...) ::metal::simd_shuffle_xor(__VA_ARGS__)
#define __metal_simd_sum(...) ::metal::simd_sum(__VA_ARGS__)
#define __metal_simd_product(...) ::metal::simd_product(__VA_ARGS__)
#define __metal_simd_max(...) ::metal::simd_max(__VA_ARGS__)
#define __metal_simd_min(...) ::metal::simd_min(__VA_ARGS__)
#define __metal_simd_and(...) ::metal::simd_and(__VA_ARGS__)
#define __metal_simd_or(...) ::metal::simd_or(__VA_ARGS__)
#define __metal_simd_prefix_inclusive_sum(...) ::metal::simd_prefix_inclusive_sum(__VA_ARGS__)
#define __metal_simd_prefix_exclusive_sum(...) ::metal::simd_prefix_exclusive_sum(__VA_ARGS__)
#define __metal_simd_prefix_inclusive_product(...)                                                   \
  ::metal::simd_prefix_inclusive_product(__VA_ARGS__)
#define __metal_simd_prefix_exclusive_product(...)                                                   \
  ::metal::simd_prefix_exclusive_product(__VA_ARGS__)

// __metal_simd_xor also takes floating-point values (MLX's bfloat simd_xor
// passes a float): the xor of their bit patterns, as for the integers of the
// same size.
namespace __mb {
template <class T> struct same_size_uint;
template <> struct same_size_uint<float> { using type = uint; };
template <> struct same_size_uint<half> { using type = ushort; };
template <> struct same_size_uint<bfloat> { using type = ushort; };
template <class T, __mb::req<__mb::is_int<T>> = 0>
__MB_INL T metal_simd_xor(T x, __MB_SITE_PARAMS) { return ::metal::simd_xor(x, __MB_SITE); }
template <class T, __mb::req<__mb::is_fp_scalar<T>> = 0>
__MB_INL T metal_simd_xor(T x, __MB_SITE_PARAMS) {
  using U = typename same_size_uint<T>::type;
  return __builtin_bit_cast(T, ::metal::simd_xor(__builtin_bit_cast(U, x), __MB_SITE));
}
} // namespace __mb
#define __metal_simd_xor(...) ::__mb::metal_simd_xor(__VA_ARGS__)
