/**
 * `metalbench … --json` streams: one event a line as each problem finishes,
 * so a script can follow a long run and a run killed halfway leaves the
 * events so far. Real CLI process, simulator backend, real MLX worker.
 */
import assert from "node:assert/strict";
import { makeWorkspace } from "./_workspace.ts";
import { BenchEvent, parseBenchStream } from "../src/api/events.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const RELU_PY = await Deno.readTextFile(new URL("../references/common/relu.py", import.meta.url));
const RELU_METAL = await Deno.readTextFile(
  new URL("../kernels/common/relu.metal", import.meta.url),
);
/** The second problem's reference takes 2 s a call: the run is still busy with it for long. */
const SLOW_PY = `import time
import mlx.core as mx
import mlx.nn as nn


class Model(nn.Module):
    def __call__(self, x: mx.array) -> mx.array:
        time.sleep(2)
        return mx.maximum(x, 0)
`;

const entry = (d: string) => ({ template: "elementwise", description: d, function: "relu_f32" });

Deno.test("--json on --all: the first problem's event arrives while the second still runs; a kill leaves the events so far", async () => {
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: { a_fast: entry("fast"), b_slow: entry("slow") },
    }),
    "kernels/common/a_fast.metal": RELU_METAL,
    "kernels/common/b_slow.metal": RELU_METAL,
    "references/common/a_fast.py": RELU_PY,
    "references/common/b_slow.py": SLOW_PY,
  });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--config",
      CONFIG,
      MAIN,
      "--all",
      "--backend=sim",
      "--iters=2",
      "--warmup=0",
      "--json",
      "--workspace",
      ws,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch { /* it ended on its own: the assertions say whether too early */ }
  };
  const dec = new TextDecoder();
  let text = "";
  const reader = child.stdout.getReader();
  try {
    // Read until the first problem's run event is complete.
    while (!/"event":"run"[^\n]*\n/.test(text)) {
      const { value, done } = await reader.read();
      assert.ok(!done, `stdout ended before any run event:\n${text}`);
      text += dec.decode(value, { stream: true });
    }
    assert.equal(exited, false, "the first event arrived only after the process ended");
    const so = parseBenchStream(text);
    assert.deepEqual(so.events.map((e) => e.event), ["start", "run"]);
    assert.equal(so.records[0].kernel, "a_fast");
    assert.equal(so.records[0].correctness.status, "correct");
    assert.equal(so.summary, null, "no summary before the run ends");

    // Killed halfway (the slow reference still running): what was written stays valid.
    kill();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    const after = parseBenchStream(text);
    assert.deepEqual(after.records.map((r) => r.kernel), ["a_fast"]);
    assert.equal(after.exitCode, null);
    for (const line of text.trim().split("\n")) BenchEvent.parse(JSON.parse(line));
  } finally {
    reader.releaseLock();
    if (!exited) kill();
    await status;
    await Deno.remove(ws, { recursive: true });
  }
});
