/**
 * Launch overhead: the time of a dispatch that does nothing (one
 * threadgroup of 32 threads, an empty body), timed through the same harness
 * and by the same clock as the kernel, so "how much of this kernel's time
 * is just launching it" is a measured ratio. Measured once per process for
 * each backend and clock.
 */
import { join } from "node:path";
import type { Harness } from "../../bench/harness.ts";
import type { Problem } from "../../registry/load.ts";
import { RegistryFile } from "../../registry/schema.ts";
import { expand } from "../../registry/templates.ts";
import type { Clock } from "../../store/schema.ts";

const EMPTY_KERNEL = `#include <metal_stdlib>
using namespace metal;
kernel void empty_dispatch(device const float* x [[buffer(0)]],
                           device float* y [[buffer(1)]],
                           constant uint& n [[buffer(2)]],
                           uint gid [[thread_position_in_grid]]) {}
`;

/** Never run (the measurement needs no reference outputs); the harness wants the file. */
const EMPTY_REFERENCE = `import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    def __call__(self, x: mx.array) -> mx.array:
        return x
`;

const ONE_GROUP = { M: 1, N: 32 };

function emptyProblem(dir: string): Problem {
  const file = RegistryFile.parse({
    set: "common",
    problems: {
      empty_dispatch: {
        template: "elementwise",
        description: "an empty dispatch: launch overhead",
        function: "empty_dispatch",
        vector: 1,
        threadgroup: 32,
        flopsPerElement: 0,
        sizes: { bench: ONE_GROUP, test: ONE_GROUP },
      },
    },
  });
  const entry = file.problems.empty_dispatch;
  return {
    name: "empty_dispatch",
    set: "common",
    template: entry.template,
    description: entry.description,
    entry: expand(entry),
    referencePath: join(dir, "empty_dispatch.py"),
    kernelPath: join(dir, "empty_dispatch.metal"),
    variants: [],
    registryFile: "(built in: launch overhead)",
  };
}

const cache = new Map<string, Promise<number | null>>();

export interface LaunchOverheadOptions {
  clock: Clock;
  warmup?: number;
  iters?: number;
}

/**
 * The median per-launch time of an empty dispatch, or null when there is no
 * kernel backend or the dispatch could not be timed.
 */
export function measureLaunchOverhead(
  harness: Harness,
  opts: LaunchOverheadOptions,
): Promise<number | null> {
  const backend = harness.backend;
  if (!backend) return Promise.resolve(null);
  const key = [backend.kind, backend.bucket, opts.clock.mode, opts.clock.batch].join("|");
  let p = cache.get(key);
  if (!p) {
    p = measure(harness, opts);
    cache.set(key, p);
    // A failure (an abort, say) is not cached: the next caller measures again.
    p.then((v) => v === null && cache.delete(key), () => cache.delete(key));
  }
  return p;
}

async function measure(harness: Harness, opts: LaunchOverheadOptions): Promise<number | null> {
  const dir = await Deno.makeTempDir({ prefix: "metalbench-empty-" });
  try {
    const problem = emptyProblem(dir);
    await Deno.writeTextFile(problem.kernelPath, EMPTY_KERNEL);
    await Deno.writeTextFile(problem.referencePath, EMPTY_REFERENCE);
    const [out] = await harness.benchmark(problem, [() => ({
      path: problem.kernelPath,
      variant: "flat",
      text: EMPTY_KERNEL,
      metallib: null,
    })], {
      // Timing only: no reference run, no MLX timing; its correctness stays "unchecked".
      mode: "metal",
      size: "test",
      seed: 1,
      seedSource: "user",
      trials: 1,
      warmup: opts.warmup ?? 5,
      iters: opts.iters ?? 40,
      clock: opts.clock,
      coldStart: false,
      target: "speed",
    });
    return out?.record.kernelTiming?.wall.median ?? null;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
