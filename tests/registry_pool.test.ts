/**
 * The `pool` registry template: what a pooling entry expands to (bindings,
 * grid, function constants, counts, tolerance), and the sizes it refuses at
 * load with a message naming the field.
 */
import assert from "node:assert/strict";
import { RegistryEntry } from "../src/registry/schema.ts";
import { sizeProblem } from "../src/registry/problem.ts";
import { expand } from "../src/registry/templates.ts";
import { loadRegistry } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";
import { makeWorkspace } from "./_workspace.ts";

const pool = (fields: Record<string, unknown>) =>
  RegistryEntry.parse({
    template: "pool",
    description: "pool",
    function: "pool_f32",
    op: "max",
    dims: 2,
    kernel: 2,
    stride: 2,
    sizes: { bench: { N: 8, H: 64, W: 64, C: 64 }, test: { N: 2, H: 9, W: 11, C: 20 } },
    ...fields,
  });

Deno.test("pool template, 2-D: trailing rows dropped, one thread per pixel and float4", () => {
  const p = sizeProblem("max_pool2d", "common", expand(pool({})), "test");
  assert.deepEqual(p.inputs.map((t) => [t.name, t.shape]), [["x", [2, 9, 11, 20]]]);
  assert.deepEqual(p.outputs.map((t) => [t.name, t.shape]), [["y", [2, 4, 5, 20]]]);
  const d = p.dispatches[0];
  assert.deepEqual(d.buffers, [{ index: 0, tensor: "x" }, { index: 1, tensor: "y" }]);
  assert.deepEqual(d.scalars.map((s) => [s.index, s.value]), [
    [2, 9],
    [3, 11],
    [4, 20],
    [5, 4],
    [6, 5],
  ]);
  assert.ok(d.scalars.every((s) => s.dtype === "uint32"));
  assert.deepEqual([d.grid, d.mode], [[5 * 5, 4, 2], "threads"]);
  assert.deepEqual(d.constants, { K: 2, S: 2 });
  assert.deepEqual(p.init, { k: 2, s: 2 }, "the reference's Model(k, s)");
  // A max is exact; 3 comparisons per output; reads the 8x10 pixels windows reach.
  assert.deepEqual(p.tolerance, { rtol: 0, stol: 0, atol: 0 });
  assert.equal(p.flops, 3 * 2 * 4 * 5 * 20);
  assert.equal(p.bytes, 4 * (2 * 8 * 10 * 20 + 2 * 4 * 5 * 20));
});

Deno.test("pool template, 1-D and 3-D: overlapping windows, the plane split in z", () => {
  const one = sizeProblem(
    "avg_pool1d",
    "common",
    expand(pool({
      op: "avg",
      dims: 1,
      kernel: 3,
      sizes: { bench: { N: 8, L: 256, C: 64 }, test: { N: 3, L: 38, C: 12 } },
    })),
    "test",
  );
  assert.deepEqual(one.outputs[0].shape, [3, 18, 12]);
  assert.deepEqual(one.dispatches[0].grid, [18 * 3, 3, 1]);
  assert.deepEqual(one.dispatches[0].scalars.map((s) => s.value), [38, 12, 18]);
  // A mean of 3 is 2 adds and a scale; windows overlap, so rows 0..36 are read.
  assert.equal(one.flops, 3 * 3 * 18 * 12);
  assert.equal(one.bytes, 4 * (3 * 37 * 12 + 3 * 18 * 12));
  assert.equal(one.tolerance.rtol, 1e-4, "an average keeps float32's default tolerance");

  const three = sizeProblem(
    "max_pool3d",
    "common",
    expand(pool({
      dims: 3,
      sizes: {
        bench: { N: 4, D: 32, H: 32, W: 32, C: 32 },
        test: { N: 2, D: 5, H: 7, W: 9, C: 8 },
      },
    })),
    "test",
  );
  assert.deepEqual(three.outputs[0].shape, [2, 2, 3, 4, 8]);
  assert.deepEqual(three.dispatches[0].grid, [4 * 2, 3, 2 * 2]);
  assert.deepEqual(three.dispatches[0].scalars.map((s) => s.value), [5, 7, 9, 8, 2, 3, 4]);

  // A stride past the window skips rows: only the windows' own rows are read.
  const gaps = sizeProblem("p", "common", expand(pool({ kernel: 2, stride: 3 })), "test");
  assert.deepEqual(gaps.outputs[0].shape, [2, 3, 4, 20]);
  assert.equal(gaps.bytes, 4 * (2 * 6 * 8 * 20 + 2 * 3 * 4 * 20));
});

Deno.test("pool template: a size the kernels cannot run is refused at load, naming the field", async () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ N: 2, H: 9, W: 11, C: 6 }, /sizes\.test\.C: C = 6 is not a multiple of 4/],
    [{ N: 2, H: 9, C: 8 }, /sizes\.test: a 2-D pool needs size W/],
    [{ N: 2, H: 1, W: 11, C: 8 }, /sizes\.test\.H: H = 1 is smaller than the window \(2\)/],
  ];
  for (const [test, message] of cases) {
    const entry = {
      template: "pool",
      description: "p",
      function: "p",
      op: "max",
      dims: 2,
      kernel: 2,
      stride: 2,
      sizes: { bench: { N: 1, H: 4, W: 4, C: 4 }, test },
    };
    const ws = await makeWorkspace({
      "registry/common.json": JSON.stringify({ set: "common", problems: { p: entry } }),
    });
    assert.throws(() => loadRegistry(workspaceAt(ws)), { name: "RegistryError", message });
  }
});
