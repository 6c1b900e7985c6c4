import assert from "node:assert/strict";
import { join } from "node:path";
import {
  describeUpdate,
  emptySession,
  judge,
  offerRun,
  readSession,
} from "../src/store/session.ts";
import { appendRun, readResults, resultsPath } from "../src/store/results.ts";
import { bestTimesMarkdown } from "../src/store/markdown.ts";
import { Session } from "../src/store/schema.ts";
import { fakeRun } from "./_records.ts";

Deno.test("the leaderboard keeps the fastest correct run measured the same way", () => {
  const s = emptySession();
  const first = judge(s, fakeRun("relu", 2), "src");
  assert.equal(first.kind, "new-best");
  if (first.kind !== "new-best") return;
  s.buckets["sim-x86_64"] = { relu: first.entry };
  assert.equal(judge(s, fakeRun("relu", 3), "src").kind, "kept");
  const faster = judge(s, fakeRun("relu", 1), "src");
  assert.equal(faster.kind, "new-best");
  assert.match(
    describeUpdate("sim-x86_64", "relu", faster),
    /^updated session.json \[sim-x86_64\/relu\]: new best 1.000 ms \(was 2.000 ms, Δ \+1.000\)$/,
  );

  const otherClock = fakeRun("relu", 0.5);
  otherClock.settings = {
    ...otherClock.settings,
    clock: { mode: "per-launch", batch: 1, description: "" },
  };
  const u = judge(s, otherClock, "src");
  assert.equal(u.kind, "kept");
  assert.match((u as { reason: string }).reason, /not compared/);

  const wrong = fakeRun("relu", 0.1);
  wrong.correctness = { ...wrong.correctness, status: "incorrect" };
  assert.equal(judge(s, wrong, "src").kind, "not-eligible");
});

Deno.test("a corrupt session.json is refused and left byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "session.json");
  for (
    const text of [
      "{ half a file",
      JSON.stringify({ version: 1, buckets: { x: { relu: { kernel: 1 } } } }),
    ]
  ) {
    await Deno.writeTextFile(path, text);
    await assert.rejects(() => offerRun(path, fakeRun("relu", 1), "src"), {
      name: "SessionFileError",
      message: /left as it is/,
    });
    assert.equal(await Deno.readTextFile(path), text);
  }
});

Deno.test("session.json keeps the full source and regenerated docs see the new best", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "session.json");
  let docs = "";
  await offerRun(path, fakeRun("relu", 2), "kernel void relu_f32() {}", async (s) => {
    docs = bestTimesMarkdown(s);
    await Promise.resolve();
  });
  const s = await readSession(path);
  assert.equal(s.buckets["sim-x86_64"].relu.source, "kernel void relu_f32() {}");
  assert.match(docs, /\| relu \| common \| 2\.0000 \|/);
  assert.match(docs, /simulator: CPU timings, not GPU results/);
});

Deno.test("results files keep every run, in order", async () => {
  const dir = await Deno.makeTempDir();
  const a = fakeRun("relu", 2);
  const b = fakeRun("relu", 3);
  await appendRun(dir, a);
  await appendRun(dir, b);
  const file = await readResults(resultsPath(dir, "sim-x86_64", "relu"));
  assert.deepEqual(file?.runs.map((r) => r.id), [a.id, b.id]);
});

Deno.test("concurrent processes offering runs leave a valid session with the best of them", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "session.json");
  const script = join(dir, "offer.ts");
  const here = new URL(".", import.meta.url).pathname;
  await Deno.writeTextFile(
    script,
    `import { offerRun } from "${here}../src/store/session.ts";
import { appendRun } from "${here}../src/store/results.ts";
import { fakeRun } from "${here}_records.ts";
const ms = Number(Deno.args[0]);
for (let i = 0; i < 5; i++) {
  const run = fakeRun("relu", ms + i * 0.001);
  await appendRun("${dir}/results", run);
  await offerRun("${path}", run, "src " + ms);
}`,
  );
  const medians = [5, 3, 4, 2.5, 6, 3.5];
  const children = medians.map((ms) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", `${here}../deno.json`, script, String(ms)],
      stdout: "null",
      stderr: "piped",
    })
      .output()
  );
  const outs = await Promise.all(children);
  for (const o of outs) assert.ok(o.success, new TextDecoder().decode(o.stderr));
  const session = Session.parse(JSON.parse(await Deno.readTextFile(path)));
  assert.equal(session.buckets["sim-x86_64"].relu.kernelMedianMs, 2.5);
  assert.equal(session.buckets["sim-x86_64"].relu.source, "src 2.5");
  const results = await readResults(resultsPath(`${dir}/results`, "sim-x86_64", "relu"));
  assert.equal(results?.runs.length, medians.length * 5, "no run lost");
});
