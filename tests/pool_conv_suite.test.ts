/**
 * The pool group's suite entries catch the classic bugs of their kernels:
 * each case is one of the repository's own problems (its registry entry and
 * reference as they are) with its kernel changed in one place, run on the
 * simulator against the real MLX worker, and it must fail. The unchanged
 * kernels must pass in the same run, so a failure is the change's doing.
 */
import assert from "node:assert/strict";
import { runAllOnSim } from "./_cli.ts";
import { makeWorkspace } from "./_workspace.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const registry: { problems: Record<string, { sizes: { test: unknown } }> } = JSON.parse(
  await Deno.readTextFile(`${ROOT}registry/common_pool.json`),
);

/** A changed kernel: the problem it comes from and one exact replacement. */
interface Bug {
  problem: string;
  from: string;
  to: string;
  /** The trial that must catch it. */
  caughtBy: RegExp;
}

const BUGS: Record<string, Bug> = {
  // Metal's max returns the other operand for NaN; MLX's max keeps NaN.
  max_pool2d_drops_nan: {
    problem: "max_pool2d",
    from: "return select(v, m, m >= v || isnan(m));",
    to: "return max(m, v);",
    caughtBy: /nonfinite/,
  },
  // The same in a fused epilogue: a ReLU through Metal's max turns NaN into 0.
  conv2d_relu_bias_drops_nan: {
    problem: "conv2d_relu_bias",
    from: "return z < 0.0f ? 0.0f : z;",
    to: "return max(z, 0.0f);",
    caughtBy: /nonfinite/,
  },
  // A softmax without the max subtraction overflows on large inputs, even
  // where the tolerance scale makes that trial lenient on finite values.
  conv3d_softmax_pool_no_max: {
    problem: "conv3d_softmax_pool",
    from: "v[j] = c < F ? exp(v[j] - m) : 0.0f;",
    to: "v[j] = c < F ? exp(v[j]) : 0.0f;",
    caughtBy: /large/,
  },
};

Deno.test("pool group: a changed kernel is caught, the unchanged ones pass", async () => {
  const problems: Record<string, unknown> = {};
  const files: Record<string, string> = {};
  const add = async (name: string, problem: string, kernel?: (text: string) => string) => {
    problems[name] = registry.problems[problem];
    const text = await Deno.readTextFile(`${ROOT}kernels/common/${problem}.metal`);
    files[`kernels/common/${name}.metal`] = kernel ? kernel(text) : text;
    files[`references/common/${name}.py`] = await Deno.readTextFile(
      `${ROOT}references/common/${problem}.py`,
    );
  };
  for (const [name, bug] of Object.entries(BUGS)) {
    await add(name, bug.problem, (text) => {
      assert.equal(text.split(bug.from).length, 2, `${bug.problem}: '${bug.from}' once`);
      return text.replace(bug.from, bug.to);
    });
    await add(bug.problem, bug.problem);
  }
  files["registry/common.json"] = JSON.stringify({ set: "common", problems });
  const ws = await makeWorkspace(files);
  const r = await runAllOnSim(ws, ["--iters", "1", "--warmup", "0", "--trials", "1"]);
  const runs = r.runs;
  for (const [name, bug] of Object.entries(BUGS)) {
    const good = runs.get(bug.problem)?.correctness;
    assert.equal(good?.status, "correct", `${bug.problem}: ${good?.detail}\n${r.stderr}`);
    const bad = runs.get(name)?.correctness;
    assert.equal(bad?.status, "incorrect", `${name}: ${bad?.detail}\n${r.stderr}`);
    assert.match(bad!.detail, bug.caughtBy, name);
  }
});

/** Test sizes off the entries' own: odd C and F, F over 64 (two tiles) or 32 (two chunks). */
const ODD_SIZES: Record<string, Record<string, number>> = {
  conv2d_relu_bias: { N: 2, H: 6, W: 7, C: 6, F: 21 },
  conv2d_mish_mish: { N: 1, H: 5, W: 9, C: 5, F: 67 },
  conv3d_multi_act_bias: { N: 1, D: 4, H: 4, W: 5, C: 7, F: 9 },
  conv3d_div_pool_sum: { N: 2, D: 4, H: 4, W: 5, C: 6, F: 65 },
  conv3d_softmax_pool: { N: 1, D: 7, H: 6, W: 6, C: 5, F: 33 },
  conv_transpose3d_norm_pool_gelu: { N: 2, D: 2, H: 3, W: 2, C: 5, F: 37 },
  // Stride 2 (C and F multiples of 4): a one-row input (no interior GEMM
  // rows in class 0, the frame is all of it), and two filter tiles.
  conv_transpose2d_clamp_scale_div: { N: 3, H: 1, W: 2, C: 4, F: 8 },
  conv_transpose2d_sub_tanh: { N: 1, H: 3, W: 10, C: 12, F: 68 },
};

Deno.test("pool group: the fused conv kernels are correct at sizes their entries do not use", async () => {
  const problems: Record<string, unknown> = {};
  const files: Record<string, string> = {};
  for (const [name, test] of Object.entries(ODD_SIZES)) {
    const entry = structuredClone(registry.problems[name]);
    entry.sizes.test = test;
    problems[name] = entry;
    files[`kernels/common/${name}.metal`] = await Deno.readTextFile(
      `${ROOT}kernels/common/${name}.metal`,
    );
    files[`references/common/${name}.py`] = await Deno.readTextFile(
      `${ROOT}references/common/${name}.py`,
    );
  }
  files["registry/common.json"] = JSON.stringify({ set: "common", problems });
  const ws = await makeWorkspace(files);
  const r = await runAllOnSim(ws, ["--iters", "1", "--warmup", "0", "--trials", "1"]);
  const runs = r.runs;
  for (const name of Object.keys(ODD_SIZES)) {
    const c = runs.get(name)?.correctness;
    assert.equal(c?.status, "correct", `${name}: ${c?.detail}\n${r.stderr}`);
  }
});
