/**
 * The pool group's suite entries catch the classic bugs of their kernels:
 * each case is one of the repository's own problems (its registry entry and
 * reference as they are) with its kernel changed in one place, run on the
 * simulator against the real MLX worker, and it must fail. The unchanged
 * kernels must pass in the same run, so a failure is the change's doing.
 */
import assert from "node:assert/strict";
import { parseBenchStream } from "../src/api/events.ts";
import { metalbench } from "./_cli.ts";
import { makeWorkspace } from "./_workspace.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const registry = JSON.parse(await Deno.readTextFile(`${ROOT}registry/common_pool.json`)) as {
  problems: Record<string, unknown>;
};

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
  const r = await metalbench([
    "--all",
    "--workspace",
    ws,
    "--backend",
    "sim",
    "--no-session",
    "--json",
    "--iters",
    "1",
    "--warmup",
    "0",
    "--trials",
    "1",
  ]);
  const runs = new Map(parseBenchStream(r.stdout).records.map((x) => [x.kernel, x]));
  for (const [name, bug] of Object.entries(BUGS)) {
    const good = runs.get(bug.problem)?.correctness;
    assert.equal(good?.status, "correct", `${bug.problem}: ${good?.detail}\n${r.stderr}`);
    const bad = runs.get(name)?.correctness;
    assert.equal(bad?.status, "incorrect", `${name}: ${bad?.detail}\n${r.stderr}`);
    assert.match(bad!.detail, bug.caughtBy, name);
  }
});
