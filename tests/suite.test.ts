/**
 * The problem suite itself: every problem of this repository's registry runs
 * through the real pipeline (CLI, simulator bridge, MLX worker) at its test
 * size and must be correct. One `--all --json` run serves every test (one
 * Python start, one MLX import); each problem is its own Deno.test so a
 * failure names the problem and says why.
 *
 * Needs the simulator bridge (make -C ffi sim) and a Python with MLX
 * (METALBENCH_PYTHON, else the managed env of `metalbench setup`).
 */
import assert from "node:assert/strict";
import { loadRegistry, problemsInOrder } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";
import type { RunRecord } from "../src/store/schema.ts";
import { metalbench } from "./_cli.ts";

const ROOT = new URL("../", import.meta.url).pathname;

const names = problemsInOrder(loadRegistry(workspaceAt(ROOT))).map((p) => p.name);

interface SuiteRun {
  code: number;
  stderr: string;
  runs: Map<string, RunRecord>;
}

let suite: Promise<SuiteRun> | undefined;

/** The whole suite on the simulator, run once on first use. */
function runSuite(): Promise<SuiteRun> {
  suite ??= (async () => {
    const out = await metalbench([
      "--all",
      "--workspace",
      ROOT,
      "--backend",
      "sim",
      "--size",
      "test",
      "--no-session",
      "--json",
      "--iters",
      "2",
      "--warmup",
      "0",
      "--trials",
      "2",
      "--batch",
      "1",
    ]);
    const { stdout, stderr } = out;
    const runs = new Map<string, RunRecord>();
    if (stdout.trim()) {
      const parsed = JSON.parse(stdout) as { runs: RunRecord[] };
      for (const r of parsed.runs) runs.set(r.kernel, r);
    }
    return { code: out.code, stderr, runs };
  })();
  return suite;
}

Deno.test("the registry has problems", () => {
  assert.ok(names.length > 0);
});

for (const name of names) {
  Deno.test(`suite: ${name} is correct on the simulator at its test size`, async () => {
    const { code, stderr, runs } = await runSuite();
    const r = runs.get(name);
    assert.ok(r, `no run record for ${name} (metalbench exit ${code}): ${stderr.trim()}`);
    assert.equal(r.error, null, `${name}: ${r.error?.kind}: ${r.error?.message}`);
    assert.equal(
      r.correctness.status,
      "correct",
      `${name}: ${r.correctness.status}: ${r.correctness.detail}`,
    );
    assert.equal(r.backend, "sim");
    assert.ok(r.correctness.trials.length >= 2, `${name}: ${r.correctness.trials.length} checks`);
  });
}
