/**
 * Ctrl-C in the middle of a run: the program stops with exit 130, cleans its
 * scratch folder, and leaves no simulator runner behind.
 */
import assert from "node:assert/strict";
import { makeWorkspace } from "./_workspace.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const RELU_PY = await Deno.readTextFile(new URL("../references/common/relu.py", import.meta.url));

async function runnersUnder(dir: string): Promise<number> {
  const out = await new Deno.Command("pgrep", { args: ["-f", `${dir}/runtime/`], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).trim().split("\n").filter(Boolean).length;
}

Deno.test("an interrupted run exits 130 and leaves no runner process behind", async () => {
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: {
        spin: { template: "elementwise", description: "spins", function: "k", vector: 1 },
      },
    }),
    "kernels/common/spin.metal": `#include <metal_stdlib>
using namespace metal;
kernel void k(device const float* x [[buffer(0)]], device float* y [[buffer(1)]],
              constant uint& n [[buffer(2)]], uint gid [[thread_position_in_grid]]) {
  while (true) { y[gid] += x[gid]; }
}
`,
    "references/common/spin.py": RELU_PY,
  });
  const cache = await Deno.makeTempDir({ prefix: "mb-cache-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--config",
      CONFIG,
      MAIN,
      "spin",
      "--backend=sim",
      "--no-session",
      "--timeout=60000",
      "--workspace",
      ws,
    ],
    env: { METALBENCH_CACHE: cache },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Wait until the kernel is spinning in a runner.
  for (let i = 0; i < 200 && (await runnersUnder(cache)) === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok((await runnersUnder(cache)) > 0, "a runner started");
  child.kill("SIGINT");
  const status = await child.status;
  const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  assert.equal(status.code, 130, stderr);
  assert.match(stderr, /interrupted/);
  for (let i = 0; i < 50 && (await runnersUnder(cache)) > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await runnersUnder(cache), 0, "no runner left");
});
