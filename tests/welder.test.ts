/**
 * The Welder end to end, as a user runs it: `metalbench welder` against the
 * loopback LLM stub, with real PyTorch and the real MLX worker (both
 * sandboxed), and the real simulator through the harness. A weld lands all
 * its files; a failure at stage 1 or 2 leaves every problem file as it was
 * and says which stage failed and why, in one line, with exit code 9.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  agentWorkspace,
  entries,
  finished,
  kernelPath,
  KERNELS,
  reply,
  spawnCli,
} from "./_agent.ts";
import { startLlmStub } from "./_llm_stub.ts";
import {
  byStage,
  FIXTURES,
  kernelReply,
  llmArgs,
  referenceReply,
  snapshot,
  stageOf,
  SWISH,
  TORCH_MISSING,
} from "./_welder.ts";
import { loadRegistry } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";

function includes(text: string, part: string) {
  assert.ok(text.includes(part), `expected ${JSON.stringify(part)} in:\n${text}`);
}

const SWISH_REF = join(FIXTURES, "1_Scaled_Swish.py");
const ignore = TORCH_MISSING !== null;

function welder(ws: string, url: string, name: string, more: string[] = []) {
  return finished(spawnCli([
    "welder",
    name,
    "--workspace",
    ws,
    "--description",
    "x * sigmoid(1.702 x), element-wise",
    "--reference",
    SWISH_REF,
    "--set",
    "standard",
    ...llmArgs(url),
    ...more,
  ]));
}

Deno.test({
  name: "welder: a problem welded end to end lands its reference, entry and kernel",
  ignore,
  async fn() {
    const ws = await agentWorkspace();
    const stub = startLlmStub(byStage({
      swish: {
        1: [referenceReply(SWISH.python, SWISH.entry())],
        2: [kernelReply(SWISH.wrongKernel()), kernelReply(SWISH.kernel())],
      },
    }));
    try {
      const r = await welder(ws, stub.url, "swish", ["--json"]);
      assert.deepEqual(r.code, 0, r.stderr);
      const done = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
      assert.deepEqual(done.files, [
        "references/standard/swish.py",
        "kernels/standard/swish.metal",
        "registry/welded.swish.json",
      ]);
      assert.deepEqual(done.attempts, { stage1: 1, stage2: 2 });
      // The files are what the model wrote, and the workspace's registry serves the problem.
      assert.deepEqual(
        await Deno.readTextFile(join(ws, "references/standard/swish.py")),
        SWISH.python,
      );
      assert.deepEqual(
        await Deno.readTextFile(join(ws, "kernels/standard/swish.metal")),
        SWISH.kernel(),
      );
      const p = loadRegistry(workspaceAt(ws)).problems.get("swish")!;
      assert.deepEqual(p.set, "standard");
      assert.deepEqual(p.entry.inputs.map((t) => t.name), ["x"]);
      // The stage-2 retry was told why the first kernel failed.
      const retry = stub.requests.find((q) => q.messages.length === 3)!;
      assert.match(
        retry.messages[2].content,
        /That did not pass: .*(incorrect|differ|outside|element)/i,
      );
      // Every attempt is in the AttemptDB, the passing kernel as the lineage's baseline.
      const log = await entries(ws, "swish");
      assert.deepEqual(log.map((e) => [e.candidate, e.verdict]), [[1, "kept"], [2, "incorrect"], [
        2,
        "baseline",
      ]]);
      assert.deepEqual(log[2].source, SWISH.kernel());
      assert(log[2].bench && log[2].bench.simulated);
      assert(log.every((e) => e.transcript !== null));
      // The welded problem runs as any other.
      const run = await finished(
        spawnCli(["swish", "--workspace", ws, "--backend=sim", "--no-session"]),
      );
      assert.deepEqual(run.code, 0, run.stderr);
    } finally {
      await stub.close();
      await Deno.remove(ws, { recursive: true });
    }
  },
});

Deno.test({
  name: "welder: an MLX reference that disagrees with PyTorch fails stage 1, workspace untouched",
  ignore,
  async fn() {
    const ws = await agentWorkspace();
    const before = await snapshot(ws);
    const stub = startLlmStub(byStage({
      swish: {
        1: [
          // First an entry whose bench size is not get_inputs()'s, then a wrong formula.
          referenceReply(SWISH.python, {
            ...SWISH.entry(),
            sizes: { bench: { M: 8, N: 1000 }, test: { M: 3, N: 1001 } },
          }),
          referenceReply(SWISH.wrongPython, SWISH.entry()),
        ],
      },
    }));
    try {
      const r = await welder(ws, stub.url, "swish", ["--retries", "1"]);
      assert.deepEqual(r.code, 9, r.stderr);
      const last = r.stderr.trim().split("\n").at(-1)!;
      assert.match(
        last,
        /^metalbench: weld of swish failed at stage 1 \(the MLX reference against PyTorch\): seed \d+: output 'y' differs from PyTorch in \d+ of 3003 elements.*\(after 2 attempts\) — the workspace is unchanged$/,
      );
      assert.deepEqual(stub.requests.length, 2); // one reply and one retry, then it stops
      includes(
        stub.requests[1].messages[2].content,
        "input 0 'x' is [8, 1000] at the bench size; get_inputs() gives [8, 1024]",
      );
      assert.deepEqual(await snapshot(ws), before);
      const log = await entries(ws, "swish");
      assert.deepEqual(log.map((e) => e.verdict), ["rejected", "incorrect"]);
      // Nothing is left in staging.
      assert.deepEqual([...Deno.readDirSync(join(ws, ".agent-steel/staging"))], []);
    } finally {
      await stub.close();
      await Deno.remove(ws, { recursive: true });
    }
  },
});

Deno.test({
  name: "welder: a wrong kernel fails stage 2, workspace untouched",
  ignore,
  async fn() {
    const ws = await agentWorkspace();
    const before = await snapshot(ws);
    const stub = startLlmStub(byStage({
      swish: {
        1: [referenceReply(SWISH.python, SWISH.entry())],
        2: [kernelReply(SWISH.wrongKernel())],
      },
    }));
    try {
      const r = await welder(ws, stub.url, "swish", ["--retries", "0"]);
      assert.deepEqual(r.code, 9, r.stderr);
      assert.match(
        r.stderr.trim().split("\n").at(-1)!,
        /^metalbench: weld of swish failed at stage 2 \(the Metal kernel against MLX\): .+ \(after 1 attempt\) — the workspace is unchanged$/,
      );
      assert.deepEqual(await snapshot(ws), before);
      const log = await entries(ws, "swish");
      assert.deepEqual(log.map((e) => e.verdict), ["kept", "incorrect"]);
    } finally {
      await stub.close();
      await Deno.remove(ws, { recursive: true });
    }
  },
});

Deno.test("welder: usage errors come before any work", async () => {
  const ws = await agentWorkspace();
  try {
    const taken = await finished(spawnCli([
      "welder",
      "relu",
      "--workspace",
      ws,
      "--description",
      "d",
      "--reference",
      SWISH_REF,
      "--provider",
      "openai-compatible",
      "--base-url",
      "http://127.0.0.1:9/v1",
      "--model",
      "m",
    ]));
    assert.deepEqual(taken.code, 2);
    includes(taken.stderr, "'relu' is already a problem");
    const missing = await finished(spawnCli(["welder", "x", "--workspace", ws]));
    assert.deepEqual(missing.code, 2);
    includes(missing.stderr, "--description");
    const bad = await finished(spawnCli([
      "welder",
      "9x",
      "--workspace",
      ws,
      "--description",
      "d",
      "--reference",
      SWISH_REF,
    ]));
    assert.deepEqual(bad.code, 2);
    includes(bad.stderr, "is not a problem name");
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});

Deno.test({
  name:
    "welder --polish: a correct rewrite replaces the kernel and the docs; a wrong one changes nothing",
  ignore,
  async fn() {
    const ws = await agentWorkspace();
    const kernel = kernelPath(ws);
    const stub = startLlmStub([kernelReply(KERNELS.wrong), kernelReply(KERNELS.fast)]);
    try {
      const polish = () =>
        finished(spawnCli([
          "welder",
          "relu",
          "--polish",
          "--retries",
          "0",
          "--workspace",
          ws,
          ...llmArgs(stub.url),
        ]));
      const before = await snapshot(ws);
      const wrong = await polish();
      assert.equal(wrong.code, 9, wrong.stderr);
      assert.match(wrong.stderr, /polish of relu failed: .* — the kernel is unchanged/);
      assert.deepEqual(await snapshot(ws), before);

      const good = await polish();
      assert.equal(good.code, 0, good.stderr);
      assert.equal(await Deno.readTextFile(kernel), KERNELS.fast);
      assert.ok((await Deno.readTextFile(join(ws, "KERNELS.md"))).includes("relu"));
      const log = await entries(ws, "relu");
      assert.deepEqual(log.map((e) => e.verdict), ["incorrect", "baseline"]);
      assert.equal(log[1].round, 1); // after the failed polish's round 0
      assert.ok(
        stub.requests[0].messages[0].content.includes("Polish the kernel of problem `relu`"),
      );
    } finally {
      await stub.close();
      await Deno.remove(ws, { recursive: true });
    }
  },
});

Deno.test({
  name: "welder --loop: Agent Steel continues the welded kernel's lineage",
  ignore,
  async fn() {
    const ws = await agentWorkspace();
    const weldReplies = byStage({
      swish: {
        1: [referenceReply(SWISH.python, SWISH.entry())],
        2: [kernelReply(SWISH.kernel())],
      },
    });
    // The agent's own requests (diagnosis, rewrite) get a same-speed rewrite: never kept.
    const stub = startLlmStub((req) =>
      stageOf(req).stage ? weldReplies(req) : reply(SWISH.kernel().replace("// y", "// Y"))
    );
    try {
      const r = await welder(ws, stub.url, "swish", [
        "--loop",
        "--max-rounds",
        "1",
        "--candidates",
        "1",
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /\[swish\] lineage sim-[^:]+: 2 attempt\(s\) to round 0, resuming/);
      const log = await entries(ws, "swish");
      assert.deepEqual(log.map((e) => [e.round, e.verdict]), [[0, "kept"], [0, "baseline"], [
        1,
        "slower",
      ]]);
      assert.equal(
        await Deno.readTextFile(join(ws, "kernels/standard/swish.metal")),
        SWISH.kernel(),
      );
    } finally {
      await stub.close();
      await Deno.remove(ws, { recursive: true });
    }
  },
});
