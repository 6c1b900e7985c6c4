/**
 * The scan, row-reduction and full-reduction registry templates: what an
 * entry expands to (bindings, grid, intermediates, counts), sized.
 */
import assert from "node:assert/strict";
import { RegistryEntry } from "../src/registry/schema.ts";
import { sizeProblem } from "../src/registry/problem.ts";
import { expand } from "../src/registry/templates.ts";

const sized = (fields: Record<string, unknown>, size: "bench" | "test" = "test") =>
  sizeProblem("p", "common", expand(RegistryEntry.parse({ description: "d", ...fields })), size);

Deno.test("scan: inputs of their own dtype, out[R, C], C after out, one threadgroup per row", () => {
  const p = sized({
    template: "scan",
    function: "masked_cumsum_f32",
    inputs: ["x", { name: "mask", dtype: "int32", init: { kind: "bernoulli", p: 0.5 } }],
    flopsPerElement: 2,
  });
  assert.deepEqual(p.inputs.map((t) => [t.name, t.shape, t.dtype]), [
    ["x", [8, 2053], "float32"],
    ["mask", [8, 2053], "int32"],
  ]);
  assert.deepEqual(p.outputs.map((t) => [t.name, t.shape, t.dtype]), [[
    "out",
    [8, 2053],
    "float32",
  ]]);
  const d = p.dispatches[0];
  assert.deepEqual(d.buffers.map((b) => [b.index, b.tensor]), [[0, "x"], [1, "mask"], [2, "out"]]);
  assert.deepEqual(d.scalars.map((s) => [s.index, s.dtype, s.value]), [[3, "uint32", 2053]]);
  assert.deepEqual([d.grid, d.threadgroup, d.mode], [[8, 1, 1], [256, 1, 1], "threadgroups"]);
  assert.equal(p.flops, 2 * 8 * 2053);
  assert.equal(p.bytes, 3 * 4 * 8 * 2053);
});

Deno.test("rowreduce: out[R, k] with k from init, its own dtype, scalars after C", () => {
  const p = sized({
    template: "rowreduce",
    function: "top_k_f32",
    init: { k: 16 },
    outputCols: "k",
    outputDtype: "uint32",
    scalars: [{ dtype: "uint32", value: "k" }],
  }, "bench");
  assert.deepEqual(p.outputs.map((t) => [t.shape, t.dtype]), [[[1024, 16], "uint32"]]);
  assert.deepEqual(p.dispatches[0].scalars.map((s) => [s.index, s.value]), [[2, 1024], [3, 16]]);
  assert.equal(p.bytes, 4 * 1024 * 1024 + 4 * 1024 * 16);
  // Without outputCols, one value per row; tolerance left to the dtype's default.
  const q = sized({ template: "rowreduce", function: "l1_norm_f32" });
  assert.deepEqual(q.outputs[0].shape, [8]);
  assert.equal(q.bytes, 4 * 8 * 2053 + 4 * 8);
});

Deno.test("reduce: partials then one final threadgroup, G derived from the element count", () => {
  const p = sized({
    template: "reduce",
    function: "mse_loss_f32",
    inputs: ["pred", "target"],
    shape: ["M", "N"],
    sizes: { bench: { M: 1024, N: 1024 }, test: { M: 37, N: 271 } },
    flopsPerElement: 3,
  });
  const n = 37 * 271;
  const G = Math.ceil(n / 4096);
  assert.deepEqual(p.outputs.map((t) => [t.name, t.shape]), [["out", [1]]]);
  assert.deepEqual(p.intermediates.map((t) => [t.name, t.shape]), [["partial", [G]]]);
  const [part, fin] = p.dispatches;
  assert.equal(part.function, "mse_loss_f32_partial");
  assert.deepEqual(part.buffers.map((b) => b.tensor), ["pred", "target", "partial"]);
  assert.deepEqual(part.scalars.map((s) => [s.index, s.value]), [[3, n]]);
  assert.deepEqual([part.grid, part.mode], [[G, 1, 1], "threadgroups"]);
  assert.equal(fin.function, "mse_loss_f32_final");
  assert.deepEqual(fin.buffers.map((b) => [b.index, b.tensor]), [[0, "partial"], [1, "out"]]);
  assert.deepEqual(fin.scalars.map((s) => [s.index, s.value]), [[2, G], [3, n]]);
  assert.deepEqual(fin.grid, [1, 1, 1]);
  assert.equal(p.bytes, 2 * 4 * n + 4);
  // G stops at 1024 threadgroups (2^24 elements would make 4096).
  assert.equal(
    sized({
      template: "reduce",
      function: "f",
      sizes: { bench: { N: 2 ** 24 }, test: { N: 5 } },
    }, "bench").intermediates[0].shape[0],
    1024,
  );
});

Deno.test("an input named like the template's output is refused at sizing, naming it", () => {
  assert.throws(
    () => sized({ template: "rowreduce", function: "f", inputs: ["x", "out"] }),
    /tensor 'out' is declared twice/,
  );
});
