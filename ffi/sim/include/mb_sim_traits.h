// MetalBench simulator shim: the rest of metal_type_traits that real kernels
// use (MLX's among them), beside the common part in mb_sim_types.h.
#pragma once

namespace metal {
template <bool B> using bool_constant = integral_constant<bool, B>;
template <class...> struct conjunction : true_type {};
template <class B> struct conjunction<B> : B {};
template <class B, class... R>
struct conjunction<B, R...> : conditional_t<bool(B::value), conjunction<R...>, B> {};
template <class...> struct disjunction : false_type {};
template <class B> struct disjunction<B> : B {};
template <class B, class... R>
struct disjunction<B, R...> : conditional_t<bool(B::value), B, disjunction<R...>> {};
template <class B> struct negation : bool_constant<!bool(B::value)> {};
template <class... B> constexpr bool conjunction_v = conjunction<B...>::value;
template <class... B> constexpr bool disjunction_v = disjunction<B...>::value;
template <class B> constexpr bool negation_v = negation<B>::value;
// Spellings of Apple's headers that kernels call too.
template <class... B> using _conjunction = conjunction<B...>;
template <class... B> using _disjunction = disjunction<B...>;
template <class B> using _negation = negation<B>;

template <class From, class To>
struct is_convertible : bool_constant<__is_convertible_to(From, To)> {};
template <class From, class To>
constexpr bool is_convertible_v = __is_convertible_to(From, To);
template <class T> struct is_void : bool_constant<__is_same(remove_cv_t<T>, void)> {};
template <class T> constexpr bool is_void_v = is_void<T>::value;
template <class T> struct is_pointer : false_type {};
template <class T> struct is_pointer<T *> : true_type {};
template <class T> struct is_pointer<T *const> : true_type {};
template <class T> constexpr bool is_pointer_v = is_pointer<T>::value;
template <class T> struct is_const : false_type {};
template <class T> struct is_const<const T> : true_type {};
template <class T> constexpr bool is_const_v = is_const<T>::value;
template <class T> struct is_reference : false_type {};
template <class T> struct is_reference<T &> : true_type {};
template <class T> struct is_reference<T &&> : true_type {};
template <class T> constexpr bool is_reference_v = is_reference<T>::value;
template <class T> struct is_empty : bool_constant<__is_empty(T)> {};
template <class T> constexpr bool is_empty_v = __is_empty(T);
template <class T> struct is_class : bool_constant<__is_class(T)> {};
template <class T> constexpr bool is_class_v = __is_class(T);
template <class T> struct is_enum : bool_constant<__is_enum(T)> {};
template <class T> constexpr bool is_enum_v = __is_enum(T);
template <class T> struct is_trivially_copyable : bool_constant<__is_trivially_copyable(T)> {};
template <class T> constexpr bool is_trivially_copyable_v = __is_trivially_copyable(T);
template <class B, class D> struct is_base_of : bool_constant<__is_base_of(B, D)> {};
template <class B, class D> constexpr bool is_base_of_v = __is_base_of(B, D);
template <class T> constexpr bool is_signed_integral_v = is_integral_v<T> && is_signed_v<T>;
template <class T> constexpr bool vec_elements_v = vec_elements<T>::value;
template <class T> struct remove_const {
  using type = T;
};
template <class T> struct remove_const<const T> {
  using type = T;
};
template <class T> using remove_const_t = typename remove_const<T>::type;
template <class T> struct remove_volatile {
  using type = T;
};
template <class T> struct remove_volatile<volatile T> {
  using type = T;
};
template <class T> using remove_volatile_t = typename remove_volatile<T>::type;
template <class T> struct remove_pointer {
  using type = T;
};
template <class T> struct remove_pointer<T *> {
  using type = T;
};
template <class T> struct remove_pointer<T *const> {
  using type = T;
};
template <class T> using remove_pointer_t = typename remove_pointer<T>::type;
template <class T> struct remove_cvref {
  using type = remove_cv_t<remove_reference_t<T>>;
};
template <class T> using remove_cvref_t = typename remove_cvref<T>::type;
template <class T> struct add_const {
  using type = const T;
};
template <class T> using add_const_t = const T;
template <class T> struct add_pointer {
  using type = remove_reference_t<T> *;
};
template <class T> using add_pointer_t = remove_reference_t<T> *;
template <class T> struct type_identity {
  using type = T;
};
template <class T> using type_identity_t = T;
template <class...> using void_t = void;
template <class T> T &&declval() noexcept;

// Address spaces are part of the type, as in MSL.
template <class T> struct remove_addrspace {
  using type = typename __mb::rmas<T>::type;
};
template <class T> using remove_addrspace_t = typename remove_addrspace<T>::type;
template <class T> struct is_scalar_or_vector : bool_constant<is_scalar_v<T> || is_vector_v<T>> {};

// uniform<T>: a value the same in every thread (a promise to the compiler,
// which lets it keep the value in scalar registers). On the CPU it is T.
template <class T> using uniform = T;
template <class T> __attribute__((always_inline)) constexpr T make_uniform(T x) { return x; }
} // namespace metal
