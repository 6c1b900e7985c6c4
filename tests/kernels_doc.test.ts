/**
 * KERNELS.md in the repository is the registry as `metalbench docs` renders
 * it: every problem with its sizes, FLOPs and bytes. A problem added without
 * regenerating it fails here, with the command that fixes it.
 */
import assert from "node:assert/strict";
import { loadRegistry } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";
import { kernelsMarkdown } from "../src/store/markdown.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("KERNELS.md lists every registry problem, as metalbench docs writes it", async () => {
  const registry = loadRegistry(workspaceAt(ROOT));
  const committed = await Deno.readTextFile(`${ROOT}KERNELS.md`);
  assert.equal(committed, kernelsMarkdown(registry), "KERNELS.md is stale: run ./metalbench docs");
  for (const name of registry.problems.keys()) {
    assert.match(committed, new RegExp(`\\| ${name} \\|`), `${name} missing from KERNELS.md`);
  }
});
