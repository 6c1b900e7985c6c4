/**
 * The binary's code path, under `deno run`: the bridge, its runner and the
 * shim are copied out of where the program keeps them (the embedded files in
 * a compiled binary) into a content-addressed cache folder and used from
 * there; the compile task embeds every file that path reads.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { assetPath, BRIDGE_ASSETS, materializeBridge } from "../src/backend/assets.ts";
import { openBackend } from "../src/backend/select.ts";
import { compileArgs, includesFor } from "../tools/compile.ts";
import { buildSim } from "./_sim_lib.ts";

Deno.test("the simulator bridge runs from its extracted copy, made once per version", async () => {
  await buildSim();
  const cache = await Deno.makeTempDir({ prefix: "mb-runtime-" });
  const files = await materializeBridge("sim", cache);
  assert.ok(files.library.startsWith(cache) && files.runner!.startsWith(cache));
  assert.ok((Deno.statSync(files.runner!).mode! & 0o111) !== 0, "runner is executable");
  assert.ok(existsSync(join(files.shimDir!, "metal_stdlib")));
  const mtime = Deno.statSync(files.library).mtime;
  const again = await materializeBridge("sim", cache);
  assert.deepEqual(again, files, "same folder for the same contents");
  assert.deepEqual(Deno.statSync(files.library).mtime, mtime, "not copied twice");
  assert.deepEqual(
    [...Deno.readDirSync(cache)].map((e) => e.name).filter((n) => !n.startsWith(".")).length,
    1,
  );

  const backend = await openBackend({ kind: "sim", files });
  try {
    const p = await backend.bridge.compile(
      `#include <metal_stdlib>
using namespace metal;
kernel void twice(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) { x[i] = 2.0f * float(i); }`,
      "twice",
      { source_name: "twice.metal" },
    );
    const buf = backend.bridge.buffer(64);
    const cmd = backend.bridge.command();
    cmd.setPipeline(p);
    cmd.setBuffer(0, buf);
    cmd.dispatch("threads", [16, 1, 1], [8, 1, 1]);
    await cmd.run(1, 1);
    assert.deepEqual(
      [...new Float32Array(buf.read().buffer)],
      Array.from({ length: 16 }, (_, i) => 2 * i),
    );
    cmd.free();
    buf.free();
    p.free();
  } finally {
    backend.close();
  }
});

Deno.test("the compile task embeds the bridge files, the worker and the suite for each target", () => {
  const linux = includesFor("x86_64-unknown-linux-gnu");
  for (
    const p of [BRIDGE_ASSETS.sim.library, BRIDGE_ASSETS.sim.runner, BRIDGE_ASSETS.sim.shimDir]
  ) {
    assert.ok(linux.includes(p), p);
  }
  assert.ok(includesFor("aarch64-apple-darwin").includes(BRIDGE_ASSETS.metal.library));
  for (const p of ["src/reference/worker.py", "registry", "kernels", "references"]) {
    assert.ok(linux.includes(p) && existsSync(assetPath(p)), p);
  }
  const args = compileArgs("aarch64-apple-darwin", "dist/x");
  assert.deepEqual(args.slice(0, 6), [
    "compile",
    "--allow-all",
    "--target",
    "aarch64-apple-darwin",
    "--output",
    "dist/x",
  ]);
  assert.equal(args.at(-1), "main.ts");
});
