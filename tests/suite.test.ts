/**
 * The problem suite itself: every problem of this repository's registry runs
 * through the real pipeline (CLI, simulator bridge, MLX worker) at its test
 * size and must be correct. One `--all --json` run serves every test (one
 * Python start, one MLX import); each problem is its own Deno.test so a
 * failure names the problem and says why.
 *
 * Every problem also runs every edge-value trial (zeros, negatives, large
 * magnitudes, NaN/Inf) unless its registry entry says why not; and the two
 * classic edge-value bugs, a softmax without the max subtraction and a relu
 * that turns NaN into 0, must fail on the suite's own entries.
 *
 * Needs the simulator bridge (make -C ffi sim) and a Python with MLX
 * (METALBENCH_PYTHON, else the managed env of `metalbench setup`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { EDGE_CLASSES } from "../src/registry/schema.ts";
import { loadRegistry, problemsInOrder } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";
import type { RunRecord } from "../src/store/schema.ts";
import { metalbench } from "./_cli.ts";
import { makeWorkspace } from "./_workspace.ts";
import { parseBenchStream } from "../src/api/events.ts";

const ROOT = new URL("../", import.meta.url).pathname;

const names = problemsInOrder(loadRegistry(workspaceAt(ROOT))).map((p) => p.name);

interface SuiteRun {
  code: number;
  stderr: string;
  runs: Map<string, RunRecord>;
}

let suite: Promise<SuiteRun> | undefined;

/** The whole suite on the simulator, run once on first use. */
function runSuite(): Promise<SuiteRun> {
  suite ??= (async () => {
    const out = await metalbench([
      "--all",
      "--workspace",
      ROOT,
      "--backend",
      "sim",
      "--size",
      "test",
      "--no-session",
      "--json",
      "--iters",
      "2",
      "--warmup",
      "0",
      "--trials",
      "2",
      "--batch",
      "1",
    ]);
    const { stdout, stderr } = out;
    const runs = new Map<string, RunRecord>();
    if (stdout.trim()) {
      for (const r of parseBenchStream(stdout).records) runs.set(r.kernel, r);
    }
    return { code: out.code, stderr, runs };
  })();
  return suite;
}

Deno.test("the registry has problems", () => {
  assert.ok(names.length > 0);
});

for (const name of names) {
  Deno.test(`suite: ${name} is correct on the simulator at its test size`, async () => {
    const { code, stderr, runs } = await runSuite();
    const r = runs.get(name);
    assert.ok(r, `no run record for ${name} (metalbench exit ${code}): ${stderr.trim()}`);
    assert.equal(r.error, null, `${name}: ${r.error?.kind}: ${r.error?.message}`);
    assert.equal(
      r.correctness.status,
      "correct",
      `${name}: ${r.correctness.status}: ${r.correctness.detail}`,
    );
    assert.equal(r.backend, "sim");
    assert.ok(r.correctness.trials.length >= 2, `${name}: ${r.correctness.trials.length} checks`);
  });

  Deno.test(`suite: ${name} ran every edge-value class, or its entry says why not`, async () => {
    const r = (await runSuite()).runs.get(name);
    assert.ok(r, `no run record for ${name}`);
    const entry = problemsInOrder(loadRegistry(workspaceAt(ROOT))).find((p) => p.name === name)!
      .entry;
    for (const cls of EDGE_CLASSES) {
      const ran = r.correctness.trials.some((t) => t.phase === "edge" && t.edge === cls);
      const why = entry.edgeTrials.skip[cls];
      if (why) assert.ok(!ran, `${name}: '${cls}' ran although the entry skips it`);
      else {assert.ok(
          ran,
          `${name}: edge class '${cls}' did not run (${JSON.stringify(r.correctness.skipped)})`,
        );}
    }
  });
}

/** relu as the GPU's max() has it: max(NaN, 0) is 0, where MLX keeps NaN. */
const RELU_NAN_TO_ZERO = `#include <metal_stdlib>
using namespace metal;
kernel void relu_f32(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                     constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  for (uint j = gid * 4; j < min(gid * 4 + 4, n); ++j) y[j] = max(x[j], 0.0f);
}
`;

/** Softmax as exp(x) / sum(exp(x)): right on N(0, 1) inputs, Inf / Inf once x is large. */
const SOFTMAX_NO_MAX = `#include <metal_stdlib>
using namespace metal;
kernel void softmax_f32(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
                        constant uint& C [[buffer(2)]], uint r [[threadgroup_position_in_grid]],
                        uint tid [[thread_index_in_threadgroup]],
                        uint n [[threads_per_threadgroup]]) {
  threadgroup float red[1024];
  device const float* row = x + ulong(r) * C;
  float s = 0.0f;
  for (uint i = tid; i < C; i += n) s += exp(row[i]);
  red[tid] = s;
  threadgroup_barrier(mem_flags::mem_threadgroup);
  for (uint w = n / 2; w > 0; w >>= 1) {
    if (tid < w) red[tid] += red[tid + w];
    threadgroup_barrier(mem_flags::mem_threadgroup);
  }
  for (uint i = tid; i < C; i += n) y[ulong(r) * C + i] = exp(row[i]) / red[0];
}
`;

Deno.test("suite entries catch a softmax without the max subtraction and a relu that turns NaN into 0", async () => {
  const suite = JSON.parse(await Deno.readTextFile(join(ROOT, "registry/common.json")));
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: { relu: suite.problems.relu, softmax: suite.problems.softmax },
    }),
    "kernels/common/relu.metal": RELU_NAN_TO_ZERO,
    "kernels/common/softmax.metal": SOFTMAX_NO_MAX,
    "references/common/relu.py": await Deno.readTextFile(join(ROOT, "references/common/relu.py")),
    "references/common/softmax.py": await Deno.readTextFile(
      join(ROOT, "references/common/softmax.py"),
    ),
  });
  try {
    const out = await metalbench([
      "--all",
      "--workspace",
      ws,
      "--backend",
      "sim",
      "--no-session",
      "--json",
      "--iters",
      "2",
      "--warmup",
      "0",
    ]);
    assert.equal(out.code, 1, out.stderr);
    const runs = new Map(
      parseBenchStream(out.stdout).records.map((r) => [r.kernel, r]),
    );
    const relu = runs.get("relu")!.correctness;
    assert.equal(relu.status, "incorrect", relu.detail);
    assert.match(relu.detail, /edge trial 'nonfinite'.*NaN\/Inf mismatch.*kernel 0, reference NaN/);
    const softmax = runs.get("softmax")!.correctness;
    assert.equal(softmax.status, "incorrect", softmax.detail);
    assert.match(softmax.detail, /edge trial 'large'.*NaN\/Inf mismatch/);
    // Right on the problem's own distribution: only the edge trial tells.
    for (const c of [relu, softmax]) {
      assert.ok(
        c.trials.filter((t) => t.phase === "trial").every((t) =>
          t.outputs.every((o) => o.comparison.within === o.comparison.elements)
        ),
        c.detail,
      );
    }
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});
