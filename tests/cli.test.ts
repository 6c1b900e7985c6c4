import assert from "node:assert/strict";
import { join } from "node:path";
import { makeWorkspace } from "./_workspace.ts";
import { metalbench } from "./_cli.ts";

const REGISTRY = JSON.stringify({
  set: "common",
  problems: {
    relu: { template: "elementwise", description: "relu", function: "relu_f32" },
    gelu: { template: "elementwise", description: "gelu", function: "gelu_f32" },
  },
});

Deno.test("an unknown kernel is a usage error (exit 2) that suggests the closest names", async () => {
  const ws = await makeWorkspace({ "registry/common.json": REGISTRY });
  const r = await metalbench(["reul", "--workspace", ws]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown kernel 'reul'; did you mean 'relu'/);
  assert.equal(r.stderr.trim().split("\n").length, 1, "one line");
});

Deno.test("bad option values and conflicting flags exit 2", async () => {
  const ws = await makeWorkspace({ "registry/common.json": REGISTRY });
  assert.equal((await metalbench(["relu", "--iters", "0", "--workspace", ws])).code, 2);
  assert.equal((await metalbench(["relu", "--backend", "cuda", "--workspace", ws])).code, 2);
  const both = await metalbench(["relu", "--mlx", "--metal", "--workspace", ws]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--mlx and --metal exclude each other/);
});

Deno.test("an invalid registry exits 4 naming the file and field", async () => {
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: { relu: { template: "elementwise" } },
    }),
  });
  const r = await metalbench(["relu", "--workspace", ws]);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /common\.json: problems\.relu\./);
});

Deno.test("a corrupt session.json stops the run before any work (exit 4) and is kept", async () => {
  const ws = await makeWorkspace({ "registry/common.json": REGISTRY, "session.json": "{ broken" });
  const k = await metalbench(["relu", "--metal", "--workspace", ws]);
  assert.equal(k.code, 4, k.stderr);
  assert.match(k.stderr, /session\.json is not valid JSON .* left as it is/);
  assert.equal(await Deno.readTextFile(join(ws, "session.json")), "{ broken");
});

Deno.test("list shows every problem with its set and variants; --json is machine-readable", async () => {
  const ws = await makeWorkspace({
    "registry/common.json": REGISTRY,
    "kernels/common/relu/default.metal": "",
    "kernels/common/relu/m4.metal": "",
  });
  const r = await metalbench(["list", "--json", "--workspace", ws]);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout).problems as { name: string; variants: string[] }[];
  assert.deepEqual(rows.map((p) => [p.name, p.variants]), [["gelu", ["flat"]], ["relu", [
    "default",
    "m4",
  ]]]);
});
