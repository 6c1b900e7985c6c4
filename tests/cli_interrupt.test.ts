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

/**
 * Run a spinning kernel and interrupt it: `group` sends SIGINT to the whole
 * process group, as Ctrl-C in a terminal does (the runner and the MLX worker
 * get it too); otherwise only the metalbench process gets it.
 */
async function interruptSpinningRun(group: boolean) {
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
  const args = [
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
  ];
  // setsid gives the run a process group of its own to signal as a whole.
  const child = new Deno.Command(group ? "setsid" : Deno.execPath(), {
    args: group ? [Deno.execPath(), ...args] : args,
    env: { METALBENCH_CACHE: cache },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Wait until a runner is up, then a moment more so the kernel is spinning
  // (a device may replace its first runner once it loads a kernel).
  let seen = false;
  for (let i = 0; i < 200 && !seen; i++) {
    seen = (await runnersUnder(cache)) > 0;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(seen, "a runner started");
  await new Promise((r) => setTimeout(r, 1000));
  if (group) Deno.kill(-child.pid, "SIGINT");
  else child.kill("SIGINT");
  const status = await child.status;
  const stderr = new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
  assert.equal(status.code, 130, stderr);
  assert.match(stderr, /interrupted/);
  assert.doesNotMatch(stderr, /internal error/);
  for (let i = 0; i < 50 && (await runnersUnder(cache)) > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(await runnersUnder(cache), 0, "no runner left");
}

Deno.test("an interrupted run exits 130 and leaves no runner process behind", async () => {
  await interruptSpinningRun(false);
});

Deno.test("Ctrl-C to the whole process group: exit 130, nothing left, no crash", async () => {
  await interruptSpinningRun(true);
});
