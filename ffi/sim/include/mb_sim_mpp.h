// MetalBench simulator shim: the part of Metal Performance Primitives
// (Metal 4 tensor ops) that MLX's *_nax kernels use — matmul2d on one SIMD
// group with cooperative tensors — and a one-line refusal for the rest.
//
// Included only from <MetalPerformancePrimitives/MetalPerformancePrimitives.h>,
// which a kernel includes inside the compile step's namespace __mbu: every
// name here lands there (mpp::..., and metal::execution_simdgroup in
// __mbu::metal, the namespace a kernel's `metal::` names). metal_stdlib is
// in already (the compile step includes it first). The kernel's own macros
// are defined by now: every name of ours is a reserved one.
//
// What is simulated:
//   matmul2d_descriptor(16, 32, 16, transpose_left, transpose_right,
//                       relaxed_precision, mode::multiply | multiply_accumulate)
//   matmul2d<desc, metal::execution_simdgroup>
//     .get_left_input_cooperative_tensor<A, B, C>()      8 elements a lane
//     .get_right_input_cooperative_tensor<A, B, C>()    16 elements a lane
//     .get_destination_cooperative_tensor<decltype(left), decltype(right), C>()
//                                                       16 elements a lane
//     .run(left, right, destination)   D = op(A)·op(B) [+ D], a SIMD-group
//                                      collective: every lane takes part
//   ct[i], ct.get_capacity(), ct.is_valid_element(i)
// for the float/half/bfloat type combinations of Apple's table.
//
// The element-to-(row, column) layout of these cooperative tensors is the
// hardware's, and Apple does not document it. The one used here is the one
// MLX's NAX kernels rely on (BaseNAXFrag::get_coord in MLX's
// steel/gemm/nax.h), taken as a fact: a tensor is made of 16x16 fragments;
// in a fragment, lane l's element j (0..7) is at
//   row = ((l/4 & 4) | (l/2 & 3)) + (j/4)*8,   col = ((l/4 & 2) | (l & 1))*4 + j%4
// of the matrix as stored (before transpose_left/right), and element 8f + j
// of a tensor is element j of its fragment f, the fragments following one
// another along N (the 16x32 destination: columns 16f..; the right input:
// columns 16f.. of K x N, or rows 16f.. of N x K when transposed). The
// layout of other shapes is not known: they are refused, not guessed.
//
// The product is exact per element and in a fixed order: inputs converted
// to float, D(m, n) = an fma chain over k = 0..15 starting from the old D
// (or -0 for multiply), rounded once to the destination type.
// relaxed_precision uses the same math.
#pragma once

namespace __mb_mpp {
// The element type as written, without reference, const/volatile or
// address space (the shim's own helpers have names a kernel macro may hide).
template <class __T> struct __bare { using __type = __T; };
template <class __T> struct __bare<__T &> : __bare<__T> {};
template <class __T> struct __bare<__T &&> : __bare<__T> {};
template <class __T> struct __bare<const __T> : __bare<__T> {};
template <class __T> struct __bare<volatile __T> : __bare<__T> {};
template <class __T> struct __bare<const volatile __T> : __bare<__T> {};
template <class __T> struct __bare<__global __T> : __bare<__T> {};
template <class __T> struct __bare<__local __T> : __bare<__T> {};
template <class __T> struct __bare<__constant __T> : __bare<__T> {};
template <class __T> struct __bare<__private __T> : __bare<__T> {};
template <class __T> struct __bare<__generic __T> : __bare<__T> {};
template <class __T> using __clean = typename __bare<__T>::__type;
template <class __A, class __B> constexpr bool __same = __is_same(__A, __B);

// C++17 has no class-type template parameters: matmul2d<desc, ...> takes
// the descriptor converted to this code (M, N, K in 16 bits each, flags).
enum class __desc_code : unsigned long {};
constexpr unsigned long __dim16(int __v) {
  return __v >= 0 && __v < 0xFFFF ? (unsigned long)__v : 0xFFFFul;
}

enum __role { __LEFT, __RIGHT, __DEST };

// The float/half/bfloat rows of Apple's table of matmul2d type combinations
// (left, right, destination).
template <class __A, class __B, class __C> constexpr bool __fp_combo() {
  constexpr bool __af = __same<__A, float>, __bf = __same<__B, float>;
  constexpr bool __ah = __same<__A, half>, __bh = __same<__B, half>;
  constexpr bool __ab = __same<__A, bfloat>, __bb = __same<__B, bfloat>;
  if (!(__af || __ah || __ab) || !(__bf || __bh || __bb)) return false;
  if (__same<__C, float>) return true;
  if (__same<__C, half>) return (__ah && __bh) || (__ab && __bh) || (__ah && __bb);
  if (__same<__C, bfloat>) return (__ab && __bb) || (__ab && __bh) || (__ah && __bb);
  return false;
}
template <class __A, class __B, class __C>
constexpr bool __int8 = __same<__A, int8_t> || __same<__B, int8_t> || __same<__C, int>;

template <class __E> __MB_INL __E __poison() {
  if constexpr (sizeof(__E) == 2) return __builtin_bit_cast(__E, (unsigned short)0xFFFF);
  else return __builtin_bit_cast(__E, 0xFFFFFFFFu);
}

struct __pos {
  int __row, __col;
};
// Where a lane's element j (0..7) of a fragment is: the layout MLX's
// BaseNAXFrag::get_coord encodes (see the top of this file).
constexpr __pos __frag16(unsigned __lane, int __j) {
  int __q = (int)(__lane >> 2);
  return {((__q & 4) | (int)((__lane >> 1) & 3)) + (__j >> 2) * 8,
          ((__q & 2) | (int)(__lane & 1)) * 4 + (__j & 3)};
}
} // namespace __mb_mpp

// Refusals are attributes, so that the error is one line at the kernel's
// own use: unavailable(...) for what is not simulated at all, diagnose_if
// for a call the simulator cannot run as written. diagnose_if says
// "warning", made an error here: an "error" one leaves the call invalid in
// the AST that the compile step reads and rewrites, and the message could
// be lost. Should a kernel silence the warning, the calls refuse at run time.
#pragma clang diagnostic error "-Wuser-defined-warnings"
#define __MB_MPP_NO(__what, __fix)                                                                 \
  __attribute__((unavailable(__what " is not simulated — fix: " __fix)))
#define __MB_MPP_IF(__cond, __msg) __attribute__((diagnose_if(__cond, __msg, "warning")))
#define __MB_MPP_TENSORS                                                                           \
  "keep matmul2d's operands in cooperative tensors filled with ct[i], or run the kernel on a Mac"

namespace metal {
// Execution scopes of Metal 4's tensor ops. One SIMD group is simulated.
struct execution_simdgroup {};
template <int __N> struct execution_simdgroups {};
struct execution_thread {};
using execution_threadgroup = execution_simdgroups<0>;

// Metal 4 tensors: naming one refuses the kernel.
struct __MB_MPP_NO("metal::tensor_inline (Metal 4 tensors)", __MB_MPP_TENSORS) tensor_inline {};
struct __MB_MPP_NO("metal::tensor_handle (Metal 4 tensors)", __MB_MPP_TENSORS) tensor_handle {};
struct __MB_MPP_NO("metal::tensor_offset (Metal 4 tensors)", __MB_MPP_TENSORS) tensor_offset {};
template <class __I, unsigned long... __E>
struct __MB_MPP_NO("metal::extents (Metal 4 tensors)", __MB_MPP_TENSORS) extents {
  template <class... __X> extents(__X &&...) {}
};
template <class __I, unsigned long __R>
struct __MB_MPP_NO("metal::dextents (Metal 4 tensors)", __MB_MPP_TENSORS) dextents {
  template <class... __X> dextents(__X &&...) {}
};
template <class... __A>
struct __MB_MPP_NO("metal::tensor (Metal 4 tensors)", __MB_MPP_TENSORS) tensor {
  template <class... __X> tensor(__X &&...) {}
};
} // namespace metal

namespace __mb_mpp {
#define __MB_MPP_RANGE                                                                             \
  __MB_MPP_IF(__i < 0 || __i >= __capacity,                                                        \
              "cooperative tensor index out of range (see get_capacity())")

// A cooperative tensor of matmul2d __D: this lane's part of it.
template <class __E, int __Role, __desc_code __D> struct __cooperative_tensor {
  static constexpr int __capacity = __Role == __LEFT ? 8 : 16;
  __E __e[__capacity];

  __MB_INL __cooperative_tensor() {
    for (int __i = 0; __i < __capacity; ++__i) __e[__i] = __poison<__E>(); // unset shows as NaN
  }
  // An index past the lane's elements faults (SIGILL) rather than touching
  // the next variable on the stack; a constant one does not compile.
  __MB_INL __E &operator[](int __i) __MB_MPP_RANGE {
    if ((unsigned)__i >= (unsigned)__capacity) __builtin_trap();
    return __e[__i];
  }
  __MB_INL const __E &operator[](int __i) const __MB_MPP_RANGE {
    if ((unsigned)__i >= (unsigned)__capacity) __builtin_trap();
    return __e[__i];
  }
  static constexpr int get_capacity() { return __capacity; }
  static constexpr bool is_valid_element(int __i) { return __i >= 0 && __i < __capacity; }

  template <class... __A, class... __Args>
  __MB_MPP_NO("cooperative_tensor::load (from a Metal 4 tensor)",
              "fill it with ct[i] = ..., as MLX's NAX kernels do")
  void load(__Args &&...) {}
  template <class... __A, class... __Args>
  __MB_MPP_NO("cooperative_tensor::store (to a Metal 4 tensor)",
              "read it with ct[i], as MLX's NAX kernels do")
  void store(__Args &&...) const {}
  template <class... __A, class... __Args>
  __MB_MPP_NO("cooperative_tensor::get_multidimensional_index",
              "compute the element's place from the lane (MLX's BaseNAXFrag::get_coord layout)")
  void get_multidimensional_index(__Args &&...) const {}
};
#undef __MB_MPP_RANGE

template <class __T> struct __ct_info {
  static constexpr int __role = -1;
  static constexpr __desc_code __desc{};
  using __elem = void;
};
template <class __E, int __R, __desc_code __D>
struct __ct_info<__cooperative_tensor<__E, __R, __D>> {
  static constexpr int __role = __R;
  static constexpr __desc_code __desc = __D;
  using __elem = __E;
};
template <class __T> using __info = __ct_info<__clean<__T>>;

// What a lane hands to the collective: where its operands are.
template <class __A, class __B, class __C> struct __run_in {
  const __A *__a;
  const __B *__b;
  __C *__c;
};

// op(A)·op(B) [+ C] for the whole SIMD group: gathers every lane's elements
// by the layout, computes in float (fma in k order), scatters the result to
// each lane's destination. A lane not taking part contributes NaN (Metal
// requires all 32).
template <class __A, class __B, class __C, bool __TL, bool __TR, bool __ACC>
void __c_matmul(mb_simd_slot *const *__lanes, unsigned) {
  using __In = __run_in<__A, __B, __C>;
  float __a[16][16], __b[16][32], __c[16][32];
  const float __nan = __builtin_nanf("");
  for (unsigned __l = 0; __l < MB_SIM_SIMD_WIDTH; ++__l) {
    mb_simd_slot *__s = __lanes[__l];
    if (__s && __s->combine != &__c_matmul<__A, __B, __C, __TL, __TR, __ACC>)
      __builtin_trap(); // lanes of different matmul2d types met at one call site
    __In __in{};
    if (__s) __builtin_memcpy(&__in, __s->in, sizeof __in);
    for (int __i = 0; __i < 16; ++__i) {
      __pos __p = __frag16(__l, __i % 8);
      int __f = 16 * (__i / 8);
      if (__i < 8) { // left: one M x K fragment (K x M stored when transposed)
        float __v = __s ? (float)__in.__a[__i] : __nan;
        if (__TL) __a[__p.__col][__p.__row] = __v;
        else __a[__p.__row][__p.__col] = __v;
      }
      // right: K x N as two fragments side by side, or N x K stacked
      float __v = __s ? (float)__in.__b[__i] : __nan;
      if (__TR) __b[__p.__col][__p.__row + __f] = __v;
      else __b[__p.__row][__p.__col + __f] = __v;
      __c[__p.__row][__p.__col + __f] = !__ACC ? -0.0f : __s ? (float)__in.__c[__i] : __nan;
    }
  }
  for (unsigned __l = 0; __l < MB_SIM_SIMD_WIDTH; ++__l) {
    if (!__lanes[__l]) continue;
    __In __in;
    __builtin_memcpy(&__in, __lanes[__l]->in, sizeof __in);
    for (int __i = 0; __i < 16; ++__i) {
      __pos __p = __frag16(__l, __i % 8);
      int __m = __p.__row, __n = __p.__col + 16 * (__i / 8);
      float __sum = __c[__m][__n];
      for (int __k = 0; __k < 16; ++__k)
        __sum = __builtin_fmaf(__a[__m][__k], __b[__k][__n], __sum);
      __in.__c[__i] = (__C)__sum;
    }
  }
}
} // namespace __mb_mpp

namespace mpp {
namespace tensor_ops {
struct matmul2d_descriptor {
  enum class mode { multiply, multiply_accumulate };
  int m, n, k;
  bool transpose_left, transpose_right, relaxed_precision;
  mode matmul_mode;

  constexpr matmul2d_descriptor(int __m, int __n, int __k = -1, bool __transpose_left = false,
                                bool __transpose_right = false, bool __relaxed_precision = false,
                                mode __matmul_mode = mode::multiply)
      : m(__m), n(__n), k(__k), transpose_left(__transpose_left),
        transpose_right(__transpose_right), relaxed_precision(__relaxed_precision),
        matmul_mode(__matmul_mode) {}
  constexpr operator __mb_mpp::__desc_code() const {
    return (__mb_mpp::__desc_code)(
        __mb_mpp::__dim16(m) | __mb_mpp::__dim16(n) << 16 | __mb_mpp::__dim16(k) << 32 |
        (unsigned long)transpose_left << 48 | (unsigned long)transpose_right << 49 |
        (unsigned long)relaxed_precision << 50 |
        (unsigned long)(matmul_mode == mode::multiply_accumulate) << 51);
  }
};

// What every member checks first: the op is one the simulator can run; then
// the element types.
#define __MB_MPP_OP                                                                                \
  __MB_MPP_IF(!__scope_ok, "matmul2d: only metal::execution_simdgroup is simulated (not "          \
                           "execution_simdgroups<N> or execution_thread) — fix: run it per SIMD "  \
                           "group, or run the kernel on a Mac")                                    \
  __MB_MPP_IF(__scope_ok && !__shape_ok,                                                           \
              "matmul2d: the simulator knows the cooperative-tensor lane layout only of "          \
              "matmul2d_descriptor(16, 32, 16, ...) (MLX's NAX shape) — fix: tile the product "    \
              "into 16x32x16 steps, or run the kernel on a Mac")
#define __MB_MPP_TYPES(...)                                                                        \
  __MB_MPP_IF((__int8_bad<__VA_ARGS__>),                                                           \
              "matmul2d with int8_t operands is not simulated — fix: use half, bfloat or float "   \
              "operands, or run the kernel on a Mac")                                              \
  __MB_MPP_IF((__combo_bad<__VA_ARGS__>),                                                          \
              "matmul2d: this (left, right, destination) element type combination is not one "    \
              "Metal supports — fix: see the table in MPPTensorOpsMatMul2d.h (e.g. half, half, "   \
              "float)")
#define __MB_MPP_ROLES(__L, __R, __Dst)                                                            \
  (__mb_mpp::__info<__L>::__role == __mb_mpp::__LEFT &&                                            \
   __mb_mpp::__info<__R>::__role == __mb_mpp::__RIGHT &&                                           \
   __mb_mpp::__info<__Dst>::__role == __mb_mpp::__DEST)
#define __MB_MPP_SAME_OP(__L, __R, __Dst)                                                          \
  (__mb_mpp::__info<__L>::__desc == __D && __mb_mpp::__info<__R>::__desc == __D &&                 \
   __mb_mpp::__info<__Dst>::__desc == __D)

template <__mb_mpp::__desc_code __D, class __Scope, class... __Config> struct matmul2d {
  static constexpr unsigned long __bits = (unsigned long)__D;
  static constexpr int __M = __bits & 0xFFFF, __N = __bits >> 16 & 0xFFFF;
  static constexpr int __K = __bits >> 32 & 0xFFFF;
  static constexpr bool __TL = __bits >> 48 & 1, __TR = __bits >> 49 & 1;
  static constexpr bool __ACC = __bits >> 51 & 1;
  static constexpr bool __scope_ok =
      __mb_mpp::__same<__Scope, metal::execution_simdgroup> && sizeof...(__Config) == 0;
  static constexpr bool __shape_ok = __M == 16 && __N == 32 && __K == 16;
  static constexpr bool __ok = __scope_ok && __shape_ok;
  template <class __A, class __B, class __C>
  static constexpr bool __int8_bad =
      __ok && !__mb_mpp::__same<__A, void> && __mb_mpp::__int8<__A, __B, __C>;
  template <class __A, class __B, class __C>
  static constexpr bool __combo_bad = __ok && !__mb_mpp::__same<__A, void> &&
                                      !__mb_mpp::__int8<__A, __B, __C> &&
                                      !__mb_mpp::__fp_combo<__A, __B, __C>();
  // The run-time refusal behind the diagnostics.
  template <class __A, class __B, class __C> static __MB_INL void __refuse() {
    if constexpr (!__ok || __mb_mpp::__same<__A, void> || __mb_mpp::__int8<__A, __B, __C> ||
                  !__mb_mpp::__fp_combo<__A, __B, __C>())
      __builtin_trap();
  }

  template <class __A, class __B, class __C>
  __MB_INL auto get_left_input_cooperative_tensor() const __MB_MPP_OP
      __MB_MPP_TYPES(__mb_mpp::__clean<__A>, __mb_mpp::__clean<__B>, __mb_mpp::__clean<__C>) {
    __refuse<__mb_mpp::__clean<__A>, __mb_mpp::__clean<__B>, __mb_mpp::__clean<__C>>();
    return __mb_mpp::__cooperative_tensor<__mb_mpp::__clean<__A>, __mb_mpp::__LEFT, __D>();
  }
  template <class __A, class __B, class __C>
  __MB_INL auto get_right_input_cooperative_tensor() const __MB_MPP_OP
      __MB_MPP_TYPES(__mb_mpp::__clean<__A>, __mb_mpp::__clean<__B>, __mb_mpp::__clean<__C>) {
    __refuse<__mb_mpp::__clean<__A>, __mb_mpp::__clean<__B>, __mb_mpp::__clean<__C>>();
    return __mb_mpp::__cooperative_tensor<__mb_mpp::__clean<__B>, __mb_mpp::__RIGHT, __D>();
  }
  template <class __L, class __R, class __C>
  __MB_INL auto get_destination_cooperative_tensor() const __MB_MPP_OP
      __MB_MPP_IF(__ok && !(__mb_mpp::__info<__L>::__role == __mb_mpp::__LEFT &&
                            __mb_mpp::__info<__R>::__role == __mb_mpp::__RIGHT),
                  "get_destination_cooperative_tensor<Left, Right, Element>: the simulator takes "
                  "the types of this matmul2d's left and right input cooperative tensors (tensor "
                  "operands are not simulated)")
      __MB_MPP_TYPES(typename __mb_mpp::__info<__L>::__elem,
                     typename __mb_mpp::__info<__R>::__elem, __mb_mpp::__clean<__C>) {
    __refuse<typename __mb_mpp::__info<__L>::__elem, typename __mb_mpp::__info<__R>::__elem,
             __mb_mpp::__clean<__C>>();
    return __mb_mpp::__cooperative_tensor<__mb_mpp::__clean<__C>, __mb_mpp::__DEST, __D>();
  }

  // C = op(A)·op(B) (multiply) or C += op(A)·op(B) (multiply_accumulate),
  // all 32 lanes of the SIMD group taking part (their call sites meet).
  template <class __L, class __R, class __Dst>
  __MB_INL void run(__L &&__left, __R &&__right, __Dst &&__dest, __MB_SITE_PARAMS) const
      __MB_MPP_OP
      __MB_MPP_IF(__ok && !__MB_MPP_ROLES(__L, __R, __Dst),
                  "matmul2d::run(left, right, destination) takes this op's cooperative tensors "
                  "(get_left_input / get_right_input / get_destination_cooperative_tensor), in "
                  "that order; tensor operands are not simulated")
      __MB_MPP_IF(__ok && __MB_MPP_ROLES(__L, __R, __Dst) && !__MB_MPP_SAME_OP(__L, __R, __Dst),
                  "matmul2d::run: a cooperative tensor comes from a matmul2d with another "
                  "descriptor") {
    if constexpr (__ok && __MB_MPP_ROLES(__L, __R, __Dst) && __MB_MPP_SAME_OP(__L, __R, __Dst)) {
      using __A = typename __mb_mpp::__info<__L>::__elem;
      using __B = typename __mb_mpp::__info<__R>::__elem;
      using __C = typename __mb_mpp::__info<__Dst>::__elem;
      __mb_mpp::__run_in<__A, __B, __C> __in{&__left.__e[0], &__right.__e[0], &__dest.__e[0]};
      (void)::__mb::simd_exchange<unsigned>(
          __in, 0, __mb_mpp::__c_matmul<__A, __B, __C, __TL, __TR, __ACC>, __MB_SITE);
    } else {
      __builtin_trap(); // refused above; a kernel silenced the diagnostic
    }
  }

  template <class... __A, class... __Args>
  __MB_MPP_NO("matmul2d's reductions", "reduce the destination's elements with simd_* functions")
  void get_row_reduction_destination_cooperative_tensor(__Args &&...) const {}
  template <class... __A, class... __Args>
  __MB_MPP_NO("matmul2d's reductions", "reduce the destination's elements with simd_* functions")
  void get_column_reduction_destination_cooperative_tensor(__Args &&...) const {}
};
#undef __MB_MPP_OP
#undef __MB_MPP_TYPES
#undef __MB_MPP_ROLES
#undef __MB_MPP_SAME_OP
} // namespace tensor_ops
} // namespace mpp

#undef __MB_MPP_NO
#undef __MB_MPP_IF
#undef __MB_MPP_TENSORS
