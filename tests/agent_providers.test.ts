/**
 * The LLM providers against a real HTTP server on loopback (tests/_llm_stub.ts)
 * and real child processes: replies and token counts, plain and streamed,
 * retries, timeouts, the key kept out of every text, the command provider,
 * and the token budget.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type ChatProvider,
  type ChatRequest,
  openProvider,
  PLACEHOLDER_KEY,
  ProviderError,
  type ProviderOptions,
  STREAM_ABOVE_MAX_TOKENS,
  TokenBudget,
  withBudget,
} from "../src/agent/providers/provider.ts";
import { splitCommand } from "../src/agent/providers/argv.ts";
import { redactor } from "../src/agent/providers/errors.ts";
import { type LlmStub, startLlmStub, type StubReply } from "./_llm_stub.ts";

const KEY = "sk-test-7f3a9c1e5b2d8f4a6c0e9b7d5f3a1c8e";
const env = (vars: Record<string, string>) => (name: string) => vars[name];
const ENV = env({ OPENAI_API_KEY: KEY, ANTHROPIC_API_KEY: KEY });

const REQ: ChatRequest = {
  system: "You write Metal kernels.",
  messages: [{ role: "user", content: "Make relu faster." }],
  maxTokens: 1000,
  purpose: "rewrite",
};

type Http = "openai" | "anthropic" | "openai-compatible";
const HTTP: Http[] = ["openai", "anthropic", "openai-compatible"];

function open(
  stub: LlmStub,
  provider: Http,
  extra: Partial<ProviderOptions> = {},
  getEnv = ENV,
): ChatProvider {
  const baseUrl = provider === "anthropic" ? stub.url : `${stub.url}/v1`;
  const apiKeyEnv = provider === "openai-compatible" ? "OPENAI_API_KEY" : undefined;
  return openProvider({ provider, model: "stub-model", baseUrl, apiKeyEnv, ...extra }, getEnv);
}

async function withStub(script: StubReply[], fn: (stub: LlmStub) => Promise<void>) {
  const stub = startLlmStub(script);
  try {
    await fn(stub);
  } finally {
    await stub.close();
  }
}

async function failure(p: Promise<unknown>): Promise<ProviderError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof ProviderError, `expected a ProviderError, got ${e}`);
    return e;
  }
  assert.fail("the call succeeded");
}

/** Every text an error can show: message, stack, JSON, inspection, detail. */
function allText(e: unknown): string {
  return [String(e), (e as Error).stack, JSON.stringify(e), Deno.inspect(e, { depth: 8 })].join(
    "\n",
  );
}

function assertOneLine(e: ProviderError) {
  assert.ok(!e.message.includes("\n"), `not one line: ${e.message}`);
  assert.match(e.message, / — fix: /);
}

// ---- replies and usage -------------------------------------------------------

for (const provider of HTTP) {
  for (const stream of [false, true]) {
    Deno.test(`${provider} ${stream ? "streamed" : "plain"}: the reply's text and usage`, async () => {
      const text = "```metal\nkernel void relu() {}\n```\nTechnique: vectorized loads.";
      await withStub([{ text, usage: { input: 123, output: 45 } }], async (stub) => {
        const p = open(stub, provider, { stream: stream ? "always" : "never" });
        const reply = await p.complete(REQ);
        assert.equal(reply.text, text);
        assert.deepEqual(reply.usage, { inputTokens: 123, outputTokens: 45 });
        assert.equal(reply.provider, provider);
        assert.equal(reply.model, "stub-model");
        assert.equal(reply.streamed, stream);
        assert.equal(reply.truncated, false);
        assert.ok(reply.latencyMs > 0);

        const [req] = stub.requests;
        assert.equal(req.api, provider === "anthropic" ? "anthropic" : "openai");
        assert.equal(req.stream, stream);
        assert.equal(req.system, REQ.system);
        assert.deepEqual(req.messages, [{ role: "user", content: "Make relu faster." }]);
        assert.equal(req.maxTokens, 1000);
        if (provider === "openai") assert.equal(req.body.max_completion_tokens, 1000);
        if (provider === "openai-compatible") assert.equal(req.body.max_tokens, 1000);
        if (stream && provider !== "anthropic") {
          assert.equal(req.body.stream_options?.include_usage, true);
        }
        const auth = req.headers["x-api-key"] ?? req.headers.authorization;
        assert.ok(auth?.includes(KEY), "the key is sent in the auth header");
      });
    });
  }
}

Deno.test("a reply cut at maxTokens says so", async () => {
  await withStub(
    [{ text: "half a kern", finishReason: "length" }, { text: "half", finishReason: "max_tokens" }],
    async (stub) => {
      assert.equal((await open(stub, "openai").complete(REQ)).truncated, true);
      assert.equal((await open(stub, "anthropic").complete(REQ)).truncated, true);
    },
  );
});

Deno.test("auto streaming: plain up to STREAM_ABOVE_MAX_TOKENS, streamed above it", async () => {
  await withStub(["a", "b", "c", "d"], async (stub) => {
    for (const provider of ["anthropic", "openai"] as const) {
      const p = open(stub, provider);
      assert.equal(
        (await p.complete({ ...REQ, maxTokens: STREAM_ABOVE_MAX_TOKENS })).streamed,
        false,
      );
      assert.equal((await p.complete({ ...REQ, maxTokens: 64_000 })).streamed, true);
    }
    assert.deepEqual(stub.requests.map((r) => r.stream), [false, true, false, true]);
  });
});

Deno.test("a server that reports no usage gets an estimate, flagged", async () => {
  // A plain reply without "usage", as some compatible servers send.
  const stub = startLlmStub(() => ({
    status: 200,
    body: JSON.stringify({
      id: "x",
      object: "chat.completion",
      created: 0,
      model: "m",
      choices: [{ index: 0, message: { role: "assistant", content: "x".repeat(40) } }],
    }),
  }));
  try {
    const reply = await open(stub, "openai-compatible").complete(REQ);
    assert.equal(reply.text, "x".repeat(40));
    assert.deepEqual(reply.usage, {
      inputTokens: Math.ceil((REQ.system.length + REQ.messages[0].content.length) / 4),
      outputTokens: 10,
      estimated: true,
    });
  } finally {
    await stub.close();
  }
});

Deno.test("a conversation keeps its turns and roles in order", async () => {
  await withStub(["ok", "ok"], async (stub) => {
    const messages = [
      { role: "user" as const, content: "first" },
      { role: "assistant" as const, content: "a reply" },
      { role: "user" as const, content: "the compile error was …" },
    ];
    for (const provider of ["openai", "anthropic"] as const) {
      await open(stub, provider).complete({ ...REQ, messages });
    }
    for (const r of stub.requests) assert.deepEqual(r.messages, messages);
  });
});

// ---- retries and timeouts ----------------------------------------------------

for (const provider of ["openai", "anthropic"] as const) {
  Deno.test(`${provider}: 429 then success is retried`, async () => {
    await withStub([{ status: 429 }, "after the wait"], async (stub) => {
      const reply = await open(stub, provider).complete(REQ);
      assert.equal(reply.text, "after the wait");
      assert.equal(stub.requests.length, 2);
    });
  });

  Deno.test(`${provider}: 500 twice then success is retried (streamed too)`, async () => {
    await withStub(
      [{ status: 500 }, { status: 503 }, "third time", { status: 500 }, { status: 502 }, "again"],
      async (stub) => {
        assert.equal((await open(stub, provider).complete(REQ)).text, "third time");
        const streamed = open(stub, provider, { stream: "always" });
        assert.equal((await streamed.complete(REQ)).text, "again");
        assert.equal(stub.requests.length, 6);
      },
    );
  });

  Deno.test(`${provider}: retries run out → kinds server and rate-limit, one line`, async () => {
    await withStub(
      [{ status: 500 }, { status: 500 }, { status: 500 }, { status: 429 }, { status: 429 }],
      async (stub) => {
        const server = await failure(open(stub, provider).complete(REQ));
        assert.equal(server.kind, "server");
        assert.equal(server.status, 500);
        assert.match(server.message, /3 attempts/);
        assertOneLine(server);
        const limited = await failure(open(stub, provider, { maxRetries: 1 }).complete(REQ));
        assert.equal(limited.kind, "rate-limit");
        assertOneLine(limited);
        assert.equal(stub.requests.length, 5);
      },
    );
  });

  Deno.test(`${provider}: a hang past the timeout fails with kind "timeout", in bounded time`, async () => {
    await withStub([{ hang: true }, { hang: true }], async (stub) => {
      const t0 = performance.now();
      const e = await failure(
        open(stub, provider, { timeoutMs: 300, maxRetries: 1 }).complete(REQ),
      );
      const took = performance.now() - t0;
      assert.equal(e.kind, "timeout");
      assertOneLine(e);
      assert.equal(stub.requests.length, 2, "the timed-out attempt was retried once");
      assert.ok(took >= 600 && took < 5000, `took ${took} ms`);
    });
  });

  Deno.test(`${provider}: a hang, then the retry answers`, async () => {
    await withStub([{ hang: true }, "answered"], async (stub) => {
      const reply = await open(stub, provider, { timeoutMs: 300 }).complete(REQ);
      assert.equal(reply.text, "answered");
    });
  });

  for (const stream of [false, true]) {
    Deno.test(`${provider}: a ${stream ? "stream" : "body"} that stops midway times out`, async () => {
      const stall = { text: "x".repeat(200), stall: true };
      await withStub([stall, stall], async (stub) => {
        const t0 = performance.now();
        const p = open(stub, provider, {
          timeoutMs: 300,
          maxRetries: 1,
          stream: stream ? "always" : "never",
        });
        const e = await failure(p.complete(REQ));
        assert.equal(e.kind, "timeout");
        assertOneLine(e);
        assert.ok(performance.now() - t0 < 5000);
        // A plain body is fetched again; a stream already handed over is not.
        assert.ok(stub.requests.length >= 1 && stub.requests.length <= 2);
      });
    });
  }

  Deno.test(`${provider}: a reply cut short is kind bad-reply, never half a reply`, async () => {
    const cut = { text: "```metal\nkernel void f(device float* x) { x[0] = 1; }\n```", cut: true };
    await withStub([cut, cut], async (stub) => {
      for (const stream of ["always", "never"] as const) {
        const e = await failure(open(stub, provider, { stream }).complete(REQ));
        assert.equal(e.kind, "bad-reply", e.message);
        assertOneLine(e);
      }
    });
  });

  Deno.test(`${provider}: the caller's abort ends a call with the abort's reason, before or mid-stream`, async () => {
    await withStub([{ hang: true }, { text: "x".repeat(200), stall: true }], async (stub) => {
      for (const stream of ["never", "always"] as const) {
        const ac = new AbortController();
        const reason = new Error("stopped by the loop");
        setTimeout(() => ac.abort(reason), 200);
        const t0 = performance.now();
        const p = open(stub, provider, { stream });
        await assert.rejects(p.complete({ ...REQ, signal: ac.signal }), reason);
        assert.ok(performance.now() - t0 < 3000);
      }
    });
  });
}

Deno.test("an unreachable server is kind network, in bounded time", async () => {
  const stub = startLlmStub();
  const url = stub.url;
  await stub.close(); // nothing listens on its port now
  const p = openProvider(
    { provider: "openai-compatible", model: "m", baseUrl: `${url}/v1`, maxRetries: 1 },
    ENV,
  );
  const e = await failure(p.complete(REQ));
  assert.equal(e.kind, "network");
  assert.match(e.message, /cannot reach/);
  assertOneLine(e);
});

Deno.test("a reply with no text is kind bad-reply, and still counts its tokens", async () => {
  await withStub(
    [{ text: "", finishReason: "length", usage: { input: 50, output: 1000 } }],
    async (stub) => {
      const budget = new TokenBudget(10_000);
      const e = await failure(withBudget(open(stub, "openai"), budget).complete(REQ));
      assert.equal(e.kind, "bad-reply");
      assert.deepEqual(e.usage, { inputTokens: 50, outputTokens: 1000 });
      assert.equal(budget.spent, 1050);
      assertOneLine(e);
    },
  );
});

// ---- keys --------------------------------------------------------------------

Deno.test("a missing key is a one-line config error naming the variable", () => {
  for (const provider of ["openai", "anthropic"] as const) {
    const variable = provider === "openai" ? "OPENAI_API_KEY" : "ANTHROPIC_API_KEY";
    assert.throws(
      () => openProvider({ provider, model: "m" }, env({})),
      (e: unknown) =>
        e instanceof ProviderError && e.kind === "config" &&
        e.message === `${variable} is not set — fix: export it, or pass --api-key-env NAME`,
    );
  }
  assert.throws(
    () => openProvider({ provider: "anthropic", model: "m", apiKeyEnv: "MY_KEY" }, ENV),
    (e: unknown) =>
      e instanceof ProviderError &&
      e.message === "MY_KEY is not set — fix: export it, or pass --api-key-env NAME",
  );
  // An empty variable is not a key.
  assert.throws(
    () => openProvider({ provider: "openai", model: "m" }, env({ OPENAI_API_KEY: "" })),
    (e: unknown) => e instanceof ProviderError && e.kind === "config",
  );
});

Deno.test("a key pasted where --api-key-env's NAME belongs is refused without echoing it", () => {
  assert.throws(
    () => openProvider({ provider: "openai", model: "m", apiKeyEnv: KEY }, ENV),
    (e: unknown) => e instanceof ProviderError && e.kind === "config" && !allText(e).includes(KEY),
  );
});

Deno.test("config errors: no base URL for openai-compatible, bad URL, no model, no command", () => {
  const bad: ProviderOptions[] = [
    { provider: "openai-compatible", model: "m" },
    { provider: "openai-compatible", model: "m", baseUrl: "file:///etc/passwd" },
    { provider: "openai", model: "" },
    { provider: "command", model: "" },
    { provider: "command", model: "", command: "llm | tee log" },
    { provider: "openai", model: "m", timeoutMs: 0 },
    { provider: "bogus" as "openai", model: "m" },
  ];
  for (const opts of bad) {
    assert.throws(
      () => openProvider(opts, ENV),
      (e: unknown) =>
        e instanceof ProviderError && e.kind === "config" && !e.message.includes("\n") &&
        e.message.includes(" — fix: "),
      JSON.stringify(opts),
    );
  }
});

Deno.test("openai-compatible sends a placeholder, never OPENAI_API_KEY, unless --api-key-env names one", async () => {
  await withStub(["a", "b"], async (stub) => {
    const baseUrl = `${stub.url}/v1`;
    await openProvider({ provider: "openai-compatible", model: "m", baseUrl }, ENV).complete(REQ);
    const custom = env({ OPENAI_API_KEY: KEY, LOCAL_KEY: "local-server-key-123" });
    await openProvider(
      { provider: "openai-compatible", model: "m", baseUrl, apiKeyEnv: "LOCAL_KEY" },
      custom,
    ).complete(REQ);
    assert.equal(stub.requests[0].headers.authorization, `Bearer ${PLACEHOLDER_KEY}`);
    assert.equal(stub.requests[1].headers.authorization, "Bearer local-server-key-123");
    for (const r of stub.requests) assert.ok(!JSON.stringify(r.headers).includes(KEY));
  });
});

/** Replies that echo the key back, in several spellings. */
function echoes(): StubReply[] {
  const auth = (r: { headers: Record<string, string> }) =>
    r.headers["x-api-key"] ?? r.headers.authorization ?? "";
  return [
    { status: 401, body: (r) => JSON.stringify({ error: { message: `bad key: ${auth(r)}` } }) },
    {
      status: 401,
      body: (r) => JSON.stringify({ type: "error", error: { type: "x", message: auth(r) } }),
    },
    { status: 403, body: (r) => `not json at all, ${auth(r)}` },
    { status: 400, body: () => JSON.stringify({ error: { message: encodeURIComponent(KEY) } }) },
    {
      status: 404,
      body: () => JSON.stringify({ error: { message: `...${KEY.slice(5, 30)}...` } }),
    },
    { status: 422, body: () => JSON.stringify({ error: { message: btoa(KEY) } }) },
  ];
}

for (const provider of ["openai", "anthropic"] as const) {
  for (const stream of [false, true]) {
    Deno.test(`${provider}${stream ? " streamed" : ""}: the key never appears in an error, nor in a log line`, async () => {
      const script = echoes();
      await withStub(script, async (stub) => {
        // Ask the SDKs for their most talkative logging; it must not apply.
        Deno.env.set("OPENAI_LOG", "debug");
        Deno.env.set("ANTHROPIC_LOG", "debug");
        const printed: string[] = [];
        const saved = { ...console };
        for (const m of ["log", "info", "warn", "error", "debug"] as const) {
          console[m] = (...args: unknown[]) => void printed.push(args.map(String).join(" "));
        }
        const errors: ProviderError[] = [];
        try {
          const p = open(stub, provider, { stream: stream ? "always" : "never" });
          for (let i = 0; i < script.length; i++) errors.push(await failure(p.complete(REQ)));
        } finally {
          Object.assign(console, saved);
          Deno.env.delete("OPENAI_LOG");
          Deno.env.delete("ANTHROPIC_LOG");
        }
        // The stub did see the key, and did send it back.
        assert.ok(stub.requests.every((r) => JSON.stringify(r.headers).includes(KEY)));
        assert.deepEqual(errors.map((e) => e.kind), [
          "auth",
          "auth",
          "auth",
          "config",
          "config",
          "config",
        ]);
        for (const e of errors) {
          assertOneLine(e);
          const text = allText(e);
          assert.ok(!text.includes(KEY), `key in: ${e.message}`);
          assert.ok(!text.includes(KEY.slice(5, 30)), `part of the key in: ${e.message}`);
          assert.ok(!text.includes(btoa(KEY)), `base64 key in: ${e.message}`);
        }
        assert.match(errors[0].message, /\[redacted\]/);
        assert.ok(!printed.join("\n").includes(KEY.slice(0, 16)), printed.join("\n"));
      });
    });
  }
}

Deno.test("a redirect is not followed: the key does not go to where it points", async () => {
  const elsewhere = startLlmStub(() => "the key came here");
  try {
    await withStub([], async (stub) => {
      for (const provider of ["openai", "anthropic"] as const) {
        const path = provider === "openai" ? "/v1/chat/completions" : "/v1/messages";
        stub.push({ status: 307, headers: { location: `${elsewhere.url}${path}` }, body: "" });
        const e = await failure(open(stub, provider).complete(REQ));
        assert.equal(e.kind, "config");
        assert.equal(e.status, 307);
      }
    });
    assert.equal(elsewhere.requests.length, 0);
  } finally {
    await elsewhere.close();
  }
});

Deno.test("the provider object holds no key a log could print", async () => {
  await withStub([], (stub) => {
    for (const provider of HTTP) {
      const p = open(stub, provider);
      assert.ok(!Deno.inspect(p, { depth: 20, showHidden: true }).includes(KEY));
      assert.ok(!JSON.stringify(p).includes(KEY));
    }
    return Promise.resolve();
  });
});

Deno.test("redactor: the key whole, in other spellings, and any long piece of it", () => {
  const cut = redactor([KEY, undefined]);
  assert.equal(cut(`a ${KEY} b`), "a [redacted] b");
  assert.equal(cut(`x${encodeURIComponent(KEY)}`), "x[redacted]");
  assert.ok(!cut(`Basic ${btoa(`:${KEY}`)}`).includes(btoa(`:${KEY}`)));
  assert.equal(cut(`…${KEY.slice(3, 18)}…`), "…[redacted]…");
  // Short common pieces stay (they say nothing about the key).
  assert.equal(cut("sk-test"), "sk-test");
  assert.equal(redactor([])("unchanged"), "unchanged");
});

// ---- the command provider ------------------------------------------------------

async function script(dir: string, name: string, body: string): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("command: the prompt on stdin in the documented format, the reply from stdout, usage estimated", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mb-cmd-" });
  try {
    const prog = await script(
      dir,
      "llm.sh",
      `cat > "$1/prompt.txt"; echo "$METALBENCH_LLM_PURPOSE $METALBENCH_LLM_MAX_TOKENS" > "$1/vars"; printf 'the reply\\n'`,
    );
    const p = openProvider(
      { provider: "command", model: "", command: `'${prog}' "${dir}"` },
      ENV,
    );
    assert.equal(p.model, "llm.sh");
    const req: ChatRequest = {
      ...REQ,
      messages: [
        { role: "user", content: "first" },
        { role: "assistant", content: "earlier" },
        { role: "user", content: "again" },
      ],
    };
    const reply = await p.complete(req);
    assert.equal(reply.text, "the reply\n");
    assert.equal(reply.provider, "command");
    assert.deepEqual(reply.usage, {
      inputTokens: Math.ceil((REQ.system.length + 5 + 7 + 5) / 4),
      outputTokens: 3,
      estimated: true,
    });
    assert.equal(
      await Deno.readTextFile(join(dir, "prompt.txt")),
      "### SYSTEM\nYou write Metal kernels.\n\n### USER\nfirst\n\n### ASSISTANT\nearlier\n\n### USER\nagain\n",
    );
    assert.equal(await Deno.readTextFile(join(dir, "vars")), "rewrite 1000\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: the child sees no provider key — by name, by --api-key-env, or copied under another name", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mb-cmd-" });
  const vars = {
    OPENAI_API_KEY: KEY,
    ANTHROPIC_API_KEY: "sk-ant-another-key-0123456789abcdef",
    MB_TEST_LLM_KEY: "custom-key-value-0123456789",
    MB_TEST_KEY_COPY: `prefix:${KEY}`,
    MB_TEST_HARMLESS: "stays",
  };
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    const prog = await script(dir, "env.sh", `cat > /dev/null; env > "$1/env.txt"; echo ok`);
    const p = openProvider(
      { provider: "command", model: "x", command: `${prog} ${dir}`, apiKeyEnv: "MB_TEST_LLM_KEY" },
    );
    assert.equal((await p.complete(REQ)).text, "ok\n");
    const seen = await Deno.readTextFile(join(dir, "env.txt"));
    for (const [name, value] of Object.entries(vars)) {
      if (name === "MB_TEST_HARMLESS") continue;
      assert.ok(!seen.includes(`${name}=`), `${name} reached the child`);
      assert.ok(!seen.includes(value), `the value of ${name} reached the child`);
    }
    assert.match(seen, /^MB_TEST_HARMLESS=stays$/m);
    assert.match(seen, /^PATH=/m);
  } finally {
    for (const k of Object.keys(vars)) Deno.env.delete(k);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: a non-zero exit is an error with the stderr tail, redacted, one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mb-cmd-" });
  Deno.env.set("MB_TEST_LLM_KEY", "custom-key-value-0123456789");
  try {
    const prog = await script(
      dir,
      "fail.sh",
      `cat > /dev/null; echo "noise" >&2; echo "model not loaded; key custom-key-value-0123456789" >&2; exit 3`,
    );
    const p = openProvider(
      { provider: "command", model: "x", command: prog, apiKeyEnv: "MB_TEST_LLM_KEY" },
    );
    const e = await failure(p.complete(REQ));
    assert.equal(e.kind, "server");
    assert.match(e.message, /exited with 3; stderr: noise model not loaded/);
    assert.ok(!allText(e).includes("custom-key-value-0123456789"));
    assertOneLine(e);
    assert.match(e.detail ?? "", /model not loaded/);
  } finally {
    Deno.env.delete("MB_TEST_LLM_KEY");
    await Deno.remove(dir, { recursive: true });
  }
});

/** Running (a zombie, killed and waiting to be reaped, is not). */
function running(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound) || Deno.build.os === "linux") return false;
  }
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

Deno.test("command: a hang past the timeout is kind timeout, and the whole process tree is ended", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mb-cmd-" });
  try {
    // A wrapper whose child holds stdout open and ignores SIGTERM.
    const prog = await script(
      dir,
      "hang.sh",
      `(trap '' TERM; sleep 60) & echo $! > "$1/grandchild"; echo "thinking" >&2; sleep 60`,
    );
    const p = openProvider({
      provider: "command",
      model: "x",
      command: `${prog} ${dir}`,
      timeoutMs: 400,
    });
    const t0 = performance.now();
    const e = await failure(p.complete(REQ));
    const took = performance.now() - t0;
    assert.equal(e.kind, "timeout");
    assert.match(e.message, /stderr: thinking/);
    assertOneLine(e);
    assert.ok(took < 3000, `took ${took} ms`);
    const grandchild = Number(await Deno.readTextFile(join(dir, "grandchild")));
    assert.ok(!running(grandchild), "the grandchild was left running");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("command: a program that is not there, or empty output", async () => {
  const missing = openProvider({ provider: "command", model: "x", command: "/nonexistent/llm" });
  const e = await failure(missing.complete(REQ));
  assert.equal(e.kind, "config");
  assert.match(e.message, /not found/);
  const silent = openProvider({ provider: "command", model: "x", command: "true" });
  assert.equal((await failure(silent.complete(REQ))).kind, "bad-reply");
});

Deno.test("command: the caller's abort ends the program with the abort's reason", async () => {
  const p = openProvider({ provider: "command", model: "x", command: "sleep 30" });
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error("ctrl-c")), 200);
  const t0 = performance.now();
  await assert.rejects(p.complete({ ...REQ, signal: ac.signal }), /ctrl-c/);
  assert.ok(performance.now() - t0 < 4000);
});

Deno.test("command lines split like a shell's, without one", () => {
  assert.deepEqual(splitCommand(`llm -m 'gpt x' --system "a \\"b\\" \\$c" d\\ e`), [
    "llm",
    "-m",
    "gpt x",
    "--system",
    'a "b" $c',
    "d e",
  ]);
  assert.deepEqual(splitCommand(`  a  ''  "" `), ["a", "", ""]);
  for (const bad of ["a | b", "a > f", "a; b", "echo $HOME", "a 'open", 'a "open', "a `b`"]) {
    assert.throws(() => splitCommand(bad), Error, bad);
  }
});

// ---- the token budget ----------------------------------------------------------

Deno.test("TokenBudget: charges add up, exhausted at spent ≥ max, remaining never negative", () => {
  const b = new TokenBudget(1000);
  assert.equal(b.spent, 0);
  assert.equal(b.remaining(), 1000);
  assert.equal(b.exhausted, false);
  b.charge({ inputTokens: 600, outputTokens: 399 });
  assert.equal(b.spent, 999);
  assert.equal(b.exhausted, false);
  b.charge({ inputTokens: 0, outputTokens: 1 });
  assert.equal(b.exhausted, true);
  assert.equal(b.remaining(), 0);
  b.charge({ inputTokens: 500, outputTokens: 0 });
  assert.equal(b.spent, 1500);
  assert.equal(b.remaining(), 0);
  // A bogus count from a server never lowers the total.
  b.charge({ inputTokens: -700, outputTokens: 0 });
  b.charge({ inputTokens: NaN, outputTokens: 5 });
  assert.equal(b.spent, 1500);

  const unlimited = new TokenBudget();
  unlimited.charge({ inputTokens: 1e9, outputTokens: 1e9 });
  assert.equal(unlimited.exhausted, false);
  assert.equal(unlimited.remaining(), Infinity);
  for (const bad of [0, -5, 1.5, NaN]) {
    assert.throws(() => new TokenBudget(bad), (e: unknown) => e instanceof ProviderError);
  }
});

Deno.test("withBudget: charges every call, then refuses with kind budget", async () => {
  await withStub(
    [{ text: "a", usage: { input: 300, output: 200 } }, {
      text: "b",
      usage: { input: 300, output: 250 },
    }],
    async (stub) => {
      const budget = new TokenBudget(1000);
      const p = withBudget(open(stub, "anthropic"), budget);
      await p.complete(REQ);
      assert.equal(budget.spent, 500);
      await p.complete(REQ);
      assert.equal(budget.spent, 1050);
      assert.equal(budget.exhausted, true);
      const e = await failure(p.complete(REQ));
      assert.equal(e.kind, "budget");
      assertOneLine(e);
      assert.equal(stub.requests.length, 2, "no call once the budget is spent");
    },
  );
});
