// MetalBench simulator shim: simdgroup_matrix (8x8 matrices spread over the
// 32 lanes of a SIMD group, two elements per lane).
//
// The layout is Apple's, the one MLX's steel GEMM relies on: with q = lane/4,
// lane l holds row  (q & 4) + (l / 2) % 4  and columns  (q & 2) * 2 + (l % 2) * 2
// and the next one; thread_elements() is that pair. Loads and stores touch
// only the caller's two elements; multiply-accumulate is a SIMD-group
// collective that gathers the 8x8 operands from all 32 lanes.
#pragma once

#include "mb_sim_sync.h"

namespace __mb {
struct frag_pos {
  unsigned row, col; // of thread_elements()[0]; [1] is (row, col + 1)
};
__MB_INL frag_pos frag_of(unsigned lane) {
  unsigned q = lane / 4;
  return {(q & 4) + (lane / 2) % 4, (q & 2) * 2 + (lane % 2) * 2};
}
__MB_INL unsigned my_lane() { return rt()->thread_index() % MB_SIM_SIMD_WIDTH; }
} // namespace __mb

namespace metal {
template <class T, int Cols, int Rows> struct simdgroup_matrix {
  static_assert(Cols == 8 && Rows == 8, "the simulator supports 8x8 simdgroup matrices");
  static_assert(__mb::is_fp<T>, "simdgroup_matrix holds float, half or bfloat");
  vec<T, 2> __e;

  simdgroup_matrix() = default;
  // A diagonal matrix: d on the diagonal, 0 elsewhere.
  __MB_INL explicit simdgroup_matrix(T d) {
    __mb::frag_pos p = __mb::frag_of(__mb::my_lane());
    __e[0] = p.row == p.col ? d : T(0);
    __e[1] = p.row == p.col + 1 ? d : T(0);
  }
  __MB_INL vec<T, 2> &thread_elements() { return __e; }
  __MB_INL const vec<T, 2> &thread_elements() const { return __e; }
};
typedef simdgroup_matrix<float, 8, 8> simdgroup_float8x8;
typedef simdgroup_matrix<half, 8, 8> simdgroup_half8x8;
typedef simdgroup_matrix<bfloat, 8, 8> simdgroup_bfloat8x8;

template <class T, int Cols, int Rows>
__MB_INL simdgroup_matrix<T, Cols, Rows> make_filled_simdgroup_matrix(T value) {
  simdgroup_matrix<T, Cols, Rows> m;
  m.__e = vec<T, 2>(value);
  return m;
}

// Element (r, c) of the matrix is src[(origin.y + r) * elements_per_row +
// origin.x + c] (origin = (column, row)); transposed, it is element (c, r)
// of the source.
template <class T, int C, int R, class P>
__MB_INL void simdgroup_load(simdgroup_matrix<T, C, R> &d, const P *src,
                             ulong elements_per_row = C, ulong2 matrix_origin = ulong2(0),
                             bool transpose_matrix = false) {
  static_assert(__mb::same<__mb::clean<P>, T>, "simdgroup_load: element types differ");
  __mb::frag_pos p = __mb::frag_of(__mb::my_lane());
  for (unsigned j = 0; j < 2; ++j) {
    ulong r = p.row, c = p.col + j;
    if (transpose_matrix) r = p.col + j, c = p.row;
    d.__e[j] = src[(matrix_origin.y + r) * elements_per_row + matrix_origin.x + c];
  }
}
template <class T, int C, int R, class P>
__MB_INL void simdgroup_store(const simdgroup_matrix<T, C, R> &a, P *dst,
                              ulong elements_per_row = C, ulong2 matrix_origin = ulong2(0),
                              bool transpose_matrix = false) {
  static_assert(__mb::same<__mb::clean<P>, T>, "simdgroup_store: element types differ");
  __mb::frag_pos p = __mb::frag_of(__mb::my_lane());
  for (unsigned j = 0; j < 2; ++j) {
    ulong r = p.row, c = p.col + j;
    if (transpose_matrix) r = p.col + j, c = p.row;
    dst[(matrix_origin.y + r) * elements_per_row + matrix_origin.x + c] = a.__e[j];
  }
}
} // namespace metal

namespace __mb {
// The operands one lane contributes to a multiply-accumulate.
template <class A, class B, class C> struct mma_in {
  metal::vec<A, 2> a;
  metal::vec<B, 2> b;
  metal::vec<C, 2> c;
};
// D = A * B + C over the whole SIMD group, in float, rounded to D's type.
// A lane that does not take part contributes NaN (MSL requires all 32).
template <class D, class A, class B, class C>
void c_mma(mb_simd_slot *const *lanes, unsigned) {
  float a[8][8], b[8][8], c[8][8];
  for (unsigned l = 0; l < MB_SIM_SIMD_WIDTH; ++l) {
    frag_pos p = frag_of(l);
    for (unsigned j = 0; j < 2; ++j) {
      float nan = __builtin_nanf("");
      if (!lanes[l]) {
        a[p.row][p.col + j] = b[p.row][p.col + j] = c[p.row][p.col + j] = nan;
        continue;
      }
      mma_in<A, B, C> in = load<mma_in<A, B, C>>(lanes[l]->in);
      a[p.row][p.col + j] = (float)in.a[j];
      b[p.row][p.col + j] = (float)in.b[j];
      c[p.row][p.col + j] = (float)in.c[j];
    }
  }
  for (unsigned l = 0; l < MB_SIM_SIMD_WIDTH; ++l) {
    if (!lanes[l]) continue;
    frag_pos p = frag_of(l);
    metal::vec<D, 2> out;
    for (unsigned j = 0; j < 2; ++j) {
      float s = c[p.row][p.col + j];
      for (unsigned k = 0; k < 8; ++k) s = __builtin_fmaf(a[p.row][k], b[k][p.col + j], s);
      out[j] = (D)s;
    }
    store(lanes[l]->out, out);
  }
}
} // namespace __mb

namespace metal {
template <class D, class A, class B, class C>
__MB_INL void simdgroup_multiply_accumulate(simdgroup_matrix<D, 8, 8> &d,
                                            const simdgroup_matrix<A, 8, 8> &a,
                                            const simdgroup_matrix<B, 8, 8> &b,
                                            const simdgroup_matrix<C, 8, 8> &c,
                                            __MB_SITE_PARAMS) {
  using In = __mb::mma_in<A, B, C>;
  d.__e = __mb::simd_exchange<vec<D, 2>>(In{a.__e, b.__e, c.__e}, 0, __mb::c_mma<D, A, B, C>,
                                          __MB_SITE);
}
template <class D, class A, class B>
__MB_INL void simdgroup_multiply(simdgroup_matrix<D, 8, 8> &d,
                                 const simdgroup_matrix<A, 8, 8> &a,
                                 const simdgroup_matrix<B, 8, 8> &b, __MB_SITE_PARAMS) {
  simdgroup_multiply_accumulate(d, a, b, make_filled_simdgroup_matrix<D, 8, 8>(D(0)), __MB_SITE);
}
template <class T>
__MB_INL simdgroup_matrix<T, 8, 8> operator*(const simdgroup_matrix<T, 8, 8> &a,
                                             const simdgroup_matrix<T, 8, 8> &b) {
  simdgroup_matrix<T, 8, 8> d;
  simdgroup_multiply(d, a, b);
  return d;
}
} // namespace metal
