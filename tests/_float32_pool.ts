/**
 * The pool and convolution group's problems re-implemented in float32 for
 * tolerance.test.ts, channels last as MLX takes them: products rounded to
 * float32, sums over the conv window (spatial taps, then channels, as the
 * weights lie) or the pool window in a chosen order. A transposed conv sums
 * its whole window over the stride-dilated input, zeros included, as MLX
 * computes it (a conv over the dilated, padded input).
 */
import type { SizedProblem } from "../src/registry/problem.ts";
import type { Impl, Order } from "./_float32_reduce.ts";
import { erf, f, sum } from "./_float32.ts";

type X = Record<string, Float32Array>;

const prod = (a: number[]) => a.reduce((p, v) => p * v, 1);
const shapeOf = (p: SizedProblem, name: string) => p.inputs.find((t) => t.name === name)!.shape;
/** Row-major strides of a shape. */
const strides = (s: number[]) => s.map((_, i) => prod(s.slice(i + 1)));
/** The multi-index of flat i in shape s. */
const unflat = (i: number, s: number[]) =>
  s.map((d, j) => Math.floor(i / prod(s.slice(j + 1))) % d);

interface Conv {
  y: Float32Array;
  /** [N, ...spatial, F] */
  shape: number[];
}

/**
 * conv(x, w) for x [N, ...S, C], w [F, ...R, C], stride 1, no padding; or
 * conv_transpose at stride s: y[o] = sum over k of x[(o - k) / s] * w[k],
 * a zero term where (o - k) / s is not a whole index inside x.
 */
function conv(
  x: Float32Array,
  xs: number[],
  w: Float32Array,
  ws: number[],
  order: Order,
  transpose?: { stride: number },
): Conv {
  const [N, C, F] = [xs[0], xs.at(-1)!, ws[0]];
  const S = xs.slice(1, -1), R = ws.slice(1, -1);
  const s = transpose?.stride ?? 1;
  const O = S.map((d, i) => (transpose ? (d - 1) * s + R[i] : d - R[i] + 1));
  const KG = prod(R) * C;
  const xStr = strides(S).map((v) => v * C);
  const taps = Array.from({ length: prod(R) }, (_, t) => unflat(t, R));
  const y = new Float32Array(N * prod(O) * F);
  const off = new Int32Array(KG);
  for (let n = 0; n < N; n++) {
    for (let q = 0; q < prod(O); q++) {
      const o = unflat(q, O);
      // Offsets into x of each window term, -1 for a zero (dilation gap or outside).
      taps.forEach((k, t) => {
        let at = n * prod(S) * C;
        for (let i = 0; i < k.length; i++) {
          const j = transpose ? (o[i] - k[i]) / s : o[i] + k[i];
          if (!Number.isInteger(j) || j < 0 || j >= S[i]) at = -1;
          if (at >= 0) at += j * xStr[i];
        }
        for (let c = 0; c < C; c++) off[t * C + c] = at < 0 ? -1 : at + c;
      });
      for (let g = 0; g < F; g++) {
        y[(n * prod(O) + q) * F + g] = sum(
          KG,
          (t) => (off[t] < 0 ? 0 : f(x[off[t]] * w[g * KG + t])),
          order,
        );
      }
    }
  }
  return { y, shape: [N, ...O, F] };
}

const convOf = ({ x, w }: X, p: SizedProblem, order: Order) =>
  conv(x, shapeOf(p, "x"), w, shapeOf(p, "w"), order);
const transposeOf = ({ x, w }: X, p: SizedProblem, order: Order) =>
  conv(x, shapeOf(p, "x"), w, shapeOf(p, "w"), order, { stride: (p.init.stride as number) ?? 2 });

/**
 * k^d windows at stride s over y [N, ...S, C] (trailing positions past the
 * last whole window dropped), reduced by reduce(count, term).
 */
function pool(
  y: Float32Array,
  ys: number[],
  k: number,
  s: number,
  reduce: (n: number, term: (i: number) => number) => number,
): Conv {
  const [N, C] = [ys[0], ys.at(-1)!];
  const S = ys.slice(1, -1);
  const O = S.map((d) => Math.floor((d - k) / s) + 1);
  const yStr = strides(S).map((v) => v * C);
  const taps = Array.from({ length: k ** S.length }, (_, t) => unflat(t, S.map(() => k)));
  const out = new Float32Array(N * prod(O) * C);
  for (let n = 0; n < N; n++) {
    for (let q = 0; q < prod(O); q++) {
      const o = unflat(q, O);
      const base = taps.map((t) =>
        n * prod(S) * C + t.reduce((a, v, i) => a + (o[i] * s + v) * yStr[i], 0)
      );
      for (let c = 0; c < C; c++) {
        out[(n * prod(O) + q) * C + c] = reduce(taps.length, (i) => y[base[i] + c]);
      }
    }
  }
  return { y: out, shape: [N, ...O, C] };
}

/** The max of n terms; NaN wins, as MLX's max. */
const max = (n: number, term: (i: number) => number) => {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Number.isNaN(term(i)) || term(i) > m ? term(i) : m;
  return m;
};
const mean = (order: Order) => (n: number, term: (i: number) => number) =>
  f(sum(n, term, order) / n);

const maxPool: Impl = ({ x }, p) =>
  pool(x, shapeOf(p, "x"), p.init.k as number, p.init.s as number, max).y;
const avgPool: Impl = ({ x }, p, order) =>
  pool(x, shapeOf(p, "x"), p.init.k as number, p.init.s as number, mean(order)).y;

const gelu = (v: number) => f(f(v * f(1 + f(erf(f(v / Math.SQRT2))))) / 2);
const softplus = (v: number) => f(Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v))));
const mish = (v: number) => f(v * f(Math.tanh(softplus(v))));
const sigmoid = (v: number) => f(1 / f(1 + f(Math.exp(-v))));
const relu = (v: number) => (v < 0 ? 0 : v);
/** clip that keeps NaN, as mx.clip. */
const clip = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);
/** bias[F] added along the last axis. */
const plusBias = (y: Float32Array, bias: Float32Array) =>
  y.map((v, i) => f(v + bias[i % bias.length]));

export const FLOAT32_POOL: Record<string, Impl> = {
  max_pool1d: maxPool,
  avg_pool1d: avgPool,
  max_pool2d: maxPool,
  avg_pool2d: avgPool,
  max_pool3d: maxPool,
  avg_pool3d: avgPool,
  conv1d: (x, p, order) => convOf(x, p, order).y,
  conv2d: (x, p, order) => convOf(x, p, order).y,
  conv3d: (x, p, order) => convOf(x, p, order).y,
  depthwise_conv2d: ({ x, w }, p, order) => {
    // groups = C: each channel its own 1-channel conv with w[c, ..., 0].
    const [N, H, W, C] = shapeOf(p, "x");
    const R = shapeOf(p, "w")[1];
    const [OH, OW] = [H - R + 1, W - R + 1];
    const y = new Float32Array(N * OH * OW * C);
    for (let n = 0; n < N; n++) {
      for (let i = 0; i < OH; i++) {
        for (let j = 0; j < OW; j++) {
          for (let c = 0; c < C; c++) {
            const term = (t: number) => {
              const [a, b] = [Math.floor(t / R), t % R];
              return f(x[((n * H + i + a) * W + j + b) * C + c] * w[c * R * R + t]);
            };
            y[((n * OH + i) * OW + j) * C + c] = sum(R * R, term, order);
          }
        }
      }
    }
    return y;
  },
  conv_transpose2d: (x, p, order) => transposeOf(x, p, order).y,
  conv2d_relu_bias: (x, p, order) => plusBias(convOf(x, p, order).y, x.bias).map(relu),
  conv2d_mish_mish: (x, p, order) => convOf(x, p, order).y.map((v) => mish(mish(v))),
  conv3d_multi_act_bias: (x, p, order) =>
    // The leaky ReLU after the ReLU is the identity.
    plusBias(convOf(x, p, order).y.map((v) => sigmoid(gelu(relu(v)))), x.bias),
  conv3d_div_pool_sum: (x, p, order) => {
    const { y, shape } = convOf(x, p, order);
    const [N, F] = [shape[0], shape.at(-1)!];
    const V = prod(shape.slice(1, -1));
    const div = p.init.div_val as number, bias = p.init.bias_val as number;
    const vmax = (n: number, v: number) => max(F, (g) => f(y[(n * V + v) * F + g] / div));
    const perN = (n: number) => f(mean(order)(V, (v) => vmax(n, v)) + bias);
    return Float32Array.of(sum(N, perN, order));
  },
  conv3d_softmax_pool: (x, p, order) => {
    const { y, shape } = convOf(x, p, order);
    const F = shape.at(-1)!;
    const soft = new Float32Array(y.length);
    for (let r = 0; r < y.length; r += F) {
      const row = y.subarray(r, r + F);
      const m = row.reduce((a, b) => Math.max(a, b), -Infinity);
      const e = row.map((v) => f(Math.exp(f(v - m))));
      const s = sum(F, (j) => e[j], order);
      for (let j = 0; j < F; j++) soft[r + j] = f(e[j] / s);
    }
    const once = pool(soft, shape, 2, 2, max);
    return pool(once.y, once.shape, 2, 2, max).y;
  },
  conv_transpose3d_norm_pool_gelu: (x, p, order) => {
    const { y, shape } = transposeOf(x, p, order);
    const F = shape.at(-1)!;
    const eps = p.init.eps as number;
    const z = plusBias(y, x.sum_term);
    for (let r = 0; r < z.length; r += F) {
      const row = z.subarray(r, r + F);
      const m = f(sum(F, (j) => row[j], order) / F);
      const v = f(sum(F, (j) => f(f(row[j] - m) ** 2), order) / F);
      const inv = f(1 / f(Math.sqrt(f(v + eps))));
      for (let j = 0; j < F; j++) row[j] = f(f(row[j] - m) * inv);
    }
    return pool(z, shape, 2, 2, mean(order)).y.map(gelu);
  },
  conv_transpose2d_clamp_scale_div: (x, p, order) => {
    const scale = p.init.scale as number, div = p.init.div as number;
    return plusBias(transposeOf(x, p, order).y, x.bias)
      .map((v) => f(clip(f(clip(v, -1, 1) * scale), -1, 1) / div));
  },
  conv_transpose2d_sub_tanh: (x, p, order) =>
    transposeOf(x, p, order).y.map((v) => f(Math.tanh(f(v - (p.init.sub_val as number))))),
};
