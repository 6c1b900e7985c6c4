/**
 * The benchmark protocol against kernels that try to skip work or know
 * their inputs, and against bad input that must fail cleanly: run through
 * the CLI on the simulator with the real MLX worker, as a user would.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { makeWorkspace } from "./_workspace.ts";
import { metalbench } from "./_cli.ts";
import type { RunRecord } from "../src/store/schema.ts";
import { PAIRINGS, RotationState, wholeRotations } from "../src/bench/rotation.ts";
import { parseBenchStream } from "../src/api/events.ts";

const RELU_PY = await Deno.readTextFile(new URL("../references/common/relu.py", import.meta.url));

/** A one-element-per-thread relu-shaped kernel over x, y, n with `body`. */
const kernel = (body: string) =>
  `#include <metal_stdlib>
using namespace metal;
inline float relu(float v) { return v < 0.0f ? 0.0f : v; }
kernel void k(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
              constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  if (gid >= n) return;
  ${body}
}
`;

const GOOD = kernel("y[gid] = relu(x[gid]);");

async function workspace(
  problems: Record<string, { kernel: string; entry?: Record<string, unknown> }>,
) {
  const files: Record<string, string> = {};
  const entries: Record<string, unknown> = {};
  for (const [name, p] of Object.entries(problems)) {
    entries[name] = {
      template: "elementwise",
      description: name,
      function: "k",
      vector: 1,
      ...p.entry,
    };
    files[`kernels/common/${name}.metal`] = p.kernel;
    files[`references/common/${name}.py`] = RELU_PY;
  }
  files["registry/common.json"] = JSON.stringify({ set: "common", problems: entries });
  return await makeWorkspace(files);
}

const FAST = ["--backend=sim", "--iters=4", "--warmup=1", "--timeout=3000"];

async function runJson(args: string[]) {
  const r = await metalbench([...args, "--json"]);
  return { ...r, runs: parseBenchStream(r.stdout).records };
}

Deno.test("rotation: each output set ends on the input set it did not start with", () => {
  for (const batch of [1, 2, 3, 5, 10]) {
    for (const iters of [1, 2, 7, 20]) {
      const samples = wholeRotations(iters, batch);
      assert.ok(samples >= iters);
      const state = new RotationState();
      state.ran(samples * batch);
      // The first launches write out0 from in0 and out1 from in1.
      assert.deepEqual(PAIRINGS.slice(0, 2), [{ input: 0, output: 0 }, { input: 1, output: 1 }]);
      assert.deepEqual(state.lastInput, [1, 0], `batch ${batch} iters ${iters}`);
    }
  }
});

Deno.test("kernels that skip work when their output looks written, or hide a flag in padding, are incorrect", async () => {
  const ws = await workspace({
    good: { kernel: GOOD },
    // Work only where the output still holds the NaN poison of a fresh buffer.
    skip_if_written: { kernel: kernel("if (!isnan(y[gid])) return; y[gid] = relu(x[gid]);") },
    // Work only when the first output element is poison: one flag for the whole grid.
    skip_if_first_written: {
      kernel: kernel("if (!isnan(y[0]) && gid != 0) return; y[gid] = relu(x[gid]);"),
    },
    // One element, so the 16-byte buffer has 12 bytes of padding: leave a flag there.
    flag_in_padding: {
      kernel: kernel(
        "if (as_type<uint>(y[1]) == 0x600dd0e5u) return; y[0] = relu(x[0]); y[1] = as_type<float>(0x600dd0e5u);",
      ),
      entry: { sizes: { bench: { M: 1, N: 1 }, test: { M: 1, N: 1 } } },
    },
  });
  const r = await runJson(["--all", ...FAST, "--workspace", ws]);
  assert.equal(r.code, 1, r.stderr);
  const by = new Map(r.runs.map((x) => [x.kernel, x]));
  assert.equal(by.get("good")!.correctness.status, "correct", by.get("good")!.correctness.detail);
  // (Its threads race on the flag, so it may already fail a poisoned trial.)
  assert.equal(by.get("skip_if_first_written")!.correctness.status, "incorrect");
  for (const name of ["skip_if_written", "skip_if_first_written"]) {
    const run = by.get(name)!;
    if (name === "skip_if_written") {
      assert.equal(run.correctness.status, "incorrect", name);
      assert.match(run.correctness.detail, /outputs left from the previous trial/);
    }
    // The rotated output sets after the timed launches are wrong as well.
    const after = run.correctness.trials.filter((t) => t.phase === "after-timing");
    assert.equal(after.length, 2, name);
    assert.ok(
      after.every((t) => t.outputs.some((o) => o.comparison.within < o.comparison.elements)),
      `${name}: every rotated output set holds a stale answer`,
    );
  }
  const pad = by.get("flag_in_padding")!;
  assert.equal(pad.correctness.status, "incorrect");
  assert.match(pad.correctness.detail, /wrote past the last element of y/);
});

Deno.test("seeds are drawn fresh for every run and recorded; --seed reproduces a run and keeps it off the leaderboard", async () => {
  const ws = await workspace({ relu: { kernel: GOOD } });
  const args = ["relu", ...FAST, "--workspace", ws];
  const a = await runJson(args);
  const b = await runJson(args);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const [ra, rb] = [a.runs[0], b.runs[0]];
  assert.notEqual(ra.settings.seed, rb.settings.seed, "two runs, two seeds");
  assert.equal(ra.settings.protocol?.seedSource, "random");
  assert.match(a.stderr, /updated session\.json/);

  // The same seed gives the same inputs: a kernel that is wrong on them is wrong the same way.
  const half = await workspace({ relu: { kernel: kernel("y[gid] = float(half(relu(x[gid])));") } });
  const seeded = ["relu", ...FAST, "--seed", String(ra.settings.seed), "--workspace", half];
  const [s1, s2] = [await runJson(seeded), await runJson(seeded)];
  assert.equal(s1.runs.length, 1, `exit ${s1.code}: ${s1.stderr}`);
  assert.equal(s2.runs.length, 1, `exit ${s2.code}: ${s2.stderr}`);
  assert.equal(s1.runs[0].settings.seed, ra.settings.seed);
  assert.equal(s1.runs[0].settings.protocol?.seedSource, "user");
  assert.equal(s1.runs[0].correctness.detail, s2.runs[0].correctness.detail);

  const user = await runJson(["relu", ...FAST, "--seed", "7", "--workspace", ws]);
  assert.equal(user.code, 0, user.stderr);
  assert.match(user.stderr, /session\.json \[sim-[^\]]+\/relu\] unchanged: .*--seed/);
  const weak = await runJson(["relu", ...FAST, "--trials", "1", "--workspace", ws]);
  assert.match(weak.stderr, /unchanged: .*1 trial\(s\); the leaderboard needs at least 3/);
});

Deno.test("a kernel that carries the answers for a public seed fails: the seed is unknown in advance", async () => {
  // Right only where the first input is what seed 0 gives (a table of answers would do the same).
  const { makeTensor } = await import("../src/bench/inputs.ts");
  const { sizeProblem } = await import("../src/registry/problem.ts");
  const { expand } = await import("../src/registry/templates.ts");
  const { RegistryEntry } = await import("../src/registry/schema.ts");
  const x = sizeProblem(
    "p",
    "common",
    expand(RegistryEntry.parse({ template: "elementwise", description: "x", function: "k" })),
    "test",
  ).inputs[0];
  const first = new Float32Array(makeTensor(x, 0).buffer)[0];
  const ws = await workspace({
    table: { kernel: kernel(`y[gid] = x[0] == ${first.toPrecision(9)}f ? relu(x[gid]) : 0.0f;`) },
  });
  const r = await runJson(["table", ...FAST, "--workspace", ws]);
  assert.equal(r.runs[0].correctness.status, "incorrect");
  assert.match(r.runs[0].correctness.detail, new RegExp(`trial seed ${r.runs[0].settings.seed}`));
});

Deno.test("a time faster than the device's limits is flagged and kept off the leaderboard", async () => {
  // The registry claims 10^12 FLOPs per element: no real run does that in microseconds.
  const ws = await workspace({ relu: { kernel: GOOD, entry: { flopsPerElement: 1e12 } } });
  const r = await metalbench(["relu", ...FAST, "--workspace", ws]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /plausible\s*: ✗ kernel time \(device\) .* is faster than/);
  assert.match(r.stderr, /unchanged: implausible:/);
  const session = await Deno.readTextFile(join(ws, "session.json")).catch(() => "");
  assert.equal(session.includes('"relu"'), false);
});

Deno.test("bad input fails cleanly: unwritable results keep the record, sizes too big and runaway counts are refused", async () => {
  const ws = await workspace({
    relu: { kernel: GOOD },
    huge: {
      kernel: GOOD,
      entry: { sizes: { bench: { M: 1e6, N: 1e6 }, test: { M: 1e6, N: 1e6 } } },
    },
  });
  // results/ is a file: nothing can be written under it (root ignores permission bits).
  await Deno.writeTextFile(join(ws, "results"), "not a folder");
  const r = await metalbench(["relu", ...FAST, "--workspace", ws]);
  assert.equal(r.code, 3, r.stderr);
  const saved = r.stderr.match(/the record was saved to (\S+);/)?.[1];
  assert.ok(saved, r.stderr);
  const record = JSON.parse(await Deno.readTextFile(saved)) as RunRecord;
  assert.equal(record.kernel, "relu");
  assert.equal(record.correctness.status, "correct");
  assert.equal(r.stderr.includes("at "), false, "no stack trace");
  await Deno.remove(saved);

  const started = performance.now();
  const big = await metalbench(["huge", ...FAST, "--no-session", "--workspace", ws]);
  assert.equal(big.code, 2, big.stderr);
  assert.match(big.stdout, /huge at size test needs [\d.]+ GB of (device buffers|host memory)/);
  assert.ok(performance.now() - started < 20_000, "refused before allocating");

  for (
    const bad of [["--iters", "1e9"], ["--iters", "2000000"], ["--batch", "100000"], [
      "--trials",
      "0",
    ]]
  ) {
    const u = await metalbench(["relu", ...bad, "--workspace", ws]);
    assert.equal(u.code, 2, `${bad}: ${u.stderr}`);
    assert.match(u.stderr, /expected an integer from/);
  }
});

Deno.test("the time budget stops sampling a slow kernel early and says so", async () => {
  const slow = kernel(
    "float a = x[gid]; for (uint i = 0; i < 20000u; ++i) a = a * 1.0000001f; y[gid] = relu(x[gid]) + (a == 12345.0f ? 1.0f : 0.0f);",
  );
  const ws = await workspace({ slow: { kernel: slow } });
  const started = performance.now();
  const r = await runJson([
    "slow",
    "--backend=sim",
    "--iters=100000",
    "--warmup=0",
    "--time-budget=1",
    "--no-session",
    "--workspace",
    ws,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const run = r.runs[0];
  assert.ok(run.kernelTiming!.wall.n < 100000);
  assert.match(
    run.notes.join("\n"),
    /timing stopped after \d+ of 100000 samples: the 1 s time budget/,
  );
  assert.ok(performance.now() - started < 60_000);
});
