/**
 * The element-wise entries catch the kernels a first draft gets wrong: a
 * clamp that drops NaN, a softplus that overflows, a PReLU that assumes
 * rows of a multiple of 4. Each broken kernel is right on the problem's own
 * distribution or at the bench size, so the test size or an edge trial is
 * what must tell. Real CLI, real simulator, real MLX worker.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeWorkspace } from "./_workspace.ts";
import { metalbench } from "./_cli.ts";
import { parseBenchStream } from "../src/api/events.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const NAMES = ["hardtanh", "softplus", "prelu"];

/** hardtanh with Metal's clamp: clamp(NaN, -1, 1) is not NaN on the GPU. */
const HARDTANH_CLAMP = `#include <metal_stdlib>
using namespace metal;
kernel void hardtanh_f32(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                         constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  for (uint j = gid * 4; j < min(gid * 4 + 4, n); ++j) y[j] = fmin(fmax(x[j], -1.0f), 1.0f);
}
`;

/** softplus as log(1 + exp(x)): right on N(0, 1), +Inf once exp(x) overflows. */
const SOFTPLUS_NAIVE = `#include <metal_stdlib>
using namespace metal;
kernel void softplus_f32(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                         constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  for (uint j = gid * 4; j < min(gid * 4 + 4, n); ++j) y[j] = log(1.0f + exp(x[j]));
}
`;

/** PReLU whose 4 lanes always take the slopes alpha[c..c+3] of one row (needs N % 4 == 0). */
const PRELU_ALIGNED_ONLY = `#include <metal_stdlib>
using namespace metal;
kernel void prelu_f32(device const float* x [[buffer(0)]], device const float* alpha [[buffer(1)]],
                      device float* y [[buffer(2)]], constant uint& n [[buffer(3)]],
                      constant uint& N [[buffer(4)]], uint gid [[thread_position_in_grid]]) {
  const uint i = gid * 4;
  const uint c = i % N;
  for (uint j = 0; j < 4 && i + j < n; ++j) {
    const float v = x[i + j];
    y[i + j] = v > 0.0f ? v : alpha[min(c + j, N - 1)] * v;
  }
}
`;

Deno.test("element-wise entries catch a NaN-dropping clamp, an overflowing softplus and a PReLU for aligned rows only", async () => {
  const suite = JSON.parse(
    await Deno.readTextFile(join(ROOT, "registry/common_elementwise.json")),
  );
  const files: Record<string, string> = {
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: Object.fromEntries(NAMES.map((n) => [n, suite.problems[n]])),
    }),
    "kernels/common/hardtanh.metal": HARDTANH_CLAMP,
    "kernels/common/softplus.metal": SOFTPLUS_NAIVE,
    "kernels/common/prelu.metal": PRELU_ALIGNED_ONLY,
  };
  for (const n of NAMES) {
    files[`references/common/${n}.py`] = await Deno.readTextFile(
      join(ROOT, `references/common/${n}.py`),
    );
  }
  const ws = await makeWorkspace(files);
  try {
    const run = ["--backend", "sim", "--no-session", "--json", "--iters", "2", "--warmup", "0"];
    const out = await metalbench(["--all", "--workspace", ws, ...run]);
    assert.equal(out.code, 1, out.stderr);
    const c = new Map(
      parseBenchStream(out.stdout).records.map((r) => [r.kernel, r.correctness]),
    );
    assert.equal(c.get("hardtanh")!.status, "incorrect");
    assert.match(c.get("hardtanh")!.detail, /edge trial 'nonfinite'.*reference NaN/);
    assert.equal(c.get("softplus")!.status, "incorrect");
    assert.match(c.get("softplus")!.detail, /edge trial 'large'/);
    assert.equal(c.get("prelu")!.status, "incorrect");
    assert.match(c.get("prelu")!.detail, /^output 'y'/);
    // Only the edge trials tell the first two: right on the problem's own inputs.
    for (const k of ["hardtanh", "softplus"]) {
      const trials = c.get(k)!.trials.filter((t) => t.phase === "trial");
      assert.ok(
        trials.every((t) => t.outputs.every((o) => o.comparison.within === o.comparison.elements)),
        `${k}: ${c.get(k)!.detail}`,
      );
    }
    // The PReLU is right where rows are a multiple of 4 (the bench size): the test size tells.
    const bench = await metalbench(["prelu", "--workspace", ws, ...run, "--size", "bench"]);
    assert.equal(bench.code, 0, bench.stderr);
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});
