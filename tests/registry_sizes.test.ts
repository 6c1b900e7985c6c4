/**
 * The `large` size and the element-wise template's extensions (broadcast
 * inputs, per-input dtypes, scalars), and the built-in suite's promise:
 * every `large` size moves at least 256 MB.
 */
import assert from "node:assert/strict";
import { expand } from "../src/registry/templates.ts";
import { RegistryEntry } from "../src/registry/schema.ts";
import { hasSize, sizeProblem } from "../src/registry/problem.ts";
import { loadRegistry, sized } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";
import { kernelsMarkdown } from "../src/store/markdown.ts";
import { makeWorkspace } from "./_workspace.ts";

const elementwise = (more: Record<string, unknown>) =>
  expand(
    RegistryEntry.parse({ template: "elementwise", description: "d", function: "f", ...more }),
  );

Deno.test("elementwise large defaults to 2^25 elements (2^26 at 16 bits): 256 MiB for y = f(x)", () => {
  const f32 = sizeProblem("p", "common", elementwise({}), "large");
  assert.deepEqual(f32.sizes, { M: 2048, N: 16384 });
  assert.equal(f32.bytes, 2 ** 28);
  const f16 = sizeProblem("p", "common", elementwise({ dtype: "float16" }), "large");
  assert.deepEqual(f16.sizes, { M: 4096, N: 16384 });
  assert.equal(f16.bytes, 2 ** 28);
  // Giving bench and test keeps the default large; giving large replaces it.
  const given = elementwise({ sizes: { bench: { M: 1, N: 8 }, test: { M: 1, N: 4 } } });
  assert.deepEqual(given.sizes.large, { M: 2048, N: 16384 });
  assert.deepEqual(elementwise({ sizes: { large: { M: 1, N: 4 } } }).sizes.large, { M: 1, N: 4 });
  // A shape of other names gets no guessed large size.
  const other = elementwise({ shape: ["N"], sizes: { bench: { N: 8 }, test: { N: 4 } } });
  assert.equal(hasSize(other, "large"), false);
  assert.throws(() => sizeProblem("p", "common", other, "large"), {
    name: "ProblemError",
    message: "p (large size): has no 'large' size",
  });
});

Deno.test("elementwise inputs: broadcast shapes, own dtypes and inits, scalars after the count", () => {
  const e = elementwise({
    inputs: [
      { name: "c", dtype: "uint32", init: { kind: "bernoulli", p: 0.5 } },
      "a",
      { name: "w", shape: ["N"] },
    ],
    init: { slope: 0.25 },
    scalars: [{ dtype: "uint32", value: "N" }, { dtype: "float32", value: "slope" }],
  });
  const p = sizeProblem("p", "common", e, "test");
  assert.deepEqual(
    p.inputs.map((t) => [t.name, t.shape, t.dtype, t.init.kind]),
    [["c", [3, 1001], "uint32", "bernoulli"], ["a", [3, 1001], "float32", "normal"], [
      "w",
      [1001],
      "float32",
      "normal",
    ]],
  );
  const d = p.dispatches[0];
  assert.deepEqual(d.buffers.map((b) => [b.index, b.tensor]), [[0, "c"], [1, "a"], [2, "w"], [
    3,
    "y",
  ]]);
  assert.deepEqual(d.scalars, [
    { index: 4, dtype: "uint32", value: 3003 },
    { index: 5, dtype: "uint32", value: 1001 },
    { index: 6, dtype: "float32", value: 0.25 },
  ]);
  // Compulsory traffic: each input once at its own size, the output once.
  assert.equal(p.bytes, 4 * 3003 + 4 * 3003 + 4 * 1001 + 4 * 3003);
});

Deno.test("the built-in suite: every large size moves at least 256 MB and outgrows bench", () => {
  const registry = loadRegistry(workspaceAt(new URL("..", import.meta.url).pathname));
  let withLarge = 0;
  for (const p of registry.problems.values()) {
    if (p.template === "elementwise") assert.ok(hasSize(p.entry, "large"), `${p.name}: no large`);
    if (!hasSize(p.entry, "large")) continue;
    withLarge++;
    const large = sized(p, "large");
    assert.ok(large.bytes >= 256e6, `${p.name}: large moves ${large.bytes} bytes`);
    assert.ok(large.bytes > sized(p, "bench").bytes, `${p.name}: large is not larger than bench`);
  }
  assert.ok(withLarge > 0);
});

Deno.test("KERNELS.md lists every problem with each of its sizes, FLOPs and bytes", async () => {
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: {
        relu: { template: "elementwise", description: "relu", function: "relu_f32" },
        abs: { template: "elementwise", description: "y = |x|", function: "abs_f32" },
        mm: { template: "matmul", description: "mm", function: "mm_f32" },
      },
    }),
  });
  const md = kernelsMarkdown(loadRegistry(workspaceAt(ws)));
  const row = (name: string) => md.split("\n").find((l) => l.includes(`| ${name} |`))!;
  assert.match(
    row("relu"),
    /\| M=3 N=1001<br>3 kFLOP, 24 kB \| M=16 N=16384<br>262 kFLOP, 2\.1 MB \| M=2048 N=16384<br>33\.6 MFLOP, 268 MB \|$/,
  );
  assert.match(row("abs"), /^\| common \| abs \| elementwise \| y = \\\|x\\\| \| /);
  // 2*1024^3 FLOPs; 3 * 4 MiB; no large size.
  assert.match(row("mm"), /\| M=1024 N=1024 K=1024<br>2\.15 GFLOP, 12\.6 MB \| — \|$/);
});
