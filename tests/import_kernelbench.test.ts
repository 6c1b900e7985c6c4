/**
 * `metalbench import kernelbench` over a folder of KernelBench-format files
 * (tests/fixtures/kernelbench): a level-1 op and a level-2 fused op with a
 * parameter are welded, a constant output and an unused input are reported
 * as degenerate and skipped, a reference that raises fails at stage 0; the
 * run resumes from its state file, asking the model nothing twice.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { agentWorkspace, events, finished, spawnCli } from "./_agent.ts";
import { startLlmStub } from "./_llm_stub.ts";
import {
  BIAS_RELU,
  byStage,
  FIXTURES,
  kernelReply,
  llmArgs,
  referenceReply,
  SWISH,
  TORCH_MISSING,
} from "./_welder.ts";
import { loadRegistry } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";

const SCRIPT = {
  kb_1_scaled_swish: {
    1: [referenceReply(SWISH.python, SWISH.entry("kb_swish_f32"))],
    2: [kernelReply(SWISH.kernel("kb_swish_f32"))],
  },
  kb_2_bias_add_relu: {
    1: [referenceReply(BIAS_RELU.python, BIAS_RELU.entry)],
    2: [kernelReply(BIAS_RELU.kernel)],
  },
};

function importRun(ws: string, url: string, more: string[] = []) {
  return finished(spawnCli([
    "import",
    "kernelbench",
    FIXTURES,
    "--workspace",
    ws,
    "--json",
    ...llmArgs(url),
    ...more,
  ]));
}

Deno.test({
  name: "import kernelbench: summary by outcome and stage, resumable",
  ignore: TORCH_MISSING !== null,
  async fn() {
    const ws = await agentWorkspace();
    const stub = startLlmStub(byStage(SCRIPT));
    try {
      // A first run over part of the folder.
      const first = await importRun(ws, stub.url, ["--only", "1_*,3_*"]);
      assert.equal(first.code, 0, first.stderr);
      const s1 = events(first.stdout).at(-1);
      assert.deepEqual(s1.imported, ["kb_1_scaled_swish"]);
      assert.deepEqual(s1.degenerate.map((d: { file: string }) => d.file), ["3_Softmax_Of_One.py"]);
      assert.equal(stub.requests.length, 2);

      // The whole folder: what the first run settled is not welded again.
      const second = await importRun(ws, stub.url);
      assert.equal(second.code, 9, second.stderr); // one problem failed
      const ev = events(second.stdout);
      const summary = ev.at(-1);
      assert.equal(summary.event, "summary");
      assert.deepEqual(summary.imported, ["kb_1_scaled_swish", "kb_2_bias_add_relu"]);
      assert.equal(summary.resumed, 2);
      assert.deepEqual(summary.degenerate, [
        {
          file: "3_Softmax_Of_One.py",
          reason: "the output is the same for 3 seeds (a constant)",
        },
        {
          file: "4_Unused_Input.py",
          reason: "the output does not change when input 1 alone is redrawn (3 seeds)",
        },
      ]);
      assert.equal(summary.failed.length, 1);
      assert.equal(summary.failed[0].file, "5_Raises.py");
      assert.equal(summary.failed[0].stage, 0);
      assert.match(summary.failed[0].reason, /RuntimeError: this reference is broken on purpose/);
      assert.deepEqual(ev.filter((e) => e.event === "problem").map((e) => e.file), [
        "2_Bias_Add_ReLU.py",
        "4_Unused_Input.py",
        "5_Raises.py",
      ]);
      assert.equal(stub.requests.length, 4); // only 2_'s two stages asked the model

      // Both welded problems are in the workspace, the fused one with its parameter as an input.
      const reg = loadRegistry(workspaceAt(ws));
      assert.equal(reg.problems.get("kb_1_scaled_swish")?.set, "standard");
      assert.deepEqual(reg.problems.get("kb_2_bias_add_relu")?.entry.inputs.map((t) => t.name), [
        "x",
        "bias",
      ]);
      assert.equal(reg.problems.has("kb_3_softmax_of_one"), false);

      // A third run has nothing left to do.
      const third = await importRun(ws, stub.url);
      assert.equal(third.code, 9);
      assert.equal(events(third.stdout).at(-1).resumed, 5);
      assert.equal(stub.requests.length, 4);

      // The human summary says the same, by stage.
      const human = await finished(spawnCli([
        "import",
        "kernelbench",
        FIXTURES,
        "--workspace",
        ws,
        ...llmArgs(stub.url),
      ]));
      assert.match(
        human.stderr,
        /import: 2 imported, 2 degenerate \(skipped\), 1 failed, 0 already present, of 5/,
      );
      assert.match(human.stderr, /failed at stage 0: 1\n.*5_Raises\.py: .*RuntimeError/);
      const state = [...Deno.readDirSync(join(ws, ".agent-steel/import"))].filter((e) =>
        e.name.endsWith(".json")
      );
      assert.equal(state.length, 1);
    } finally {
      await stub.close();
      await Deno.remove(ws, { recursive: true });
    }
  },
});
