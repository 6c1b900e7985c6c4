/**
 * Seeded inputs: each tensor's values are drawn from its registry
 * distribution by a generator seeded from (run seed, tensor name), so a
 * tensor does not change when another is added, and trial t of a run uses
 * seed + t. Made once per trial and fed to both the kernel and MLX.
 */
import { xoroshiro128plus } from "pure-rand/generator/xoroshiro128plus";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import type { ResolvedDistribution, ResolvedTensor } from "../registry/problem.ts";
import { encodeTensor } from "../reference/tensor_io.ts";

/** A 32-bit FNV-1a hash, to give every tensor its own stream. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

export function draw(dist: ResolvedDistribution, n: number, seed: number): Float64Array {
  const rng = xoroshiro128plus(seed);
  const out = new Float64Array(n);
  switch (dist.kind) {
    case "normal":
      // Box-Muller, two values per pair of uniforms.
      for (let i = 0; i < n; i += 2) {
        const u1 = 1 - uniformFloat64(rng); // (0, 1]: log is finite
        const u2 = uniformFloat64(rng);
        const r = Math.sqrt(-2 * Math.log(u1));
        out[i] = dist.mean + dist.std * r * Math.cos(2 * Math.PI * u2);
        if (i + 1 < n) out[i + 1] = dist.mean + dist.std * r * Math.sin(2 * Math.PI * u2);
      }
      break;
    case "uniform":
      for (let i = 0; i < n; i++) {
        out[i] = dist.low + (dist.high - dist.low) * uniformFloat64(rng);
      }
      break;
    case "randint":
      for (let i = 0; i < n; i++) {
        out[i] = dist.low + Math.floor((dist.high - dist.low) * uniformFloat64(rng));
      }
      break;
    case "bernoulli":
      for (let i = 0; i < n; i++) out[i] = uniformFloat64(rng) < dist.p ? 1 : 0;
      break;
    case "constant":
      out.fill(dist.value);
      break;
  }
  return out;
}

/** The generator seed of one tensor for run seed `seed`. */
export const tensorSeed = (seed: number, name: string) => fnv1a(`${seed}:${name}`);

/** The bytes of `tensor` for run seed `seed`. */
export function makeTensor(tensor: ResolvedTensor, seed: number): Uint8Array<ArrayBuffer> {
  const values = draw(tensor.init, tensor.numel, tensorSeed(seed, tensor.name));
  return encodeTensor(values, tensor.dtype);
}

/** A fresh seed for a run: unknown to the kernel until the run draws it. */
export function freshSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0] & 0x7fffffff;
}
