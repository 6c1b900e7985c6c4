import assert from "node:assert/strict";
import { evaluate, evaluateInt } from "../src/registry/expr.ts";
import { expand } from "../src/registry/templates.ts";
import { RegistryEntry } from "../src/registry/schema.ts";
import { sizeProblem } from "../src/registry/problem.ts";
import { loadRegistry, resolveKernelSource } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";
import { makeWorkspace } from "./_workspace.ts";

Deno.test("size expressions: arithmetic, functions, names", () => {
  const env = { M: 16, N: 16384 };
  assert.deepEqual(evaluate("M*N", env), 262144);
  assert.deepEqual(evaluate("ceil_div(M*N, 3)", env), Math.ceil(262144 / 3));
  assert.deepEqual(evaluate("2*(M+N) - -1", env), 2 * (16 + 16384) + 1);
  assert.deepEqual(evaluate("max(M, 20) % 7", env), 6);
  assert.deepEqual(evaluate("1e-5", env), 1e-5);
  assert.deepEqual(evaluate(7, env), 7);
});

Deno.test("size expressions: errors name the problem", () => {
  assert.throws(() => evaluate("M*Q", { M: 1 }), {
    name: "ExprError",
    message: /unknown size 'Q'/,
  });
  assert.throws(() => evaluate("M*", { M: 1 }), { name: "ExprError", message: /unexpected end/ });
  assert.throws(() => evaluate("M; Deno.exit()", { M: 1 }), {
    name: "ExprError",
    message: /unexpected ';'/,
  });
  assert.throws(() => evaluate("foo(1)", {}), {
    name: "ExprError",
    message: /unknown function 'foo'/,
  });
  assert.throws(() => evaluateInt("M/3", { M: 4 }, "grid"), {
    name: "ExprError",
    message: /not a non-negative integer/,
  });
});

Deno.test("elementwise template: bindings, grid and counts", () => {
  const entry = RegistryEntry.parse({
    template: "elementwise",
    description: "relu",
    function: "relu_f32",
  });
  const p = sizeProblem("relu", "common", expand(entry), "test");
  assert.deepEqual(p.inputs.map((t) => [t.name, t.shape]), [["x", [3, 1001]]]);
  assert.deepEqual(p.outputs.map((t) => [t.name, t.shape]), [["y", [3, 1001]]]);
  const d = p.dispatches[0];
  assert.deepEqual(d.buffers, [{ index: 0, tensor: "x" }, { index: 1, tensor: "y" }]);
  assert.deepEqual(d.scalars, [{ index: 2, dtype: "uint32", value: 3003 }]);
  // One thread per float4, the last one holding the 3-element tail.
  assert.deepEqual(d.grid, [751, 1, 1]);
  assert.deepEqual(d.threadgroup, [256, 1, 1]);
  assert.deepEqual(d.mode, "threads");
  assert.deepEqual(p.bytes, 8 * 3003);
  assert.deepEqual(p.flops, 3003);
  assert.deepEqual(p.tolerance, { rtol: 1e-4, stol: 1e-5, atol: 2 ** -126 });
});

Deno.test("rowwise template: one threadgroup per row, params and scalars after the output", () => {
  const entry = RegistryEntry.parse({
    template: "rowwise",
    description: "layer norm",
    function: "ln",
    params: [{ name: "w" }, { name: "b" }],
    scalars: [{ dtype: "float32", value: 1e-5 }],
  });
  const p = sizeProblem("ln", "common", expand(entry), "bench");
  const d = p.dispatches[0];
  assert.deepEqual(d.buffers.map((b) => b.tensor), ["x", "w", "b", "y"]);
  assert.deepEqual(d.scalars, [
    { index: 4, dtype: "uint32", value: 1024 },
    { index: 5, dtype: "float32", value: 1e-5 },
  ]);
  assert.deepEqual([d.grid, d.mode], [[1024, 1, 1], "threadgroups"]);
});

Deno.test("a problem that binds an unknown tensor, or leaves an output unbound, is refused", () => {
  const base = {
    description: "t",
    sizes: { bench: { N: 8 }, test: { N: 4 } },
    inputs: [{ name: "x", shape: ["N"] }],
    outputs: [{ name: "y", shape: ["N"] }],
    flops: "N",
    bytes: "8*N",
  };
  const dispatch = { function: "k", grid: ["N"], threadgroup: [4], mode: "threads" };
  const bad1 = RegistryEntry.parse({
    ...base,
    dispatches: [{ ...dispatch, buffers: [{ index: 0, tensor: "z" }] }],
  });
  assert.throws(() => sizeProblem("t", "common", expand(bad1), "test"), {
    name: "ProblemError",
    message: /unknown tensor 'z'/,
  });
  const bad2 = RegistryEntry.parse({
    ...base,
    dispatches: [{ ...dispatch, buffers: [{ index: 0, tensor: "x" }] }],
  });
  assert.throws(() => sizeProblem("t", "common", expand(bad2), "test"), {
    name: "ProblemError",
    message: /output 'y' is bound by no dispatch/,
  });
  const bad3 = RegistryEntry.parse({
    ...base,
    dispatches: [{
      ...dispatch,
      threadgroup: [2048],
      buffers: [{ index: 0, tensor: "x" }, { index: 1, tensor: "y" }],
    }],
  });
  assert.throws(() => sizeProblem("t", "common", expand(bad3), "test"), {
    name: "ProblemError",
    message: /threadgroup of 2048 threads/,
  });
});

Deno.test("loading: a registry error names the file and the field", async () => {
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: { relu: { template: "elementwise", description: "r" } },
    }),
  });
  assert.throws(() => loadRegistry(workspaceAt(ws)), {
    name: "RegistryError",
    message: /common\.json: problems\.relu\.function/,
  });
  await Deno.writeTextFile(`${ws}/registry/common.json`, "{ not json");
  assert.throws(() => loadRegistry(workspaceAt(ws)), {
    name: "RegistryError",
    message: /is not valid JSON/,
  });
});

Deno.test("per-chip variants resolve <chip> → default → flat", async () => {
  const entry = { template: "elementwise", description: "r", function: "relu_f32" };
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: { relu: entry, gelu: { ...entry, function: "g" } },
    }),
    "kernels/common/relu/default.metal": "// default",
    "kernels/common/relu/m4.metal": "// m4",
    "kernels/common/gelu.metal": "// flat",
  });
  const reg = loadRegistry(workspaceAt(ws));
  const relu = reg.problems.get("relu")!;
  assert.deepEqual(relu.variants, ["default", "m4"]);
  assert.deepEqual(resolveKernelSource(relu, "m4").text, "// m4");
  assert.deepEqual(resolveKernelSource(relu, "m2").variant, "default");
  assert.deepEqual(resolveKernelSource(relu).variant, "default");
  const gelu = reg.problems.get("gelu")!;
  assert.deepEqual(resolveKernelSource(gelu, "m4").variant, "flat");
});

Deno.test("the repository's own registry loads and every problem has its files", async () => {
  const reg = loadRegistry(workspaceAt(new URL("..", import.meta.url).pathname));
  for (const p of reg.problems.values()) {
    resolveKernelSource(p); // throws when missing
    await Deno.stat(p.referencePath);
  }
});

Deno.test("offline metallibs beside the source: <name>__<chip> → __default → flat, never stale", async () => {
  const entry = { template: "elementwise", description: "r", function: "relu_f32" };
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({ set: "common", problems: { relu: entry } }),
    "kernels/common/relu.metal": "// source",
    "kernels/common/relu__m4.metallib": "",
    "kernels/common/relu__default.metallib": "",
  });
  const relu = loadRegistry(workspaceAt(ws)).problems.get("relu")!;
  const dir = `${ws}/kernels/common`;
  assert.equal(resolveKernelSource(relu, "m4").metallib, `${dir}/relu__m4.metallib`);
  assert.equal(resolveKernelSource(relu, "m2").metallib, `${dir}/relu__default.metallib`);
  // Editing the source makes the offline builds stale: the source is compiled instead.
  const later = new Date(Date.now() + 60_000);
  await Deno.utime(`${dir}/relu.metal`, later, later);
  assert.equal(resolveKernelSource(relu, "m4").metallib, null);
});
