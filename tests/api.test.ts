/**
 * The typed API (mod.ts): the README's example script, run as a user runs
 * it in a workspace made by `metalbench init`; the JSON Schemas in step with
 * the zod schemas; merging results and sessions; reading a --json stream.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { metalbench } from "./_cli.ts";
import { schemaFiles } from "../tools/gen_schemas.ts";
import {
  AttemptEntry,
  mergeResults,
  mergeSessions,
  parseBenchStream,
  readAllResults,
  readAttempts,
  readSession,
  type ResultsFile,
  type RunRecord,
  Session,
} from "../mod.ts";

const README = await Deno.readTextFile(new URL("../README.md", import.meta.url));

/** The script the README shows under its "example: scripting" marker. */
function readmeExample(): string {
  const m = README.match(/<!-- example: scripting[^>]*-->\s*```ts\n([\s\S]*?)```/);
  assert.ok(m, "the README's scripting example");
  return m[1];
}

async function deno(cwd: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("the README's script imports mod.ts by name in an init'd workspace, benchmarks two problems on the simulator and reads the session back, typed", async () => {
  const ws = await Deno.makeTempDir({ prefix: "mb-api-" });
  try {
    const init = await metalbench(["init", ws]);
    assert.equal(init.code, 0, init.stderr);
    await Deno.writeTextFile(join(ws, "two.ts"), readmeExample());
    const check = await deno(ws, ["check", "two.ts"]);
    assert.equal(check.code, 0, `the example type-checks against mod.ts\n${check.stderr}`);
    const r = await deno(ws, ["run", "-A", "two.ts"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.deepEqual(lines.slice(0, 3), ["relu: correct", "softmax: correct", "2/2 correct"]);
    // It read back the session.json its own run wrote, through the same code as the CLI.
    const session = Session.parse(JSON.parse(await Deno.readTextFile(join(ws, "session.json"))));
    const [bucket] = Object.keys(session.buckets);
    assert.match(bucket, /^sim-/);
    const best = (k: string) =>
      `best ${bucket}/${k}: ${session.buckets[bucket][k].kernelMedianMs.toFixed(4)} ms`;
    assert.deepEqual(lines.slice(3).sort(), [best("relu"), best("softmax")]);
    const results = await readAllResults({ workspace: ws });
    assert.deepEqual(results.map((f) => f.kernel), ["relu", "softmax"]);
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});

Deno.test("schemas/*.json are what the zod schemas generate (deno task schemas)", async () => {
  const want = schemaFiles();
  const dir = new URL("../schemas/", import.meta.url);
  const have = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
  assert.deepEqual(have, Object.keys(want).sort(), "one file per format, no stale ones");
  for (const [name, text] of Object.entries(want)) {
    assert.equal(
      await Deno.readTextFile(new URL(name, dir)),
      text,
      `schemas/${name} is out of step with its zod schema: run deno task schemas`,
    );
  }
});

/** A real record of a real run (the simulator), to build files from. */
let record: RunRecord | undefined;
async function aRecord(): Promise<RunRecord> {
  if (record) return record;
  const r = await metalbench([
    "relu",
    "--backend=sim",
    "--iters=2",
    "--warmup=0",
    "--no-session",
    "--json",
  ]);
  assert.equal(r.code, 0, r.stderr);
  return record = parseBenchStream(r.stdout).records[0];
}

Deno.test("mergeResults: one file per kernel and bucket, runs by id once, oldest first", async () => {
  const base = await aRecord();
  const run = (id: string, timestamp: string) => ({ ...base, id, timestamp });
  const file = (runs: RunRecord[]): ResultsFile => ({
    version: 1,
    kernel: base.kernel,
    bucket: base.bucket,
    runs,
  });
  const a = file([run("b", "2026-01-02T00:00:00Z"), run("a", "2026-01-01T00:00:00Z")]);
  const b = file([run("a", "2026-01-01T00:00:00Z"), run("c", "2026-01-03T00:00:00Z")]);
  const other = { ...file([run("d", "2026-01-01T00:00:00Z")]), bucket: "apple-m4" };
  const merged = mergeResults([a], [b, other]);
  assert.deepEqual(merged.map((f) => f.bucket), ["apple-m4", base.bucket]);
  assert.deepEqual(merged[1].runs.map((r) => r.id), ["a", "b", "c"]);
});

Deno.test("mergeSessions: the faster entry measured the same way wins; differently measured ones are not compared", async () => {
  const ws2 = await Deno.makeTempDir({ prefix: "mb-api-" });
  try {
    assert.equal((await metalbench(["init", ws2])).code, 0);
    const r = await metalbench([
      "relu",
      "--backend=sim",
      "--iters=2",
      "--warmup=0",
      "--workspace",
      ws2,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const s = await readSession({ workspace: ws2 });
    const [bucket] = Object.keys(s.buckets);
    const entry = s.buckets[bucket].relu;
    const faster = { ...entry, runId: "faster", kernelMedianMs: entry.kernelMedianMs / 2 };
    const otherClock = { ...faster, runId: "other-clock", settingsKey: entry.settingsKey + "|x" };
    const with_ = (e: typeof entry) => ({
      version: 1 as const,
      buckets: { [bucket]: { relu: e } },
    });
    assert.equal(mergeSessions(s, with_(faster)).buckets[bucket].relu.runId, "faster");
    assert.equal(mergeSessions(with_(faster), s).buckets[bucket].relu.runId, "faster");
    assert.equal(mergeSessions(s, with_(otherClock)).buckets[bucket].relu.runId, entry.runId);
    const both = mergeSessions(s, { version: 1, buckets: { "apple-m4": { relu: entry } } });
    assert.deepEqual(Object.keys(both.buckets).sort(), ["apple-m4", bucket].sort());
  } finally {
    await Deno.remove(ws2, { recursive: true });
  }
});

Deno.test("readAttempts reads a lineage, valid entries typed, a torn line a warning", async () => {
  const ws = await Deno.makeTempDir({ prefix: "mb-api-" });
  try {
    assert.equal((await metalbench(["init", ws])).code, 0);
    const entry = AttemptEntry.parse({
      version: 1,
      id: "relu-r0-c0-t0-abc",
      parentId: null,
      kernel: "relu",
      bucket: "sim-x86_64",
      round: 0,
      candidate: 0,
      retry: 0,
      time: new Date().toISOString(),
      provider: null,
      model: null,
      technique: "baseline",
      source: "kernel void relu() {}",
      sourceSha256: "0".repeat(64),
      profile: null,
      bench: null,
      correctness: null,
      verdict: "baseline",
      reason: "",
      deltaPct: null,
      plausible: null,
      tokens: { input: 0, output: 0 },
      transcript: null,
    });
    const path = join(ws, ".agent-steel", "history", "relu__sim-x86_64.jsonl");
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeTextFile(path, JSON.stringify(entry) + '\n{"version":1,"id":"tor');
    const read = await readAttempts("relu", "sim-x86_64", { workspace: ws });
    assert.deepEqual(read.entries, [entry]);
    assert.equal(read.warnings.length, 1);
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});

Deno.test("parseBenchStream: every whole line must be an event; a torn last line is skipped", async () => {
  const rec = await aRecord();
  const run = JSON.stringify({ time: "t", event: "run", index: 0, total: 2, record: rec });
  const got = parseBenchStream(`${run}\n${run.slice(0, 40)}`);
  assert.equal(got.records.length, 1);
  assert.equal(got.summary, null);
  assert.throws(() => parseBenchStream(`{"event":"runs"}\n${run}\n`), /line 1/);
});
