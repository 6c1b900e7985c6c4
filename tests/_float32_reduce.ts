/**
 * The reduce group's problems re-implemented in float32 for
 * tolerance.test.ts: every operation rounded to float32, sums in a chosen
 * order (in order, backwards, or as 256 strided lanes then a tree, as a GPU
 * reduction adds), so each entry's tolerance is shown to admit honest
 * float32 results however they are summed. Low-precision problems compute
 * in float32 from their (already rounded) inputs, as the kernels do.
 */
import type { SizedProblem } from "../src/registry/problem.ts";
import { f, type Order, sum } from "./_float32.ts";

export type { Order };

export type Impl = (
  x: Record<string, Float32Array>,
  p: SizedProblem,
  order: Order,
) => Float32Array;

/** One value per row of [R, C] inputs. */
const perRow = (
  { R, C }: Record<string, number>,
  row: (offset: number) => number,
): Float32Array => Float32Array.from({ length: R }, (_, i) => row(i * C));

/**
 * An inclusive or exclusive scan of each row of term, forward or from the
 * row's end, with + or *. "tree": blocks of 64 scanned alone and their
 * totals carried (a GPU scan's order); otherwise one pass.
 */
function scan(
  { R, C }: Record<string, number>,
  term: (i: number) => number,
  o: { order: Order; reverse?: boolean; exclusive?: boolean; product?: boolean },
): Float32Array {
  const y = new Float32Array(R * C);
  const op = o.product ? (a: number, b: number) => f(a * b) : (a: number, b: number) => f(a + b);
  const id = o.product ? 1 : 0;
  const block = o.order === "tree" ? 64 : C;
  for (let r = 0; r < R; r++) {
    const at = (j: number) => r * C + (o.reverse ? C - 1 - j : j);
    let carry = id;
    for (let b = 0; b < C; b += block) {
      let s = id;
      for (let j = b; j < Math.min(b + block, C); j++) {
        if (o.exclusive) y[at(j)] = op(carry, s);
        s = op(s, term(at(j)));
        if (!o.exclusive) y[at(j)] = op(carry, s);
      }
      carry = op(carry, s);
    }
  }
  return y;
}

/** Whether (a, ia) ranks ahead of (b, ib) as MLX's argmax and sort rank them. */
const ahead = (a: number, ia: number, b: number, ib: number) =>
  Number.isNaN(a) !== Number.isNaN(b)
    ? Number.isNaN(a)
    : (!Number.isNaN(a) && a !== b ? a > b : ia < ib);

export function softmax(
  { x }: Record<string, Float32Array>,
  { R, C }: Record<string, number>,
  order: Order,
) {
  const y = new Float32Array(R * C);
  for (let i = 0; i < R; i++) {
    const row = x.subarray(i * C, (i + 1) * C);
    const m = row.reduce((a, b) => Math.max(a, b), -Infinity);
    const e = row.map((v) => f(Math.exp(f(v - m))));
    const s = sum(C, (j) => e[j], order);
    for (let j = 0; j < C; j++) y[i * C + j] = f(e[j] / s);
  }
  return y;
}

export function layerNorm(
  { x, weight, bias }: Record<string, Float32Array>,
  { R, C }: Record<string, number>,
  eps: number,
  order: Order,
) {
  const y = new Float32Array(R * C);
  for (let i = 0; i < R; i++) {
    const row = x.subarray(i * C, (i + 1) * C);
    const mean = f(sum(C, (j) => row[j], order) / C);
    const v = f(sum(C, (j) => f(f(row[j] - mean) ** 2), order) / C);
    const inv = f(1 / f(Math.sqrt(f(v + eps))));
    for (let j = 0; j < C; j++) y[i * C + j] = f(f(f(row[j] - mean) * inv) * weight[j]) + bias[j];
  }
  return y;
}

function rmsNorm(
  { x, weight }: Record<string, Float32Array>,
  { R, C }: Record<string, number>,
  eps: number,
  order: Order,
) {
  const y = new Float32Array(R * C);
  for (let i = 0; i < R; i++) {
    const ms = f(sum(C, (j) => f(x[i * C + j] ** 2), order) / C);
    const inv = f(1 / f(Math.sqrt(f(ms + eps))));
    for (let j = 0; j < C; j++) y[i * C + j] = f(f(x[i * C + j] * inv) * weight[j]);
  }
  return y;
}

const sqrtSum = (n: number, term: (i: number) => number, order: Order) =>
  f(Math.sqrt(sum(n, term, order)));

export const FLOAT32_REDUCE: Record<string, Impl> = {
  l1_norm: ({ x }, { sizes }, order) =>
    perRow(sizes, (o) => sum(sizes.C, (j) => Math.abs(x[o + j]), order)),
  l2_norm: ({ x }, { sizes }, order) =>
    perRow(sizes, (o) => sqrtSum(sizes.C, (j) => f(x[o + j] ** 2), order)),
  manhattan_similarity: ({ x, y }, { sizes }, order) =>
    perRow(sizes, (o) => sum(sizes.C, (j) => Math.abs(f(x[o + j] - y[o + j])), order)),
  cosine_similarity: ({ x, y }, { sizes }, order) =>
    perRow(sizes, (o) => {
      const dot = sum(sizes.C, (j) => f(x[o + j] * y[o + j]), order);
      const nx = sqrtSum(sizes.C, (j) => f(x[o + j] ** 2), order);
      const ny = sqrtSum(sizes.C, (j) => f(y[o + j] ** 2), order);
      return f(dot / f(f(nx * ny) + 1e-8));
    }),
  triplet_margin_loss: ({ anchor, pos, neg }, { sizes, init }, order) =>
    perRow(sizes, (o) => {
      const dp = sqrtSum(sizes.C, (j) => f(f(anchor[o + j] - pos[o + j]) ** 2), order);
      const dn = sqrtSum(sizes.C, (j) => f(f(anchor[o + j] - neg[o + j]) ** 2), order);
      const v = f(f(dp - dn) + (init.margin as number));
      return v < 0 ? 0 : v;
    }),
  variance: ({ x }, { sizes }, order) =>
    perRow(sizes, (o) => {
      const mean = f(sum(sizes.C, (j) => x[o + j], order) / sizes.C);
      return f(sum(sizes.C, (j) => f(f(x[o + j] - mean) ** 2), order) / sizes.C);
    }),
  logsumexp: ({ x }, { sizes }, order) =>
    perRow(sizes, (o) => {
      const m = x.subarray(o, o + sizes.C).reduce((a, b) => Math.max(a, b), -Infinity);
      const shift = Number.isFinite(m) ? m : 0;
      return f(shift + f(Math.log(sum(sizes.C, (j) => f(Math.exp(f(x[o + j] - shift))), order))));
    }),
  argmax: ({ x }, { sizes }) =>
    perRow(sizes, (o) => {
      let best = 0;
      for (let j = 1; j < sizes.C; j++) if (ahead(x[o + j], j, x[o + best], best)) best = j;
      return best;
    }),
  top_k: ({ x }, { sizes: { R, C }, init }) => {
    const k = init.k as number;
    const y = new Float32Array(R * k);
    for (let i = 0; i < R; i++) {
      const idx = Array.from({ length: C }, (_, j) => j);
      idx.sort((a, b) => (ahead(x[i * C + a], a, x[i * C + b], b) ? -1 : 1));
      for (let j = 0; j < k; j++) y[i * k + j] = x[i * C + idx[j]];
    }
    return y;
  },
  cumsum_reverse: ({ x }, { sizes }, order) => scan(sizes, (i) => x[i], { order, reverse: true }),
  cumsum_exclusive: ({ x }, { sizes }, order) =>
    scan(sizes, (i) => x[i], { order, exclusive: true }),
  cumprod: ({ x }, { sizes }, order) => scan(sizes, (i) => x[i], { order, product: true }),
  masked_cumsum: ({ x, mask }, { sizes }, order) =>
    scan(sizes, (i) => f(x[i] * mask[i]), { order }),
  frobenius_norm: ({ x }, { sizes: { M, N } }, order) =>
    Float32Array.of(sqrtSum(M * N, (i) => f(x[i] ** 2), order)),
  mse_loss: ({ pred, target }, { sizes: { M, N } }, order) =>
    Float32Array.of(f(sum(M * N, (i) => f(f(pred[i] - target[i]) ** 2), order) / (M * N))),
  rms_norm: (x, p, order) => rmsNorm(x, p.sizes, p.init.eps as number, order),
  rms_norm_f16: (x, p, order) => rmsNorm(x, p.sizes, p.init.eps as number, order),
  rms_norm_bf16: (x, p, order) => rmsNorm(x, p.sizes, p.init.eps as number, order),
  softmax_f16: (x, p, order) => softmax(x, p.sizes, order),
  softmax_bf16: (x, p, order) => softmax(x, p.sizes, order),
  layer_norm_f16: (x, p, order) => layerNorm(x, p.sizes, p.init.eps as number, order),
  layer_norm_bf16: (x, p, order) => layerNorm(x, p.sizes, p.init.eps as number, order),
  hinge_loss: ({ pred, target }) =>
    pred.map((p, i) => {
      const v = f(1 - f(p * target[i]));
      return v < 0 ? 0 : v;
    }),
  huber_loss: ({ pred, target }, { init }) => {
    const d = init.delta as number;
    return pred.map((p, i) => {
      const r = f(p - target[i]);
      const a = Math.abs(r);
      return a <= d ? f(f(0.5 * r) * r) : f(d * f(a - 0.5 * d));
    });
  },
  kl_div_loss: ({ log_pred, target }) =>
    log_pred.map((p, i) => {
      const t = f(Math.abs(target[i]) + 1e-6);
      return f(t * f(f(Math.log(t)) + Math.abs(p)));
    }),
  batch_norm: ({ x, weight, bias }, { sizes: { N, C }, init }, order) => {
    const eps = init.eps as number;
    const y = new Float32Array(N * C);
    for (let c = 0; c < C; c++) {
      const mean = f(sum(N, (r) => x[r * C + c], order) / N);
      const v = f(sum(N, (r) => f(f(x[r * C + c] - mean) ** 2), order) / N);
      const inv = f(1 / f(Math.sqrt(f(v + eps))));
      for (let r = 0; r < N; r++) {
        y[r * C + c] = f(f(f(x[r * C + c] - mean) * inv) * weight[c]) + bias[c];
      }
    }
    return y;
  },
  embedding: ({ indices, table }, { sizes: { S, V, D } }) => {
    const y = new Float32Array(S * D);
    for (let s = 0; s < S; s++) {
      const row = Math.min(Math.max(indices[s], 0), V - 1);
      y.set(table.subarray(row * D, (row + 1) * D), s * D);
    }
    return y;
  },
  transpose_2d: ({ A }, { sizes: { M, N } }) => {
    const B = new Float32Array(N * M);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) B[j * M + i] = A[i * N + j];
    return B;
  },
};
