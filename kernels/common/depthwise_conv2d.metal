#include <metal_stdlib>
using namespace metal;

// y[N, OH, OW, C] = depthwise conv2d(x[N, H, W, C], w[C, R, R, 1]) (groups =
// C), channels-last as MLX takes it; any stride, padding and dilation.
//
// Not a GEMM: each output channel reads one input channel, so there is no
// reduction over channels to feed simdgroup_matrix and only 2*R*R FLOPs per
// output - the kernel is memory-bound, and what counts is reading x about
// once. What makes it fast: each thread computes a strip of 4 adjacent
// output columns for 4 adjacent channels (float4 over channels, so a SIMD
// group's loads are contiguous runs of the channels-last rows). With stride
// 1 and dilation 1 the strip's 4 + R - 1 input columns of each kernel row are
// loaded once and reused by all 4 outputs (a register window), and the
// channels' R x R weights are loaded once per thread for the 4 outputs.
// Otherwise each output reads its own taps (from cache). A C that is not a
// multiple of 4 is read element by element (its rows are not 16-byte aligned).
// Taps that fall in the padding are skipped, not multiplied by zero, as
// MLX's grouped conv does: a zero times an Inf weight would be NaN.

constant constexpr uint STRIP = 4;   // output columns per thread
constant constexpr uint MAX_R = 9;   // register window: STRIP + R - 1 <= 12 columns

// x[pixel, c..c+3], zeros for channels past C.
static inline float4 load_c4(device const float* p, uint c, uint C) {
  if ((C & 3) == 0) return *reinterpret_cast<device const float4*>(p + c);
  float4 v = float4(0.0f);
  for (uint j = 0; j < 4 && c + j < C; ++j) v[j] = p[c + j];
  return v;
}

kernel void depthwise_conv2d_f32(device const float* x [[buffer(0)]],
                                 device const float* w [[buffer(1)]],
                                 device float* y [[buffer(2)]],
                                 constant uint& N [[buffer(3)]],
                                 constant uint& C [[buffer(4)]],
                                 constant uint& F [[buffer(5)]],
                                 constant uint& H [[buffer(6)]],
                                 constant uint& W [[buffer(7)]],
                                 constant uint& OH [[buffer(8)]],
                                 constant uint& OW [[buffer(9)]],
                                 constant uint& R [[buffer(10)]],
                                 constant uint& stride [[buffer(11)]],
                                 constant uint& padding [[buffer(12)]],
                                 constant uint& dilation [[buffer(13)]],
                                 uint3 gid [[thread_position_in_grid]]) {
  // gid: x = channel group of 4, y = strip of 4 output columns, z = n * OH + oh.
  const uint c = gid.x * 4, ow0 = gid.y * STRIP, oh = gid.z % OH, n = gid.z / OH;
  if (c >= C || ow0 >= OW || n >= N) return;
  (void)F;  // F = C for a depthwise conv
  const uint RR = R * R;
  device const float* xn = x + ulong(n) * H * W * C;
  float4 acc[STRIP] = {float4(0.0f), float4(0.0f), float4(0.0f), float4(0.0f)};
  const bool window = stride == 1 && dilation == 1 && R <= MAX_R;

  for (uint kh = 0; kh < R; ++kh) {
    const int ih = int(oh * stride + kh * dilation) - int(padding);
    if (ih < 0 || ih >= int(H)) continue;  // a padded row adds nothing
    device const float* row = xn + ulong(ih) * W * C;
    if (window) {
      // Input columns iw0 .. iw0 + STRIP + R - 2 feed the whole strip.
      const int iw0 = int(ow0) - int(padding);
      float4 cols[STRIP + MAX_R - 1];
      bool inside[STRIP + MAX_R - 1];
      for (uint j = 0; j < STRIP + R - 1; ++j) {
        const int iw = iw0 + int(j);
        inside[j] = iw >= 0 && iw < int(W);
        cols[j] = inside[j] ? load_c4(row + ulong(iw) * C, c, C) : float4(0.0f);
      }
      for (uint kw = 0; kw < R; ++kw) {
        float4 wk;
        for (uint j = 0; j < 4; ++j) wk[j] = c + j < C ? w[(c + j) * RR + kh * R + kw] : 0.0f;
        for (uint o = 0; o < STRIP; ++o)
          if (inside[o + kw]) acc[o] = fma(cols[o + kw], wk, acc[o]);
      }
    } else {
      for (uint kw = 0; kw < R; ++kw) {
        float4 wk;
        for (uint j = 0; j < 4; ++j) wk[j] = c + j < C ? w[(c + j) * RR + kh * R + kw] : 0.0f;
        for (uint o = 0; o < STRIP; ++o) {
          const int iw = int((ow0 + o) * stride + kw * dilation) - int(padding);
          if (iw >= 0 && iw < int(W)) acc[o] = fma(load_c4(row + ulong(iw) * C, c, C), wk, acc[o]);
        }
      }
    }
  }

  device float* out = y + ((ulong(n) * OH + oh) * OW + ow0) * C + c;
  for (uint o = 0; o < STRIP && ow0 + o < OW; ++o, out += C) {
    if ((C & 3) == 0) {
      *reinterpret_cast<device float4*>(out) = acc[o];
    } else {
      for (uint j = 0; j < 4 && c + j < C; ++j) out[j] = acc[o][j];
    }
  }
}
