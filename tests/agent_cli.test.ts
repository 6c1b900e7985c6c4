/**
 * `metalbench agent` as a user runs it, as separate processes: kill -9 in
 * the middle of a verification then --resume, two processes on one lineage
 * (and on two), stop signals, history and plot, and a key that never
 * reaches anything the loop wrote.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startLlmStub } from "./_llm_stub.ts";
import {
  agentArgs,
  agentWorkspace,
  BUCKET,
  entries,
  events,
  finished,
  kernelPath,
  KERNELS,
  reply,
  session,
  spawnCli,
  spinRelu,
} from "./_agent.ts";
import { AttemptDB } from "../src/agent/attempts/db.ts";
import { acquireLineage } from "../src/agent/attempts/lineage_lock.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };
/** Long enough to verify for many seconds: the moment to kill. */
const VERY_SLOW = spinRelu(4000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Files under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await filesUnder(p));
    else if (e.isFile) out.push(p);
  }
  return out;
}

/** Wait until a candidate whose attempt id matches `id` is staged (being verified); its path. */
async function whileVerifying(ws: string, id = /./, timeoutMs = 60_000): Promise<string> {
  const dir = join(ws, ".agent-steel/staging/relu");
  for (const end = Date.now() + timeoutMs; Date.now() < end; await sleep(50)) {
    const staged = (await filesUnder(dir).catch(() => [] as string[])).filter((p) => id.test(p));
    if (staged.length) return staged[0];
  }
  throw new Error("no candidate was staged");
}

Deno.test({
  ...opts,
  name:
    "kill -9 while a candidate is verified, then --resume: the kernel file is the last kept, the AttemptDB whole, the loop goes on",
  async fn() {
    const ws = await agentWorkspace();
    const variant = KERNELS.fast.replace("using namespace metal;", "using namespace metal;\n// v2");
    // Anthropic API, plain replies.
    const stub = startLlmStub([reply(KERNELS.fast), reply(VERY_SLOW, "Spin more.")]);
    try {
      const run = spawnCli(
        agentArgs(ws, stub.url, "anthropic", [
          "relu",
          "--loop",
          "--max-rounds",
          "3",
          "--candidates",
          "1",
          "--no-diagnosis",
          "--stream",
          "never",
        ]),
        { AGENT_TEST_KEY: "sk-kill-test-0123456789" },
      );
      // Round 1 keeps the fast kernel; round 2's candidate is being verified when we kill.
      const staged = await whileVerifying(ws, /relu-r2-/);
      await sleep(500);
      run.kill("SIGKILL");
      const killed = await finished(run);
      assert.equal(killed.code, 137, killed.stderr);
      assert.ok((await Deno.stat(staged)).isFile, "killed while the candidate was being verified");
      assert.equal(stub.requests.length, 2);
      assert.ok(stub.requests.every((r) => r.api === "anthropic" && !r.stream));

      assert.equal(await Deno.readTextFile(kernelPath(ws)), KERNELS.fast, "the last kept version");
      const read = await new AttemptDB(join(ws, ".agent-steel"), "relu", BUCKET).read();
      assert.deepEqual(read.warnings, []);
      assert.deepEqual(read.entries.map((e) => [e.round, e.verdict]), [[0, "baseline"], [
        1,
        "kept",
      ]]);

      // Resume: the lineage goes on from round 2, and the staging leftover does not matter.
      stub.push(reply(variant, "Float4 again."));
      const resumed = await finished(spawnCli(
        agentArgs(ws, stub.url, "anthropic", [
          "relu",
          "--resume",
          "--candidates",
          "1",
          "--no-diagnosis",
          "--json",
        ]),
        { AGENT_TEST_KEY: "sk-kill-test-0123456789" },
      ));
      assert.equal(resumed.code, 0, resumed.stderr);
      const got = await entries(ws);
      assert.equal(got.length, 3);
      assert.equal(got[2].round, 2, "round numbering continues");
      assert.equal(got[2].parentId, got[1].id, "from the last kept");
      assert.ok(["kept", "slower"].includes(got[2].verdict), got[2].verdict);
      const current = got.findLast((e) => e.verdict === "kept" || e.verdict === "baseline")!;
      assert.equal(await Deno.readTextFile(kernelPath(ws)), current.source);
      assert.match(resumed.stderr, /\[relu\] lineage .*: 2 attempt\(s\) to round 1, resuming/);
      assert.equal(events(resumed.stdout).at(-1).event, "done");
      await assert.rejects(Deno.stat(staged), Deno.errors.NotFound, "the leftover is cleared");
    } finally {
      await stub.close();
    }
  },
});

Deno.test({
  ...opts,
  name:
    "two processes on one lineage: the second stops at once naming the first's pid (exit 7); on two kernels both finish",
  async fn() {
    const ws = await agentWorkspace(KERNELS.slow, ["relu_b"]);
    // OpenAI API, streamed.
    const again = KERNELS.fast.replace("using namespace metal;", "using namespace metal;\n// w");
    const stub = startLlmStub((req) =>
      // relu's first candidate waits, so its process holds the lineage meanwhile.
      /for `relu` /.test(req.messages[0].content) && req.messages[0].content.includes("12345.0f")
        ? { text: reply(KERNELS.fast), delayMs: 4000 }
        : reply(again)
    );
    try {
      const more = ["--candidates", "1", "--no-diagnosis", "--stream", "always"];
      const first = spawnCli(agentArgs(ws, stub.url, "openai", ["relu", ...more]));
      const lock = join(ws, ".agent-steel/locks", `relu__${BUCKET}.lock`);
      for (let i = 0; i < 600; i++) {
        if ((await Deno.readTextFile(lock).catch(() => "")).includes(`"pid":${first.pid}`)) break;
        await sleep(50);
      }
      const started = performance.now();
      const second = await finished(spawnCli(agentArgs(ws, stub.url, "openai", ["relu", ...more])));
      const secondMs = performance.now() - started;
      const other = spawnCli(agentArgs(ws, stub.url, "openai", ["relu_b", ...more]));
      const waiter = spawnCli(
        agentArgs(ws, stub.url, "openai", ["relu", "--wait", "--resume", ...more]),
      );
      assert.equal(second.code, 7, second.stderr);
      assert.equal(
        second.stderr.trim().split("\n").filter((l) => l.startsWith("metalbench:")).length,
        1,
        second.stderr,
      );
      assert.match(
        second.stderr,
        new RegExp(
          `metalbench: kernel relu \\(${BUCKET}\\) is being optimized by process ${first.pid} .* — fix: .*--wait`,
        ),
      );
      assert.ok(secondMs < 15_000, `stopped in ${secondMs} ms`);

      const [a, b, w] = await Promise.all([finished(first), finished(other), finished(waiter)]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      // --wait: waited for the first, then continued its lineage.
      assert.equal(w.code, 0, w.stderr);
      assert.match(
        w.stderr,
        new RegExp(`\\[relu\\] waiting: the lineage is held by process ${first.pid}`),
      );
      assert.deepEqual((await entries(ws, "relu")).map((e) => e.round), [0, 1, 2]);
      assert.ok(stub.requests.every((r) => r.stream));
      assert.equal((await entries(ws, "relu"))[1].verdict, "kept");
      assert.equal((await entries(ws, "relu_b")).at(-1)!.verdict, "kept");
      // The lineage is free again.
      const l = await acquireLineage(join(ws, ".agent-steel"), "relu", BUCKET, { wait: false });
      await l.release();
    } finally {
      await stub.close();
    }
  },
});

for (const [sig, code] of [["SIGTERM", 143], ["SIGHUP", 129]] as const) {
  Deno.test({
    ...opts,
    name:
      `${sig} while a candidate is verified: exit ${code}, the lineage released, the kernel file untouched`,
    async fn() {
      const ws = await agentWorkspace();
      const stub = startLlmStub([reply(VERY_SLOW, "Spin more.")]);
      try {
        const run = spawnCli(
          agentArgs(ws, stub.url, "openai", ["relu", "--candidates", "1", "--no-diagnosis"]),
        );
        await whileVerifying(ws);
        run.kill(sig);
        const out = await finished(run);
        assert.equal(out.code, code, out.stderr);
        assert.match(out.stderr, new RegExp(`${sig}: stopping`));
        assert.doesNotMatch(out.stderr, /internal error/);
        assert.equal(await Deno.readTextFile(kernelPath(ws)), KERNELS.slow);
        assert.deepEqual((await entries(ws)).map((e) => e.verdict), ["baseline"]);
        const l = await acquireLineage(join(ws, ".agent-steel"), "relu", BUCKET, { wait: false });
        await l.release();
      } finally {
        await stub.close();
      }
    },
  });
}

Deno.test({
  ...opts,
  name:
    "an API key in the environment reaches no file, log, stdout or stderr, even when the model echoes it",
  async fn() {
    const key = `sk-${crypto.randomUUID()}${crypto.randomUUID()}`.replaceAll("-", "");
    const ws = await agentWorkspace(KERNELS.slow, ["relu_b"]);
    const echo = (what: string) => ({
      body: (req: { headers: Record<string, string> }) => {
        const sent = (req.headers.authorization ?? "").replace(/^Bearer /, "");
        return JSON.stringify({
          id: "x",
          object: "chat.completion",
          created: 0,
          model: "stub-model",
          choices: [{
            index: 0,
            finish_reason: "stop",
            message: { role: "assistant", content: what.replaceAll("KEY", sent) },
          }],
          usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 },
        });
      },
    });
    const withKey = KERNELS.fast.replace(
      "using namespace metal;",
      "using namespace metal;\n// KEY",
    );
    // Two kernels at once, each: a diagnosis echoing the key, a kernel hiding it, a clean one.
    const stub = startLlmStub((req) => {
      const last = req.messages.at(-1)?.content ?? "";
      if (/^Diagnose/.test(last)) return echo("Your key is KEY; the loop dominates.");
      if (/^Write a faster kernel/.test(last)) {
        return echo(reply(withKey, "Key KEY in a comment."));
      }
      return echo(reply(KERNELS.fast, "Float4; the key was KEY."));
    });
    try {
      const out = await finished(spawnCli(
        [
          "agent",
          "relu,relu_b",
          "--parallel",
          "2",
          "--candidates",
          "1",
          "--json",
          "--backend=sim",
          "--workspace",
          ws,
          "--provider",
          "openai",
          "--base-url",
          `${stub.url}/v1`,
          "--model",
          "stub-model",
        ],
        { OPENAI_API_KEY: key },
      ));
      assert.equal(out.code, 0, out.stderr);
      const texts: [string, string][] = [["stdout", out.stdout], ["stderr", out.stderr]];
      for (const f of await filesUnder(ws)) texts.push([f, await Deno.readTextFile(f)]);
      assert.ok(texts.some(([f]) => f.includes(".agent-steel/logs/")), "a log was written");
      assert.ok(texts.some(([f]) => f.includes(".agent-steel/transcripts/")));
      for (const [where, text] of texts) {
        assert.ok(!text.includes(key), `the key is in ${where}`);
        assert.ok(!text.includes(key.slice(10, 30)), `a piece of the key is in ${where}`);
      }
      assert.ok(stub.requests.length >= 6, "the model was asked");
      assert.ok(stub.requests.every((r) => r.headers.authorization === `Bearer ${key}`));
      const got = await entries(ws);
      assert.match(got[1].reason, /holds an API key/);
      assert.equal(got.at(-1)!.verdict, "kept");
    } finally {
      await stub.close();
    }
  },
});

Deno.test({
  ...opts,
  name: "history and plot read the AttemptDB alone, warning about a torn line on stderr",
  async fn() {
    const ws = await agentWorkspace();
    const stub = startLlmStub([reply(KERNELS.fast)]);
    try {
      const run = await finished(
        spawnCli(
          agentArgs(ws, stub.url, "openai", ["relu", "--candidates", "1", "--no-diagnosis"]),
        ),
      );
      assert.equal(run.code, 0, run.stderr);
    } finally {
      await stub.close();
    }
    const db = join(ws, ".agent-steel/history", `relu__${BUCKET}.jsonl`);
    await Deno.writeTextFile(db, '{"version":1,"id":"torn', { append: true });

    const table = await finished(spawnCli(["agent", "history", "relu", "--workspace", ws]));
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /relu \(sim-[^)]+\): 2 attempts over 1 round — best .* vs baseline/);
    assert.match(table.stdout, /baseline/);
    assert.match(table.stdout, /kept/);
    assert.match(table.stdout, /simulated CPU times/);
    assert.match(table.stderr, /warning: .* line 3 is torn .* skipped/);

    const json = await finished(
      spawnCli(["agent", "history", "relu", "--json", "--workspace", ws]),
    );
    assert.deepEqual(events(json.stdout).map((e) => e.verdict), ["baseline", "kept"]);

    const svg = join(ws, "curves.svg");
    const plot = await finished(spawnCli(["agent", "plot", "relu", "-o", svg, "--workspace", ws]));
    assert.equal(plot.code, 0, plot.stderr);
    assert.match(await Deno.readTextFile(svg), /<svg[\s\S]*relu[\s\S]*\+\d+\.\d%/);
    assert.match(plot.stderr, /torn/);

    const none = await finished(spawnCli(["agent", "history", "gelu", "--workspace", ws]));
    assert.equal(none.code, 2);
    assert.match(
      none.stderr,
      /^metalbench: no attempts recorded for gelu .* — fix: run: metalbench agent gelu --loop\n$/,
    );
    assert.equal(await session(ws) !== null, true);
  },
});
