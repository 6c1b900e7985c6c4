/**
 * The element-wise group's problems re-implemented in float32 for
 * tolerance.test.ts: each step rounded to float32, exp/log/tanh/expm1/log1p
 * correctly rounded, so each entry's tolerance is shown to admit an honest
 * float32 result. The float16 and bfloat16 problems compute in float32 from
 * their (already rounded) inputs, as their kernels do.
 */
import type { SizedProblem } from "../src/registry/problem.ts";
import { erf, f } from "./_float32.ts";

type Impl = (x: Record<string, Float32Array>, p: SizedProblem) => Float32Array;

/** clip that keeps NaN, as MLX's clip does. */
const clip = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);
const softplus = (v: number) => Math.max(v, 0) + Math.log1p(Math.exp(-Math.abs(v)));
const sigmoid = (v: number) => f(1 / f(1 + f(Math.exp(-v))));
const num = (p: SizedProblem, k: string) => f(p.init[k] as number);

const gelu = ({ x }: Record<string, Float32Array>) =>
  x.map((v) => f(f(v * f(1 + f(erf(f(v / Math.SQRT2))))) / 2));
const swish = ({ x }: Record<string, Float32Array>) => x.map((v) => f(v * sigmoid(v)));

export const FLOAT32_ELEMENTWISE: Record<string, Impl> = {
  leaky_relu: ({ x }, p) => x.map((v) => (v > 0 ? v : f(num(p, "negative_slope") * v))),
  prelu: ({ x, alpha }, { sizes: { N } }) => x.map((v, i) => (v > 0 ? v : f(alpha[i % N] * v))),
  sigmoid: ({ x }) => x.map(sigmoid),
  hardsigmoid: ({ x }) => x.map((v) => clip(f(f(v / 6) + 0.5), 0, 1)),
  logsigmoid: ({ x }) => x.map((v) => f(Math.min(v, 0) - Math.log1p(Math.exp(-Math.abs(v))))),
  tanh: ({ x }) => x.map((v) => f(Math.tanh(v))),
  hardtanh: ({ x }) => x.map((v) => clip(v, -1, 1)),
  swish,
  hardswish: ({ x }) => x.map((v) => f(f(v * clip(f(v + 3), 0, 6)) / 6)),
  selu: ({ x }) => x.map((v) => f((v > 0 ? v : f(f(1.67326) * f(Math.expm1(v)))) * f(1.0507))),
  elu: ({ x }, p) => x.map((v) => (v > 0 ? v : f(num(p, "alpha") * f(Math.expm1(v))))),
  mish: ({ x }) => x.map((v) => f(v * f(Math.tanh(f(softplus(v)))))),
  softplus: ({ x }) => x.map((v) => f(softplus(v))),
  softsign: ({ x }) => x.map((v) => f(v / f(1 + Math.abs(v)))),
  abs: ({ x }) => x.map(Math.abs),
  exp: ({ x }) => x.map((v) => f(Math.exp(v))),
  log: ({ x }) => x.map((v) => f(Math.log(f(Math.abs(v) + f(1e-30))))),
  rsqrt: ({ x }) => x.map((v) => f(1 / Math.sqrt(Math.abs(v)))),
  clip: ({ x }, p) => x.map((v) => clip(v, num(p, "lo"), num(p, "hi"))),
  where: ({ condition, a, b }) => a.map((v, i) => (condition[i] > 0.5 ? v : b[i])),
  matrix_add: ({ A, B }) => A.map((v, i) => f(v + B[i])),
  matrix_scale: ({ x }, p) => x.map((v) => f(num(p, "alpha") * v)),
  gelu_f16: gelu,
  gelu_bf16: gelu,
  swish_f16: swish,
  swish_bf16: swish,
};
