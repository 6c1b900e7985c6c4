/**
 * The benchmark pipeline end to end on the simulator with the real MLX
 * worker: buggy kernels and kernels that try to cheat are each caught, the
 * run goes on past faults and hangs, and concurrent runs keep a valid
 * leaderboard.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeWorkspace } from "./_workspace.ts";
import { metalbench } from "./_cli.ts";
import { makeTensor } from "../src/bench/inputs.ts";
import { sizeProblem } from "../src/registry/problem.ts";
import { expand } from "../src/registry/templates.ts";
import { RegistryEntry } from "../src/registry/schema.ts";
import type { RunRecord } from "../src/store/schema.ts";
import { Session } from "../src/store/schema.ts";
import { parseBenchStream } from "../src/api/events.ts";

const RELU_PY = await Deno.readTextFile(new URL("../references/common/relu.py", import.meta.url));
const RELU_METAL = await Deno.readTextFile(
  new URL("../kernels/common/relu.metal", import.meta.url),
);

const NEIGHBOR_MAX_PY = `import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    def __call__(self, x):
        pairs = x.reshape(-1, 2)
        m = mx.max(pairs, axis=1, keepdims=True)
        return mx.broadcast_to(m, pairs.shape).reshape(x.shape)
`;

/** A one-element-per-thread kernel body over x, y, n. */
/** relu as MLX computes it: NaN stays NaN (Metal's max(x, 0.0f) would give 0). */
const RELU = "inline float relu(float v) { return v < 0.0f ? 0.0f : v; }";

const scalarKernel = (body: string, xQualifier = "const ") =>
  `#include <metal_stdlib>
using namespace metal;
${RELU}
kernel void k(device ${xQualifier}float* x [[buffer(0)]], device float* y [[buffer(1)]],
              constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  if (gid >= n) return;
  ${body}
}
`;

const neighborMax = (barrier: boolean) =>
  `#include <metal_stdlib>
using namespace metal;
// y[i] = max(x[i], x[i ^ 1]) with NaN kept (as mx.maximum): each thread stages
// its element in threadgroup memory and reads its neighbour's, which needs a
// barrier in between.
kernel void k(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
              constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]],
              uint lid [[thread_position_in_threadgroup]]) {
  threadgroup float staged[256];
  staged[lid] = x[gid];
  ${barrier ? "threadgroup_barrier(mem_flags::mem_threadgroup);" : "// (barrier missing)"}
  const float a = staged[lid], b = staged[lid ^ 1];
  y[gid] = (a > b || isnan(a)) ? a : b;
}
`;

/** The first input value of seed 0, as a kernel that memorised it would know it. */
function firstValueOfSeed0(): string {
  const entry = expand(
    RegistryEntry.parse({ template: "elementwise", description: "x", function: "k" }),
  );
  const x = sizeProblem("p", "common", entry, "test").inputs[0];
  const v = new Float32Array(makeTensor(x, 0).buffer)[0];
  return `${v.toPrecision(9)}f`;
}

const SCALED_RELU_PY = `import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def __call__(self, x):
        return mx.maximum(x, 0) * self.scale
`;

/** relu scaled by a function constant that the registry sets from the Model's init. */
const SCALED_RELU = `#include <metal_stdlib>
using namespace metal;
${RELU}
constant float scale [[function_constant(0)]];
kernel void k(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
              constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  if (gid < n) y[gid] = relu(x[gid]) * scale;
}
`;

interface Case {
  kernel: string;
  expect: RunRecord["correctness"]["status"];
  detail?: RegExp;
  reference?: string;
  vector?: number;
  /** Test size, when the default 3x1001 does not suit (pairs need an even count). */
  test?: { M: number; N: number };
  /** Extra registry fields. */
  entry?: Record<string, unknown>;
}

const CASES: Record<string, Case> = {
  good_relu: { kernel: RELU_METAL.replace("relu_f32", "k"), expect: "correct", vector: 4 },
  good_neighbor_max: {
    kernel: neighborMax(true),
    expect: "correct",
    reference: NEIGHBOR_MAX_PY,
    test: { M: 4, N: 1000 },
  },
  good_function_constant: {
    kernel: SCALED_RELU,
    expect: "correct",
    reference: SCALED_RELU_PY,
    entry: { init: { scale: 2.5 }, constants: { scale: "scale" } },
  },
  cheat_writes_nothing: {
    kernel: scalarKernel("(void)x; (void)y;"),
    expect: "incorrect",
    detail: /0\.00% of 3003 elements within tolerance.*NaN\/Inf mismatch/,
  },
  cheat_writes_half: {
    kernel: scalarKernel("if (gid < n / 2) y[gid] = relu(x[gid]);"),
    expect: "incorrect",
    detail: /49\.98% of 3003/,
  },
  cheat_writes_constant: { kernel: scalarKernel("y[gid] = 0.25f;"), expect: "incorrect" },
  cheat_changes_input: {
    kernel: scalarKernel("y[gid] = relu(x[gid]); x[gid] = 0.0f;", ""),
    expect: "incorrect",
    detail: /modified its input\(s\) x/,
  },
  cheat_first_seed_only: {
    kernel: scalarKernel(`y[gid] = x[0] == ${firstValueOfSeed0()} ? relu(x[gid]) : 0.0f;`),
    expect: "incorrect",
    detail: /trial seed \d+/,
  },
  bug_wrong_index: {
    kernel: scalarKernel("y[gid] = relu(x[gid > 0 ? gid - 1 : 0]);"),
    expect: "incorrect",
  },
  bug_missing_barrier: {
    kernel: neighborMax(false),
    expect: "incorrect",
    reference: NEIGHBOR_MAX_PY,
    test: { M: 4, N: 1000 },
  },
  bug_endless_loop: {
    kernel: scalarKernel("while (true) { y[gid] += 1.0f; }"),
    expect: "fault",
    detail: /did not finish|time/,
  },
  bug_writes_out_of_bounds: {
    kernel: scalarKernel("y[gid + 100000000u] = 1.0f;"),
    expect: "fault",
  },
  bug_does_not_compile: {
    kernel: scalarKernel("y[gid] = max(x[gid] 0.0f);"),
    expect: "compile-error",
    detail: /^bug_does_not_compile\.metal:\d+:\d+: error: /,
  },
};

async function suiteWorkspace(): Promise<string> {
  const problems: Record<string, unknown> = {};
  const files: Record<string, string> = {};
  for (const [name, c] of Object.entries(CASES)) {
    problems[name] = {
      template: "elementwise",
      description: name,
      function: "k",
      vector: c.vector ?? 1,
      ...(c.test ? { sizes: { bench: { M: 16, N: 16384 }, test: c.test } } : {}),
      ...c.entry,
    };
    files[`kernels/common/${name}.metal`] = c.kernel;
    files[`references/common/${name}.py`] = c.reference ?? RELU_PY;
  }
  files["registry/common.json"] = JSON.stringify({ set: "common", problems });
  return await makeWorkspace(files);
}

Deno.test("buggy and cheating kernels are each caught, and the run goes on past faults and hangs", async () => {
  const ws = await suiteWorkspace();
  const r = await metalbench([
    "--all",
    "--backend=sim",
    "--json",
    "--iters=2",
    "--warmup=0",
    "--timeout=3000",
    "--workspace",
    ws,
  ]);
  assert.equal(r.code, 1, `exit 1 when a kernel fails\n${r.stderr}`);
  const out = parseBenchStream(r.stdout);
  const byName = new Map(out.records.map((run) => [run.kernel, run]));
  assert.equal(byName.size, Object.keys(CASES).length, "every problem ran");
  for (const [name, c] of Object.entries(CASES)) {
    const run = byName.get(name)!;
    assert.equal(run.correctness.status, c.expect, `${name}: ${run.correctness.detail}`);
    if (c.detail) assert.match(run.correctness.detail, c.detail, name);
  }
  assert.equal(out.summary?.correct, 3);
  // The references left no trace, so one MLX worker served the whole run.
  const timed = out.records.filter((x) => x.mlxTiming).map((x) => x.mlxTiming!.workerPid);
  assert.equal(new Set(timed).size, 1, `worker pids ${timed}`);
});

async function reluWorkspace(): Promise<string> {
  return await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: { relu: { template: "elementwise", description: "relu", function: "relu_f32" } },
    }),
    "kernels/common/relu.metal": RELU_METAL,
    "references/common/relu.py": RELU_PY,
  });
}

const readSession = async (ws: string) =>
  Session.parse(JSON.parse(await Deno.readTextFile(join(ws, "session.json"))));

Deno.test("two runs started together both finish and session.json holds a valid best", async () => {
  const ws = await reluWorkspace();
  const args = ["relu", "--backend=sim", "--iters=3", "--warmup=0", "--workspace", ws];
  const [a, b] = await Promise.all([metalbench(args), metalbench(args)]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const session = await readSession(ws);
  const entry = session.buckets["sim-x86_64"]?.relu ?? Object.values(session.buckets)[0].relu;
  const results = JSON.parse(
    await Deno.readTextFile(join(ws, "results", Object.keys(session.buckets)[0], "relu.json")),
  );
  assert.equal(results.runs.length, 2, "both runs kept");
  const medians = results.runs.map((x: RunRecord) => x.kernelTiming!.wall.median / 1e6);
  assert.equal(entry.kernelMedianMs, Math.min(...medians), "the best of the two");
  assert.equal(entry.source, RELU_METAL, "the full source");
});

Deno.test("a correct run enters session.json; a slower one leaves the entry alone", async () => {
  const ws = await reluWorkspace();
  const args = ["relu", "--backend=sim", "--iters=3", "--warmup=0", "--workspace", ws];
  const first = await metalbench(args);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /updated session\.json \[sim-[a-z0-9_]+\/relu\]: first entry/);
  // Make the recorded best unbeatable: the next run is slower than it.
  const session = await readSession(ws);
  const bucket = Object.keys(session.buckets)[0];
  session.buckets[bucket].relu.kernelMedianMs = 1e-9;
  const before = JSON.stringify(session, null, 2) + "\n";
  await Deno.writeTextFile(join(ws, "session.json"), before);
  const second = await metalbench(args);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /unchanged: .* is not faster than the recorded/);
  assert.equal(await Deno.readTextFile(join(ws, "session.json")), before);
  assert.match(await Deno.readTextFile(join(ws, "best_times.md")), /\| relu \| common \|/);
});

Deno.test("--metal needs no Python: correctness from the reference outputs a paired run cached", async () => {
  const ws = await reluWorkspace();
  const cache = await Deno.makeTempDir({ prefix: "mb-cache-" });
  const common = [
    "relu",
    "--backend=sim",
    "--iters=2",
    "--warmup=0",
    "--no-session",
    "--json",
    "--workspace",
    ws,
  ];
  const noPython = { METALBENCH_CACHE: cache, METALBENCH_PYTHON: "/nonexistent/python" };

  const before = await metalbench([...common, "--metal"], { env: noPython });
  assert.equal(before.code, 0, before.stderr);
  const unchecked = parseBenchStream(before.stdout).records[0];
  assert.equal(unchecked.correctness.status, "unchecked");
  assert.match(unchecked.correctness.detail, /run once without --metal/);
  assert.equal(unchecked.mlxTiming, null);

  const paired = await metalbench(common, { env: { METALBENCH_CACHE: cache } });
  assert.equal(paired.code, 0, paired.stderr);

  const after = await metalbench([...common, "--metal"], { env: noPython });
  assert.equal(after.code, 0, after.stderr);
  const checked = parseBenchStream(after.stdout).records[0];
  assert.equal(checked.correctness.status, "correct");
  // 3 trials, 4 edge-value trials, 1 on un-poisoned outputs, 2 rotated output sets.
  assert.equal(checked.correctness.trials.length, 10);
  assert.equal(checked.settings.protocol?.seedSource, "cached");
  assert.equal(checked.settings.seed, parseBenchStream(paired.stdout).records[0].settings.seed);
});

Deno.test("--mlx times only the reference; --cold-start adds first-launch figures", async () => {
  const ws = await reluWorkspace();
  const mlx = await metalbench(["relu", "--mlx", "--iters=3", "--json", "--workspace", ws]);
  assert.equal(mlx.code, 0, mlx.stderr);
  const m = parseBenchStream(mlx.stdout).records[0];
  assert.equal(m.kernelTiming, null);
  assert.equal(m.mlxTiming!.wallNs.length, 3);

  const cold = await metalbench([
    "relu",
    "--backend=sim",
    "--cold-start",
    "--iters=2",
    "--no-session",
    "--json",
    "--workspace",
    ws,
  ]);
  assert.equal(cold.code, 0, cold.stderr);
  const c = parseBenchStream(cold.stdout).records[0].coldStart!;
  for (const v of [c.compileMs, c.firstRunMs, c.mlxFirstCallMs]) {
    assert.ok(v !== null && v > 0, `${v}`);
  }
});
