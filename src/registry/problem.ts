/**
 * A problem at a concrete size: every expression evaluated, every binding
 * checked. This is what the benchmark, the backends and the MLX worker see.
 */
import { evaluate, evaluateInt, ExprError, namesIn } from "./expr.ts";
import type { CustomEntry, Distribution, Dtype, ProblemSet, ScalarDtype } from "./schema.ts";
import { dtypeBytes } from "./templates.ts";

export type SizeName = "bench" | "test" | "large";

/** Whether the entry defines `size` (`large` is optional: memory-bound problems only). */
export const hasSize = (entry: Pick<CustomEntry, "sizes">, size: SizeName): boolean =>
  entry.sizes[size] !== undefined;

export type ResolvedDistribution =
  | { kind: "normal"; mean: number; std: number }
  | { kind: "uniform"; low: number; high: number }
  | { kind: "randint"; low: number; high: number }
  | { kind: "bernoulli"; p: number }
  | { kind: "constant"; value: number };

export interface ResolvedTensor {
  name: string;
  role: "input" | "output" | "intermediate";
  shape: number[];
  dtype: Dtype;
  init: ResolvedDistribution;
  numel: number;
  bytes: number;
}

export type FunctionConstantValue = number | boolean | (number | boolean)[];

export interface ResolvedDispatch {
  function: string;
  buffers: { index: number; tensor: string }[];
  scalars: { index: number; dtype: ScalarDtype; value: number }[];
  threadgroupMemory: { index: number; bytes: number }[];
  grid: [number, number, number];
  threadgroup: [number, number, number];
  mode: "threads" | "threadgroups";
  /** Function constants, by name or index; a list is a vector constant's components. */
  constants: Record<string, FunctionConstantValue>;
}

/** The comparison bound: |k - r| <= rtol*|r| + stol*scale + atol (schema.ts, Tolerance). */
export interface Tolerances {
  rtol: number;
  stol: number;
  atol: number;
  /** The scale's expression (sizes, numeric init, rms_<input>); absent: the output's RMS. */
  scale?: string;
}

export interface SizedProblem {
  name: string;
  set: ProblemSet;
  size: SizeName;
  sizes: Record<string, number>;
  init: Record<string, number | string | boolean>;
  inputs: ResolvedTensor[];
  outputs: ResolvedTensor[];
  intermediates: ResolvedTensor[];
  dispatches: ResolvedDispatch[];
  tolerance: Tolerances;
  /** Edge-value classes left out, with the registry's reason. */
  edgeSkips: Partial<Record<string, string>>;
  /** Compile with fast math (the registry's opt-in; off by default). */
  fastMath: boolean;
  flops: number;
  bytes: number;
}

/**
 * Default comparison tolerances, by the output's dtype. rtol is below the
 * next lower precision's rounding error (float16 and bfloat16 round to
 * 4.9e-4 and 3.9e-3 relative), and there is no absolute allowance beyond
 * the dtype's smallest normal (a GPU may flush subnormals to zero): an
 * output of small values is judged relative to its own scale, so a float32
 * problem computed in half fails however small its outputs are. stol leaves
 * room for float32 sums taken in another order (measured at most 3.2e-6 of
 * the RMS on the suite, at both sizes). Integers are exact.
 */
export const DEFAULT_TOLERANCE: Record<Dtype, Tolerances> = {
  float32: { rtol: 1e-4, stol: 1e-5, atol: 2 ** -126 },
  float16: { rtol: 1e-2, stol: 1e-3, atol: 2 ** -14 },
  bfloat16: { rtol: 2e-2, stol: 1e-2, atol: 2 ** -126 },
  int32: { rtol: 0, stol: 0, atol: 0 },
  uint32: { rtol: 0, stol: 0, atol: 0 },
};

/** Names a tolerance's scale expression may use besides rms_<input>. */
export const scaleEnv = (p: Pick<SizedProblem, "sizes" | "init">): Record<string, number> => {
  const env: Record<string, number> = { ...p.sizes };
  for (const [k, v] of Object.entries(p.init)) if (typeof v === "number") env[k] = v;
  return env;
};

/**
 * The entry's tolerance over the dtype's defaults: rtol, stol and atol
 * evaluated at this size (`env`), the scale expression checked against the
 * names it may use at comparison time (`later`).
 */
function resolveTolerance(
  given: CustomEntry["tolerance"],
  dtype: Dtype,
  env: Record<string, number>,
  later: Record<string, number>,
  inputs: ResolvedTensor[],
): Tolerances {
  const tol: Tolerances = { ...DEFAULT_TOLERANCE[dtype] };
  for (const k of ["rtol", "stol", "atol"] as const) {
    const v = given?.[k];
    if (v === undefined) continue;
    tol[k] = evaluate(v, env);
    if (!(tol[k] >= 0) || !Number.isFinite(tol[k])) {
      throw new ProblemError(`tolerance.${k} "${v}" is ${tol[k]}, not a non-negative number`);
    }
  }
  if (given?.scale !== undefined) {
    tol.scale = given.scale;
    const rms = new Set(inputs.map((t) => `rms_${t.name}`));
    for (const n of namesIn(tol.scale)) {
      if (!(n in later) && !rms.has(n)) {
        throw new ProblemError(
          `tolerance.scale "${tol.scale}" uses '${n}', which is neither a size, a numeric init value nor rms_<input>`,
        );
      }
    }
    evaluate(tol.scale, { ...later, ...Object.fromEntries([...rms].map((n) => [n, 1])) });
  }
  return tol;
}

export const MAX_THREADS_PER_THREADGROUP = 1024;

export class ProblemError extends Error {
  override name = "ProblemError";
}

function resolveDistribution(d: Distribution, env: Record<string, number>): ResolvedDistribution {
  if (d.kind === "randint") {
    return { kind: "randint", low: evaluate(d.low, env), high: evaluate(d.high, env) };
  }
  return d;
}

const extent3 = (dims: (number | string)[], env: Record<string, number>, what: string) => {
  const v = dims.map((d, i) => evaluateInt(d, env, `${what}[${i}]`));
  while (v.length < 3) v.push(1);
  return v as [number, number, number];
};

/** Evaluate `entry` at one of its sizes and check that it is consistent. */
export function sizeProblem(
  name: string,
  set: ProblemSet,
  entry: CustomEntry,
  size: SizeName,
): SizedProblem {
  try {
    if (!hasSize(entry, size)) throw new ProblemError(`has no '${size}' size`);
    const env = expressionEnv(entry, size);
    const tensor = (role: ResolvedTensor["role"]) => (t: CustomEntry["inputs"][number]) => {
      const shape = t.shape.map((d, i) => evaluateInt(d, env, `${t.name}.shape[${i}]`));
      const numel = shape.reduce((a, b) => a * b, 1);
      return {
        name: t.name,
        role,
        shape,
        dtype: t.dtype,
        init: resolveDistribution(t.init, env),
        numel,
        bytes: numel * dtypeBytes(t.dtype),
      };
    };
    const inputs = entry.inputs.map(tensor("input"));
    const outputs = entry.outputs.map(tensor("output"));
    const intermediates = entry.intermediates.map(tensor("intermediate"));
    const all = [...inputs, ...outputs, ...intermediates];
    const names = new Set<string>();
    for (const t of all) {
      if (names.has(t.name)) throw new ProblemError(`tensor '${t.name}' is declared twice`);
      names.add(t.name);
    }

    const written = new Set<string>();
    const dispatches = entry.dispatches.map((d, di): ResolvedDispatch => {
      const where = `dispatch ${di} (${d.function})`;
      const indices = new Set<number>();
      const claim = (index: number) => {
        if (indices.has(index)) throw new ProblemError(`${where} binds buffer(${index}) twice`);
        indices.add(index);
      };
      for (const b of d.buffers) {
        claim(b.index);
        if (!names.has(b.tensor)) {
          throw new ProblemError(`${where} binds unknown tensor '${b.tensor}'`);
        }
        written.add(b.tensor);
      }
      const scalars = d.scalars.map((s) => {
        claim(s.index);
        const value = evaluate(s.value, env);
        if (s.dtype === "uint32" || s.dtype === "int32") {
          if (!Number.isInteger(value)) {
            throw new ProblemError(
              `${where}: scalar buffer(${s.index}) = ${value} is not an integer`,
            );
          }
        }
        return { index: s.index, dtype: s.dtype, value };
      });
      const threadgroupMemory = d.threadgroupMemory.map((m) => ({
        index: m.index,
        bytes: evaluateInt(m.bytes, env, `${where} threadgroup(${m.index})`),
      }));
      const grid = extent3(d.grid, env, `${where} grid`);
      const threadgroup = extent3(d.threadgroup, env, `${where} threadgroup`);
      const threads = threadgroup[0] * threadgroup[1] * threadgroup[2];
      if (threads === 0 || threads > MAX_THREADS_PER_THREADGROUP) {
        throw new ProblemError(
          `${where}: threadgroup of ${threads} threads (must be 1..${MAX_THREADS_PER_THREADGROUP})`,
        );
      }
      if (grid.some((g) => g === 0)) throw new ProblemError(`${where}: empty grid ${grid}`);
      const value = (v: boolean | number | string) => typeof v === "boolean" ? v : evaluate(v, env);
      const constants = Object.fromEntries(
        Object.entries(d.constants).map((
          [k, v],
        ) => [k, Array.isArray(v) ? v.map(value) : value(v)]),
      );
      return { ...d, scalars, threadgroupMemory, grid, threadgroup, constants };
    });
    for (const t of [...outputs, ...intermediates]) {
      if (!written.has(t.name)) {
        throw new ProblemError(`${t.role} '${t.name}' is bound by no dispatch`);
      }
    }

    const init: Record<string, number | string | boolean> = {};
    for (const [k, v] of Object.entries(entry.init)) {
      // A string init value is a size expression when it evaluates; else literal text.
      init[k] = typeof v === "string" ? tryEvaluate(v, env) ?? v : v;
    }

    return {
      name,
      set,
      size,
      sizes: { ...entry.sizes[size]! },
      init,
      inputs,
      outputs,
      intermediates,
      dispatches,
      tolerance: resolveTolerance(
        entry.tolerance,
        // Integer outputs are exact whatever this says (bench/compare.ts, toleranceFor).
        (outputs.find((t) => !t.dtype.includes("int")) ?? outputs[0]).dtype,
        env,
        scaleEnv({ sizes: entry.sizes[size]!, init }),
        inputs,
      ),
      edgeSkips: entry.edgeTrials.skip,
      fastMath: entry.fastMath,
      flops: evaluate(entry.flops, env),
      bytes: evaluate(entry.bytes, env),
    };
  } catch (e) {
    if (e instanceof ExprError || e instanceof ProblemError) {
      throw new ProblemError(`${name} (${size} size): ${e.message}`);
    }
    throw e;
  }
}

/** Sizes, then numeric init values, then derived sizes (each may use those before it). */
function expressionEnv(entry: CustomEntry, size: SizeName): Record<string, number> {
  const env: Record<string, number> = { ...entry.sizes[size]! };
  for (const [k, v] of Object.entries(entry.init)) {
    if (typeof v === "number" && !(k in env)) env[k] = v;
  }
  for (const [k, v] of Object.entries(entry.derived)) {
    if (k in env) throw new ProblemError(`derived size '${k}' shadows a size or init value`);
    env[k] = evaluate(v, env);
  }
  return env;
}

function tryEvaluate(v: string, env: Record<string, number>): number | undefined {
  try {
    return evaluate(v, env);
  } catch {
    return undefined;
  }
}
