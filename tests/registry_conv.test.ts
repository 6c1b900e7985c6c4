/**
 * The `conv` registry template (what a convolution entry expands to: shapes,
 * bindings, derived sizes, counts; the sizes it refuses at load), and the
 * suite's convolution kernels on geometry their own entries never use
 * (stride, padding, dilation, channel counts off the float4 path, phases of
 * a transposed conv that no tap reaches), run through the real CLI, the
 * simulator and MLX against MLX's own conv.
 */
import assert from "node:assert/strict";
import { RegistryEntry } from "../src/registry/schema.ts";
import { sizeProblem } from "../src/registry/problem.ts";
import { expand } from "../src/registry/templates.ts";
import { runAllOnSim } from "./_cli.ts";
import { makeWorkspace } from "./_workspace.ts";

const conv = (fields: Record<string, unknown>) =>
  RegistryEntry.parse({
    template: "conv",
    description: "conv",
    function: "conv_f32",
    dims: 2,
    kernel: 3,
    sizes: {
      bench: { N: 8, H: 64, W: 64, C: 64, F: 128 },
      test: { N: 2, H: 9, W: 11, C: 6, F: 20 },
    },
    grid: ["ceil_div(F, 64)", "ceil_div(OUT, 64)"],
    threadgroup: [128],
    mode: "threadgroups",
    ...fields,
  });

Deno.test("conv template, 2-D: output extents with stride, padding and dilation; bindings; counts", () => {
  const p = sizeProblem(
    "c",
    "common",
    expand(conv({ stride: 2, padding: 1, dilation: 2 })),
    "test",
  );
  // OX = floor((X + 2 - 2*2 - 1) / 2) + 1: H 9 -> 4, W 11 -> 5
  assert.deepEqual(p.inputs.map((t) => [t.name, t.shape]), [["x", [2, 9, 11, 6]], [
    "w",
    [20, 3, 3, 6],
  ]]);
  assert.deepEqual(p.outputs.map((t) => [t.name, t.shape]), [["y", [2, 4, 5, 20]]]);
  const d = p.dispatches[0];
  assert.deepEqual(d.buffers, [{ index: 0, tensor: "x" }, { index: 1, tensor: "w" }, {
    index: 2,
    tensor: "y",
  }]);
  // N, C, F, H, W, OH, OW, R, stride, padding, dilation
  assert.deepEqual(d.scalars.map((s) => [s.index, s.value]), [
    [3, 2],
    [4, 6],
    [5, 20],
    [6, 9],
    [7, 11],
    [8, 4],
    [9, 5],
    [10, 3],
    [11, 2],
    [12, 1],
    [13, 2],
  ]);
  assert.deepEqual([d.grid, d.threadgroup, d.mode], [[1, 1, 1], [128, 1, 1], "threadgroups"]);
  assert.deepEqual(p.init, { stride: 2, padding: 1, dilation: 2 }, "the reference's Model(...)");
  assert.equal(p.flops, 2 * (2 * 4 * 5) * 20 * 9 * 6);
  assert.equal(p.bytes, 4 * (2 * 9 * 11 * 6 + 20 * 9 * 6 + 2 * 4 * 5 * 20));
});

Deno.test("conv template: transposed FLOPs count input pixels; depthwise has C outputs and w [C, R.., 1]", () => {
  const t = sizeProblem("t", "common", expand(conv({ kind: "transpose", stride: 2 })), "test");
  assert.deepEqual(t.outputs[0].shape, [2, (9 - 1) * 2 + 3, (11 - 1) * 2 + 3, 20]);
  assert.equal(t.flops, 2 * 2 * 9 * 11 * 9 * 6 * 20, "each input pixel through 9 taps");
  const dw = sizeProblem(
    "d",
    "common",
    expand(conv({
      kind: "depthwise",
      dims: 1,
      sizes: { bench: { N: 1, L: 10, C: 4 }, test: { N: 2, L: 12, C: 5 } },
    })),
    "test",
  );
  assert.deepEqual(dw.inputs.map((t) => t.shape), [[2, 12, 5], [5, 3, 1]]);
  assert.deepEqual(dw.outputs[0].shape, [2, 10, 5]);
  assert.equal(dw.dispatches[0].scalars[2].value, 5, "F is C");
  assert.equal(dw.flops, 2 * 2 * 10 * 5 * 3);
});

Deno.test("conv template: bias and params bound before y, own scalars after; output replaced for a fused op", () => {
  const p = sizeProblem(
    "f",
    "common",
    expand(conv({
      dims: 3,
      bias: true,
      params: [{ name: "scale" }],
      scalars: [{ dtype: "float32", value: 0.5 }],
      output: { name: "pooled", shape: ["N", "floor(OD/2)", "floor(OH/2)", "floor(OW/2)", "F"] },
      epilogueFlops: 4,
      sizes: {
        bench: { N: 1, D: 8, H: 8, W: 8, C: 4, F: 8 },
        test: { N: 1, D: 6, H: 7, W: 8, C: 4, F: 8 },
      },
    })),
    "test",
  );
  assert.deepEqual(p.inputs.map((t) => [t.name, t.shape]), [
    ["x", [1, 6, 7, 8, 4]],
    ["w", [8, 3, 3, 3, 4]],
    ["bias", [8]],
    ["scale", [8]],
  ]);
  assert.deepEqual(p.outputs.map((t) => [t.name, t.shape]), [["pooled", [1, 2, 2, 3, 8]]]);
  const d = p.dispatches[0];
  assert.deepEqual(d.buffers.map((b) => [b.index, b.tensor]), [
    [0, "x"],
    [1, "w"],
    [2, "bias"],
    [3, "scale"],
    [4, "pooled"],
  ]);
  // 3 + 3 + 3 + 4 uints from index 5, then the float at 18.
  assert.equal(d.scalars.length, 14);
  assert.deepEqual(d.scalars.at(-1), { index: 18, dtype: "float32", value: 0.5 });
  const out = 1 * 4 * 5 * 6;
  assert.equal(p.flops, 2 * out * 8 * 27 * 4 + 4 * out * 8);
});

Deno.test("conv template: a size without a name the shapes use is refused at load, naming it", () => {
  assert.throws(
    () =>
      conv({
        sizes: { bench: { N: 1, H: 4, W: 4, C: 4, F: 4 }, test: { N: 1, H: 4, C: 4, F: 4 } },
      }),
    /2-D conv needs size W/,
  );
  assert.throws(
    () =>
      conv({
        kind: "depthwise",
        sizes: { bench: { N: 1, H: 4, W: 4, C: 4, F: 4 }, test: { N: 1, H: 4, W: 4, C: 4 } },
      }),
    /drop F/,
  );
});

// ---- the suite's kernels on other geometry ---------------------------------

const ROOT = new URL("../", import.meta.url).pathname;
const read = (path: string) => Deno.readTextFileSync(`${ROOT}${path}`);

interface Case {
  /** The suite problem whose kernel and reference this case reuses. */
  base: string;
  entry: Record<string, unknown>;
}

const GEMM_GRID = {
  grid: ["ceil_div(F, 64)", "ceil_div(OUT, 64)"],
  threadgroup: [128],
  mode: "threadgroups",
};
const TRANSPOSE_GRID = {
  grid: [
    "ceil_div(F, 64)",
    "ceil_div(N*ceil_div(OH, stride)*ceil_div(OW, stride), 64)",
    "stride*stride",
  ],
  threadgroup: [128],
  mode: "threadgroups",
};
const DEPTHWISE_GRID = {
  grid: ["ceil_div(C, 4)", "ceil_div(OW, 4)", "N*OH"],
  threadgroup: [16, 8],
  mode: "threads",
};
const sized = (test: Record<string, number>) => ({ bench: test, test });

const CASES: Record<string, Case> = {
  conv1d_s3_p2: {
    base: "conv1d",
    entry: {
      dims: 1,
      stride: 3,
      padding: 2,
      sizes: sized({ N: 2, L: 29, C: 5, F: 9 }),
      ...GEMM_GRID,
    },
  },
  conv2d_s2_p1_d2: {
    base: "conv2d",
    entry: {
      dims: 2,
      stride: 2,
      padding: 1,
      dilation: 2,
      sizes: sized({ N: 2, H: 11, W: 9, C: 6, F: 70 }),
      edgeTrials: {
        skip: {
          nonfinite:
            "MLX's CPU conv2d with dilation leaves padded taps out, while its undilated path multiplies the padding's zeros (0 * Inf = NaN at the borders), as this kernel always does",
        },
      },
      ...GEMM_GRID,
    },
  },
  conv3d_s2_p1: {
    base: "conv3d",
    entry: {
      dims: 3,
      stride: 2,
      padding: 1,
      sizes: sized({ N: 1, D: 5, H: 6, W: 7, C: 4, F: 12 }),
      ...GEMM_GRID,
    },
  },
  depthwise_s2_p1_d2: {
    base: "depthwise_conv2d",
    entry: {
      dims: 2,
      kind: "depthwise",
      stride: 2,
      padding: 1,
      dilation: 2,
      sizes: sized({ N: 2, H: 12, W: 13, C: 10 }),
      ...DEPTHWISE_GRID,
    },
  },
  depthwise_p1: {
    base: "depthwise_conv2d",
    entry: {
      dims: 2,
      kind: "depthwise",
      padding: 1,
      sizes: sized({ N: 1, H: 7, W: 10, C: 6 }),
      ...DEPTHWISE_GRID,
    },
  },
  transpose_s3_p1_d2: {
    base: "conv_transpose2d",
    entry: {
      dims: 2,
      kind: "transpose",
      stride: 3,
      padding: 1,
      dilation: 2,
      sizes: sized({ N: 2, H: 4, W: 5, C: 5, F: 9 }),
      ...TRANSPOSE_GRID,
    },
  },
  transpose_s4: {
    base: "conv_transpose2d",
    entry: {
      dims: 2,
      kind: "transpose",
      stride: 4,
      sizes: sized({ N: 1, H: 3, W: 4, C: 8, F: 6 }),
      ...TRANSPOSE_GRID,
    },
  },
};

Deno.test("conv kernels: correct on stride, padding, dilation and odd channel counts (simulator vs MLX)", async () => {
  const files: Record<string, string> = {};
  const problems: Record<string, unknown> = {};
  for (const [name, c] of Object.entries(CASES)) {
    files[`kernels/common/${name}.metal`] = read(`kernels/common/${c.base}.metal`);
    files[`references/common/${name}.py`] = read(`references/common/${c.base}.py`);
    problems[name] = {
      template: "conv",
      description: `${c.base} on other geometry`,
      function: `${c.base}_f32`,
      kernel: 3,
      ...c.entry,
    };
  }
  files["registry/common.json"] = JSON.stringify({ set: "common", problems });
  const ws = await makeWorkspace(files);
  try {
    const out = await runAllOnSim(ws, [
      "--size",
      "test",
      "--iters",
      "1",
      "--warmup",
      "0",
      "--trials",
      "1",
      "--batch",
      "1",
    ]);
    const runs = out.runs;
    const failed: string[] = [];
    for (const name of Object.keys(CASES)) {
      const r = runs.get(name);
      if (r && r.correctness.status !== "correct") failed.push(`${name}: ${r.correctness.detail}`);
    }
    assert.deepEqual(failed, []);
    for (const name of Object.keys(CASES)) {
      const r = runs.get(name);
      assert.ok(r, `no run for ${name} (exit ${out.code}): ${out.stderr.trim()}`);
      assert.equal(
        r.correctness.status,
        "correct",
        `${name}: ${r.correctness.status}: ${r.correctness.detail}`,
      );
      const skipped = "edgeTrials" in CASES[name].entry;
      assert.equal(
        r.correctness.trials.some((t) => t.phase === "edge" && t.edge === "nonfinite"),
        !skipped,
        `${name}: the NaN/Inf trial ran unless the case skips it`,
      );
    }
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});
