// MetalBench simulator shim: packed vector types (packed_float3: 12 bytes,
// 4-byte alignment, unlike float3's 16) and matrices (float4x4: column-major
// columns, m[col][row], `*` with vectors and matrices).
#pragma once

#include "mb_sim_math.h"

namespace metal {
// ---- packed vectors ---------------------------------------------------------
template <class T, int N> struct __packed_storage;
template <class T> struct __packed_storage<T, 2> {
  union {
    T __e[2];
    struct {
      T x, y;
    };
    struct {
      T r, g;
    };
  };
};
template <class T> struct __packed_storage<T, 3> {
  union {
    T __e[3];
    struct {
      T x, y, z;
    };
    struct {
      T r, g, b;
    };
  };
};
template <class T> struct __packed_storage<T, 4> {
  union {
    T __e[4];
    struct {
      T x, y, z, w;
    };
    struct {
      T r, g, b, a;
    };
  };
};

// Converts to and from vec<T, N>; arithmetic goes through vec<T, N>.
// Components by [i], .x/.y/.z/.w and .r/.g/.b/.a (no swizzles: convert to
// the vector type first, as in vec<T, N>(p).xy).
template <class T, int N> struct packed_vec : __packed_storage<T, N> {
  using __vec = vec<T, N>;
  packed_vec() = default;
  __MB_INL packed_vec(__vec v) {
    for (int i = 0; i < N; ++i) this->__e[i] = v[i];
  }
  template <class... A, __mb::req<sizeof...(A) == N && (__mb::is_scalar<A> && ...)> = 0>
  __MB_INL packed_vec(A... a) : packed_vec(__vec{(T)a...}) {}
  __MB_INL operator __vec() const {
    __vec v;
    for (int i = 0; i < N; ++i) v[i] = this->__e[i];
    return v;
  }
  __MB_INL T &operator[](int i) { return this->__e[i]; }
  __MB_INL const T &operator[](int i) const { return this->__e[i]; }
#define __MB_PACKED_ASSIGN(op)                                                                       \
  template <class B> __MB_INL packed_vec &operator op##=(const B & b) {                            \
    return *this = packed_vec((__vec)(__vec(*this) op b));                                           \
  }
  __MB_PACKED_ASSIGN(+)
  __MB_PACKED_ASSIGN(-)
  __MB_PACKED_ASSIGN(*)
  __MB_PACKED_ASSIGN(/)
#undef __MB_PACKED_ASSIGN
};
} // namespace metal

namespace __mb {
template <class T> struct packed_of {
  static constexpr bool value = false;
};
template <class T, int N> struct packed_of<metal::packed_vec<T, N>> {
  static constexpr bool value = true;
  using vec = metal::vec<T, N>;
};
template <class T> constexpr bool is_packed = packed_of<clean<T>>::value;
// A packed vector as its vector type; anything else as it is.
template <class A> __MB_INL auto unpack(A a) {
  if constexpr (is_packed<A>) return (typename packed_of<A>::vec)a;
  else return a;
}
} // namespace __mb

namespace metal {
#define __MB_PACKED_OP(op)                                                                           \
  template <class T, int N, class B>                                                                 \
  __MB_INL auto operator op(const packed_vec<T, N> &a, const B &b)                                  \
      ->decltype(vec<T, N>(a) op __mb::unpack(b)) {                                                  \
    return vec<T, N>(a) op __mb::unpack(b);                                                          \
  }                                                                                                  \
  template <class A, class T, int N, __mb::req<!__mb::is_packed<A>> = 0>                           \
  __MB_INL auto operator op(const A &a, const packed_vec<T, N> &b)->decltype(a op vec<T, N>(b)) {    \
    return a op vec<T, N>(b);                                                                        \
  }
__MB_PACKED_OP(+)
__MB_PACKED_OP(-)
__MB_PACKED_OP(*)
__MB_PACKED_OP(/)
#undef __MB_PACKED_OP
template <class T, int N> __MB_INL vec<T, N> operator-(const packed_vec<T, N> &a) {
  return -vec<T, N>(a);
}
} // namespace metal

#define __MB_PACKED(T, name)                                                                         \
  typedef metal::packed_vec<T, 2> packed_##name##2;                                                 \
  typedef metal::packed_vec<T, 3> packed_##name##3;                                                 \
  typedef metal::packed_vec<T, 4> packed_##name##4;
__MB_PACKED(char, char)
__MB_PACKED(uchar, uchar)
__MB_PACKED(short, short)
__MB_PACKED(ushort, ushort)
__MB_PACKED(int, int)
__MB_PACKED(uint, uint)
__MB_PACKED(long, long)
__MB_PACKED(ulong, ulong)
__MB_PACKED(half, half)
__MB_PACKED(float, float)
__MB_PACKED(bfloat, bfloat)
#undef __MB_PACKED

// ---- matrices ------------------------------------------------------------------
namespace metal {
// matrix<T, C, R>: C columns of vec<T, R> (floatCxR), column-major.
template <class T, int C, int R> struct matrix {
  static_assert(C >= 2 && C <= 4 && R >= 2 && R <= 4, "matrices are 2x2 to 4x4");
  using __col = vec<T, R>;
  __col columns[C];

  matrix() = default;
  // A diagonal matrix: d on the diagonal, 0 elsewhere.
  __MB_INL explicit matrix(T d) {
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) columns[c][r] = c == r ? d : T(0);
  }
  // C column vectors.
  template <class... A, __mb::req<sizeof...(A) == C && (__mb::same<__mb::clean<A>, __col> && ...)> = 0>
  __MB_INL matrix(A... cols) : columns{cols...} {}
  // C * R scalars, column by column.
  template <class... A, __mb::req<sizeof...(A) == C * R && (__mb::is_scalar<A> && ...)> = 0>
  __MB_INL matrix(A... s) {
    T v[C * R] = {(T)s...};
    for (int c = 0; c < C; ++c)
      for (int r = 0; r < R; ++r) columns[c][r] = v[c * R + r];
  }
  // The same size with another element type (half4x4(float4x4)).
  template <class U> __MB_INL explicit matrix(const matrix<U, C, R> &m) {
    for (int c = 0; c < C; ++c) columns[c] = ::__mb::convert<__col>(m.columns[c]);
  }

  __MB_INL __col &operator[](int c) { return columns[c]; }
  __MB_INL const __col &operator[](int c) const { return columns[c]; }

  __MB_INL matrix &operator+=(const matrix &m) { return *this = *this + m; }
  __MB_INL matrix &operator-=(const matrix &m) { return *this = *this - m; }
  template <class U> __MB_INL matrix &operator*=(const U &u) { return *this = *this * u; }
};

template <class T, int C, int R>
__MB_INL matrix<T, C, R> operator+(const matrix<T, C, R> &a, const matrix<T, C, R> &b) {
  matrix<T, C, R> m;
  for (int c = 0; c < C; ++c) m.columns[c] = a.columns[c] + b.columns[c];
  return m;
}
template <class T, int C, int R>
__MB_INL matrix<T, C, R> operator-(const matrix<T, C, R> &a, const matrix<T, C, R> &b) {
  matrix<T, C, R> m;
  for (int c = 0; c < C; ++c) m.columns[c] = a.columns[c] - b.columns[c];
  return m;
}
template <class T, int C, int R> __MB_INL matrix<T, C, R> operator-(const matrix<T, C, R> &a) {
  matrix<T, C, R> m;
  for (int c = 0; c < C; ++c) m.columns[c] = -a.columns[c];
  return m;
}
template <class T, int C, int R, class S, __mb::req<__mb::is_scalar<S>> = 0>
__MB_INL matrix<T, C, R> operator*(const matrix<T, C, R> &a, S s) {
  matrix<T, C, R> m;
  for (int c = 0; c < C; ++c) m.columns[c] = a.columns[c] * (T)s;
  return m;
}
template <class T, int C, int R, class S, __mb::req<__mb::is_scalar<S>> = 0>
__MB_INL matrix<T, C, R> operator*(S s, const matrix<T, C, R> &a) {
  return a * s;
}
// matrix * column vector: the columns weighted by the vector's components.
template <class T, int C, int R>
__MB_INL vec<T, R> operator*(const matrix<T, C, R> &m, vec<T, C> v) {
  vec<T, R> r = m.columns[0] * v[0];
  for (int c = 1; c < C; ++c) r += m.columns[c] * v[c];
  return r;
}
// row vector * matrix: one dot product per column.
template <class T, int C, int R>
__MB_INL vec<T, C> operator*(vec<T, R> v, const matrix<T, C, R> &m) {
  vec<T, C> r;
  for (int c = 0; c < C; ++c) {
    T s = v[0] * m.columns[c][0];
    for (int k = 1; k < R; ++k) s += v[k] * m.columns[c][k];
    r[c] = s;
  }
  return r;
}
template <class T, int K, int R, int C>
__MB_INL matrix<T, C, R> operator*(const matrix<T, K, R> &a, const matrix<T, C, K> &b) {
  matrix<T, C, R> m;
  for (int c = 0; c < C; ++c) m.columns[c] = a * b.columns[c];
  return m;
}
template <class T, int C, int R>
__MB_INL bool operator==(const matrix<T, C, R> &a, const matrix<T, C, R> &b) {
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r)
      if (a.columns[c][r] != b.columns[c][r]) return false;
  return true;
}

template <class T, int C, int R> __MB_INL matrix<T, R, C> transpose(const matrix<T, C, R> &m) {
  matrix<T, R, C> t;
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r) t.columns[r][c] = m.columns[c][r];
  return t;
}
template <class T> __MB_INL T determinant(const matrix<T, 2, 2> &m) {
  return m[0][0] * m[1][1] - m[1][0] * m[0][1];
}
template <class T> __MB_INL T determinant(const matrix<T, 3, 3> &m) {
  return dot(m[0], cross(m[1], m[2]));
}
template <class T> __MB_INL T determinant(const matrix<T, 4, 4> &m) {
  // Laplace expansion along the first column.
  T d = 0;
  for (int i = 0; i < 4; ++i) {
    matrix<T, 3, 3> minor;
    for (int c = 1; c < 4; ++c)
      for (int r = 0, k = 0; r < 4; ++r)
        if (r != i) minor.columns[c - 1][k++] = m[c][r];
    T term = m[0][i] * determinant(minor);
    d += (i % 2) ? -term : term;
  }
  return d;
}
} // namespace metal

#define __MB_MATRICES(T)                                                                             \
  typedef metal::matrix<T, 2, 2> T##2x2;                                                            \
  typedef metal::matrix<T, 2, 3> T##2x3;                                                            \
  typedef metal::matrix<T, 2, 4> T##2x4;                                                            \
  typedef metal::matrix<T, 3, 2> T##3x2;                                                            \
  typedef metal::matrix<T, 3, 3> T##3x3;                                                            \
  typedef metal::matrix<T, 3, 4> T##3x4;                                                            \
  typedef metal::matrix<T, 4, 2> T##4x2;                                                            \
  typedef metal::matrix<T, 4, 3> T##4x3;                                                            \
  typedef metal::matrix<T, 4, 4> T##4x4;
__MB_MATRICES(float)
__MB_MATRICES(half)
#undef __MB_MATRICES
