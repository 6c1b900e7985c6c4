/**
 * Edge-value trials: inputs a problem's own distribution never produces,
 * so a kernel that is right only on well-behaved data fails. A softmax
 * without the max subtraction overflows on large magnitudes; a relu that
 * turns NaN into 0 differs where the reference propagates it. Only float
 * inputs change (indices and masks keep their distribution); a registry
 * entry opts out of a class only with a written reason.
 */
import type { ResolvedTensor, SizedProblem } from "../registry/problem.ts";
import { EDGE_CLASSES, type EdgeClass } from "../registry/schema.ts";
import { encodeTensor } from "../reference/tensor_io.ts";
import { draw, tensorSeed } from "./inputs.ts";

export { EDGE_CLASSES, type EdgeClass };

export const EDGE_DESCRIPTIONS: Record<EdgeClass, string> = {
  zeros: "every float input 0",
  negative: "float inputs negated to -|x|",
  large: `float inputs scaled by ${1e3}`,
  nonfinite: "NaN, +Inf and -Inf at scattered positions of the float inputs",
};

const FLOAT_DTYPES = new Set(["float32", "float16", "bfloat16"]);

export const isFloatTensor = (t: ResolvedTensor) => FLOAT_DTYPES.has(t.dtype);

/** The classes this problem runs: all, less its opt-outs; none without a float input. */
export function edgeClasses(problem: SizedProblem): EdgeClass[] {
  if (!problem.inputs.some(isFloatTensor)) return [];
  return EDGE_CLASSES.filter((c) => !(c in problem.edgeSkips));
}

/** One input of an edge trial: the problem's draw for `seed`, transformed by `cls`. */
export function makeEdgeTensor(
  tensor: ResolvedTensor,
  seed: number,
  cls: EdgeClass,
): Uint8Array<ArrayBuffer> {
  const values = draw(tensor.init, tensor.numel, tensorSeed(seed, tensor.name));
  if (isFloatTensor(tensor)) transform(values, cls, seed);
  return encodeTensor(values, tensor.dtype);
}

function transform(values: Float64Array, cls: EdgeClass, seed: number) {
  switch (cls) {
    case "zeros":
      values.fill(0);
      return;
    case "negative":
      for (let i = 0; i < values.length; i++) values[i] = -Math.abs(values[i]);
      return;
    case "large":
      // Large enough that exp overflows without a max subtraction, small
      // enough that squares and dot products stay finite in float32.
      for (let i = 0; i < values.length; i++) values[i] *= 1e3;
      return;
    case "nonfinite": {
      // About one element in 61 becomes NaN, +Inf or -Inf; where depends on the seed.
      const specials = [NaN, Infinity, -Infinity];
      const offset = Math.abs(seed) % 61;
      for (let i = offset, k = 0; i < values.length; i += 61, k++) values[i] = specials[k % 3];
      return;
    }
  }
}
