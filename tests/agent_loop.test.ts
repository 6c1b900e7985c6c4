/**
 * Agent Steel's loop, end to end on the simulator with the real MLX worker
 * and a scripted LLM on loopback (OpenAI and Anthropic APIs, plain and
 * streaming): every verdict a reply can earn, the cheats, best-of-K, the
 * token budget, and what the AttemptDB, the kernel file and session.json
 * hold after each step.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startLlmStub, type StubReply } from "./_llm_stub.ts";
import { agentWorkspace, BUCKET, entries, kernelPath, KERNELS, reply, session } from "./_agent.ts";
import { attempt } from "./_attempts.ts";
import { openProvider, TokenBudget, withBudget } from "../src/agent/providers/provider.ts";
import { historyPath } from "../src/agent/attempts/paths.ts";
import { readTranscript } from "../src/agent/attempts/transcripts.ts";
import { EventSink } from "../src/agent/loop/events.ts";
import { DEFAULT_POLICY, type LoopPolicy } from "../src/agent/loop/policy.ts";
import { runAgent } from "../src/agent/loop/run.ts";
import { agentSteps } from "../src/agent/loop/agent_steps.ts";
import { reconcile, replaceKernelFile } from "../src/agent/loop/kernel_file.ts";
import { loadRegistry } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";

const KEY = "sk-loop-test-" + crypto.randomUUID();

/** Run the loop in this process on `ws`'s relu against the stub; events captured. */
async function runLoop(
  ws: string,
  stubUrl: string,
  api: "openai" | "anthropic",
  policy: Partial<LoopPolicy>,
  opts: { stream?: "always" | "never"; resume?: boolean } = {},
) {
  const workspace = workspaceAt(ws);
  const problem = loadRegistry(workspace).problems.get("relu")!;
  const provider = openProvider({
    provider: api,
    model: "stub-model",
    baseUrl: api === "openai" ? `${stubUrl}/v1` : stubUrl,
    stream: opts.stream ?? "never",
  }, (n) => (n === "OPENAI_API_KEY" || n === "ANTHROPIC_API_KEY" ? KEY : undefined));
  const full = { ...DEFAULT_POLICY, ...policy };
  const budget = new TokenBudget(full.maxTokensTotal);
  const json: string[] = [];
  const lines: string[] = [];
  const outcome = await runAgent({
    problems: [problem],
    workspace,
    root: join(ws, ".agent-steel"),
    backend: "sim",
    policy: full,
    provider: withBudget(provider, budget),
    budget,
    bench: { clock: "batched", fastMath: false },
    resume: opts.resume ?? false,
    rebaseline: false,
    wait: false,
    signal: new AbortController().signal,
    sink: new EventSink({
      json: true,
      redact: (t) => t,
      out: (l) => json.push(l),
      err: (l) => lines.push(l),
    }),
    secrets: [KEY],
    makeSteps: agentSteps,
  });
  assert.equal(outcome.kind, "ran");
  if (outcome.kind !== "ran") throw new Error("unreachable");
  return { result: outcome.results[0], events: json.map((l) => JSON.parse(l)), lines };
}

/** Lines in the AttemptDB file right now (read synchronously, from a stub's responder). */
function lineCount(ws: string): number {
  try {
    const text = Deno.readTextFileSync(historyPath(join(ws, ".agent-steel"), "relu", BUCKET));
    return text.split("\n").filter((l) => l.trim()).length;
  } catch {
    return 0;
  }
}

Deno.test({
  name:
    "every verdict: no code block, compile error (fed back), wrong, three cheats, slower, faster — files as they should be after each",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ws = await agentWorkspace();
    const kfile = kernelPath(ws);
    const original = await Deno.readTextFile(kfile);
    // Each request, in order; what the AttemptDB must hold when it arrives.
    const script: { reply: StubReply; linesBefore: number }[] = [
      { reply: "The inner loop dominates: remove it.", linesBefore: 1 }, // round 1 diagnosis
      { reply: "I would vectorize the loads, but here is no code.", linesBefore: 1 },
      { reply: reply(KERNELS.syntax, "Shorter loop."), linesBefore: 2 },
      { reply: reply(KERNELS.wrong, "Copy."), linesBefore: 3 },
      { reply: reply(KERNELS.skipWritten, "Skip outputs already written."), linesBefore: 4 },
      { reply: reply(KERNELS.keepsState, "Memoize across launches."), linesBefore: 5 },
      { reply: reply(KERNELS.firstTrialOnly, "Clamp to the input range."), linesBefore: 6 },
      { reply: reply(KERNELS.slower, "More unrolling."), linesBefore: 7 },
      { reply: "Still the loop.", linesBefore: 8 }, // round 2 diagnosis
      { reply: reply(KERNELS.fast), linesBefore: 8 },
    ];
    const problems: string[] = [];
    const stub = startLlmStub((_req, i) => {
      const step = script[i];
      if (!step) {
        return { status: 500, body: "script exhausted", headers: { "x-should-retry": "false" } };
      }
      // The state of the files when the model is asked again.
      if (lineCount(ws) !== step.linesBefore) {
        problems.push(
          `request ${i}: ${lineCount(ws)} AttemptDB lines, expected ${step.linesBefore}`,
        );
      }
      if (Deno.readTextFileSync(kfile) !== original) {
        problems.push(`request ${i}: kernel file changed`);
      }
      try {
        Deno.statSync(join(ws, "session.json"));
        problems.push(`request ${i}: session.json written before a keep`);
      } catch { /* absent, as it should be */ }
      return step.reply;
    });
    try {
      const { result, events } = await runLoop(ws, stub.url, "openai", {
        maxRounds: 2,
        candidates: 1,
        retries: 6,
      });
      assert.deepEqual(problems, []);
      assert.equal(stub.requests.length, script.length);
      assert.equal(result.stop, "max-rounds", result.message);

      const got = await entries(ws);
      assert.deepEqual(got.map((e) => [e.round, e.candidate, e.retry]), [
        [0, 0, 0],
        [1, 0, 0],
        [1, 0, 1],
        [1, 0, 2],
        [1, 0, 3],
        [1, 0, 4],
        [1, 0, 5],
        [1, 0, 6],
        [2, 0, 0],
      ]);
      const [base, noBlock, syntax, wrong, skip, state, first, slower, kept] = got;
      assert.equal(base.verdict, "baseline");
      assert.equal(base.source, original);
      assert.equal(noBlock.verdict, "rejected");
      assert.match(noBlock.reason, /no code block/);
      assert.equal(syntax.verdict, "compile-error");
      assert.match(syntax.reason, /expected ';'/);
      assert.equal(wrong.verdict, "incorrect");
      // The output-buffer cheat is caught by the trial on un-poisoned outputs.
      assert.equal(skip.verdict, "incorrect");
      assert.match(skip.reason, /left from the previous trial/);
      // State across launches: refused when compiled.
      assert.ok(["compile-error", "rejected"].includes(state.verdict), state.verdict);
      assert.match(state.reason, /program-scope variable 'memo' is mutable/);
      // Right only for inputs like the first trial's: caught by another input set.
      assert.equal(first.verdict, "incorrect");
      assert.match(first.reason, /edge trial 'large'/);
      assert.equal(slower.verdict, "slower");
      assert.ok(slower.deltaPct! > 0, `slower by ${slower.deltaPct}%`);
      assert.equal(kept.verdict, "kept");
      assert.ok(kept.deltaPct! < -20, `faster by ${kept.deltaPct}%`);
      assert.equal(kept.parentId, base.id);
      assert.equal(kept.source, KERNELS.fast);
      assert.equal(kept.technique, "Vectorized float4 loads and stores.");
      assert.ok(kept.bench!.simulated);
      for (const e of got.slice(1)) {
        assert.equal(e.provider, "openai");
        assert.equal(e.model, "stub-model");
        assert.ok(e.transcript, `${e.id} has a transcript`);
        assert.ok(e.tokens.input > 0 && e.tokens.output > 0, `${e.id} counts its tokens`);
      }
      // Failures are fed back: each retry carries what went wrong with the one before.
      const lastUser = (i: number) => stub.requests[i].messages.at(-1)!.content;
      assert.match(lastUser(2), /no code block/);
      assert.match(lastUser(3), /expected ';'/);
      assert.match(lastUser(4), /within tolerance/);
      assert.match(lastUser(5), /left from the previous trial/);
      assert.match(lastUser(6), /program-scope/);
      assert.match(lastUser(7), /large/);
      // A retry is the same conversation, continued.
      assert.equal(stub.requests[3].messages.length, 5);
      assert.equal(stub.requests[3].messages[3].content, reply(KERNELS.syntax, "Shorter loop."));
      // The diagnosis is recorded with the round's first attempt.
      const t = await readTranscript(join(ws, ".agent-steel"), noBlock.transcript!);
      assert.deepEqual(t.calls.map((c) => c.purpose), ["diagnosis", "rewrite"]);
      assert.equal(t.calls[1].reply, "I would vectorize the loads, but here is no code.");

      // Kept: the kernel file is the candidate, session.json has it, the staging folder is empty.
      assert.equal(await Deno.readTextFile(kfile), KERNELS.fast);
      const s = await session(ws);
      const best = s.buckets[BUCKET].relu;
      assert.equal(best.source, KERNELS.fast);
      assert.equal(best.sourcePath, kfile);
      assert.ok(Math.abs(best.kernelMedianMs * 1e6 - kept.bench!.medianNs) < 1);
      const staged = [...Deno.readDirSync(join(ws, ".agent-steel/staging/relu"))];
      assert.deepEqual(staged, []);
      assert.deepEqual(
        events.filter((e) => e.event !== "attempt").map((e) => e.event),
        [
          "lineage",
          "baseline",
          "round-start",
          "profile",
          "round-end",
          "round-start",
          "profile",
          "kept",
          "round-end",
          "stop",
        ],
      );
      assert.equal(events.filter((e) => e.event === "attempt").length, 8);
    } finally {
      await stub.close();
    }
  },
});

Deno.test({
  name:
    "best of K over the Anthropic API, streamed: the candidate that beat the best by more is kept, the other recorded as slower",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ws = await agentWorkspace();
    const variant = KERNELS.fast.replace("using namespace metal;", "using namespace metal;\n// b");
    const stub = startLlmStub([reply(KERNELS.fast, "Float4."), reply(variant, "Float4 too.")]);
    try {
      const { result } = await runLoop(ws, stub.url, "anthropic", {
        maxRounds: 1,
        candidates: 2,
        diagnosis: false,
      }, { stream: "always" });
      assert.equal(result.stop, "max-rounds", result.message);
      assert.ok(stub.requests.every((r) => r.api === "anthropic" && r.stream));
      const got = await entries(ws);
      assert.deepEqual(got.map((e) => e.verdict).sort(), ["baseline", "kept", "slower"]);
      const kept = got.find((e) => e.verdict === "kept")!;
      const other = got.find((e) => e.verdict === "slower")!;
      assert.equal(got.at(-1), kept, "the kept entry is the lineage's last");
      assert.match(other.reason, /beat the best .* but candidate \d of this round beat it by more/);
      assert.ok(kept.deltaPct! <= other.deltaPct!);
      assert.equal(await Deno.readTextFile(kernelPath(ws)), kept.source);
      assert.equal((await session(ws)).buckets[BUCKET].relu.source, kept.source);
    } finally {
      await stub.close();
    }
  },
});

Deno.test({
  name: "--patience: rounds without a gain stop the loop before --max-rounds",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ws = await agentWorkspace();
    const stub = startLlmStub(() => "Nothing to offer.");
    try {
      const { result, events } = await runLoop(ws, stub.url, "openai", {
        maxRounds: 10,
        patience: 2,
        candidates: 1,
        retries: 0,
        diagnosis: false,
      });
      assert.equal(result.stop, "patience");
      assert.equal(result.rounds, 2);
      assert.deepEqual((await entries(ws)).map((e) => [e.round, e.verdict]), [
        [0, "baseline"],
        [1, "rejected"],
        [2, "rejected"],
      ]);
      assert.deepEqual(
        events.filter((e) => e.event === "round-end").map((e) => e.kept),
        [false, false],
      );
    } finally {
      await stub.close();
    }
  },
});

Deno.test({
  name: "the token budget stops the run cleanly: the kernel file untouched, nothing half-recorded",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ws = await agentWorkspace();
    const stub = startLlmStub([{ text: "A diagnosis.", usage: { input: 900, output: 200 } }]);
    try {
      const { result, events } = await runLoop(ws, stub.url, "openai", {
        maxRounds: 3,
        candidates: 2,
        maxTokensTotal: 1000,
      });
      assert.equal(result.stop, "budget");
      assert.match(result.message, /token budget is spent: 1100 of 1000/);
      assert.equal(stub.requests.length, 1, "no call after the budget is spent");
      assert.deepEqual((await entries(ws)).map((e) => e.verdict), ["baseline"]);
      assert.equal(await Deno.readTextFile(kernelPath(ws)), KERNELS.slow);
      assert.equal(await session(ws), null);
      assert.equal(events.at(-1).event, "stop");
    } finally {
      await stub.close();
    }
  },
});

Deno.test({
  name:
    "a lineage with entries needs --resume; a kernel file that is not the lineage's source stops it in one line",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ws = await agentWorkspace();
    const stub = startLlmStub([]);
    const base = await attempt({ source: KERNELS.slow, ms: 0.1, bucket: BUCKET });
    const db = historyPath(join(ws, ".agent-steel"), "relu", BUCKET);
    await Deno.mkdir(join(db, ".."), { recursive: true });
    await Deno.writeTextFile(db, JSON.stringify(base) + "\n");
    try {
      const fresh = await runLoop(ws, stub.url, "openai", {});
      assert.equal(fresh.result.stop, "usage");
      assert.match(fresh.result.message, /already has 1 attempt.* — fix: pass --resume/);

      await Deno.writeTextFile(kernelPath(ws), KERNELS.fast); // edited by hand meanwhile
      const resumed = await runLoop(ws, stub.url, "openai", {}, { resume: true });
      assert.equal(resumed.result.stop, "kernel-file-changed");
      assert.match(
        resumed.result.message,
        /is not the lineage's current source .* — fix: pass --rebaseline/,
      );
      assert.ok(!resumed.result.message.includes("\n"));
      assert.equal(
        await Deno.readTextFile(kernelPath(ws)),
        KERNELS.fast,
        "left as the user wrote it",
      );
      assert.equal(stub.requests.length, 0);
    } finally {
      await stub.close();
    }
  },
});

Deno.test("a keep cut short between its AttemptDB line and the rename is finished on resume", async () => {
  const dir = await Deno.makeTempDir();
  const file = join(dir, "relu.metal");
  await Deno.writeTextFile(file, "A");
  await Deno.chmod(file, 0o640);
  const lineage = [
    await attempt({ source: "A" }),
    await attempt({ round: 1, verdict: "incorrect", source: "X" }),
    await attempt({ round: 2, verdict: "kept", source: "B" }),
  ];
  assert.deepEqual(await reconcile(file, lineage.slice(0, 2)), { kind: "matches" });
  const r = await reconcile(file, lineage);
  assert.equal(r.kind, "finished-keep");
  assert.equal(await Deno.readTextFile(file), "B");
  assert.equal((await Deno.stat(file)).mode! & 0o777, 0o640, "the file keeps its mode");
  await replaceKernelFile(file, "C");
  assert.deepEqual(await reconcile(file, lineage), { kind: "differs" });
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["relu.metal"], "no temp left");
});

Deno.test("a kept kernel replaces the file a symlink points at; the link stays", async () => {
  const dir = await Deno.makeTempDir();
  const real = join(dir, "real.metal");
  const link = join(dir, "relu.metal");
  await Deno.writeTextFile(real, "A");
  await Deno.symlink(real, link);
  await replaceKernelFile(link, "B");
  assert.ok((await Deno.lstat(link)).isSymlink);
  assert.equal(await Deno.readTextFile(real), "B");
});
