/**
 * Compiled kernels are cached by content: compiling the same source again
 * (same device or a new one) runs no compiler; a changed source compiles.
 */
import { assert, assertEquals, fixture, openSim } from "./_sim_lib.ts";

Deno.test("sim: a second compile of the same source comes from the cache", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "mb-sim-cache-" });
  try {
    const src = fixture("relu.metal");
    {
      using sim = await openSim({ cache_dir: cacheDir });
      (await sim.compile(src, "relu_f32", { source_name: "relu.metal" })).free();
      assertEquals(sim.info().compiler_runs, 2, "cold: check + build");
      const files = [...Deno.readDirSync(cacheDir)].filter((f) => f.name.endsWith(".so"));
      assertEquals(files.length, 1);
      const so = `${cacheDir}/${files[0].name}`;
      const mtime = Deno.statSync(so).mtime?.getTime();

      (await sim.compile(src, "relu_f32", { source_name: "relu.metal" })).free();
      assertEquals(sim.info().compiler_runs, 2, "cached: no compiler run");
      assertEquals(sim.info().cache_hits, 1);
      assertEquals(Deno.statSync(so).mtime?.getTime(), mtime, "the cached file is untouched");
    }
    {
      // A new device (as a new process would) finds it too.
      using sim = await openSim({ cache_dir: cacheDir });
      (await sim.compile(src, "relu_f32", { source_name: "relu.metal" })).free();
      assertEquals(sim.info().compiler_runs, 0);
      // Any change of the source, the function or the file name compiles anew.
      (await sim.compile(src + "\n// edited\n", "relu_f32", { source_name: "relu.metal" }))
        .free();
      assertEquals(sim.info().compiler_runs, 2);
      (await sim.compile(src, "relu_f32", { source_name: "other.metal" })).free();
      assertEquals(sim.info().compiler_runs, 4);
      const sos = [...Deno.readDirSync(cacheDir)].filter((f) => f.name.endsWith(".so"));
      assertEquals(sos.length, 3);
      assert([...Deno.readDirSync(`${cacheDir}/tmp`)].length === 0, "no build folder left");
    }
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("sim: only the headers a kernel includes count; the folder's other kernels do not", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "mb-sim-cache-" });
  const folder = await Deno.makeTempDir({ prefix: "mb-kernels-" });
  try {
    const src = `#include <metal_stdlib>
#include "scale.h"
using namespace metal;
kernel void k(device float* y [[buffer(0)]], uint i [[thread_position_in_grid]]) { y[i] = scaled(i); }
`;
    await Deno.writeTextFile(
      `${folder}/scale.h`,
      "inline float scaled(uint i) { return 2.0f * float(i); }\n",
    );
    // Another kernel of the folder that would be refused: it must not matter here.
    await Deno.writeTextFile(`${folder}/other.metal`, '#include "/etc/passwd"\n');
    const opts = { source_name: "k.metal", include_dir: folder };
    using sim = await openSim({ cache_dir: cacheDir });
    (await sim.compile(src, "k", opts)).free();
    assertEquals(sim.info().compiler_runs, 2);
    // Editing the unrelated kernel keeps this one's cache entry...
    await Deno.writeTextFile(`${folder}/other.metal`, "// edited\n");
    (await sim.compile(src, "k", opts)).free();
    assertEquals(sim.info().compiler_runs, 2, "cache hit");
    // ...editing its header does not.
    await Deno.writeTextFile(
      `${folder}/scale.h`,
      "inline float scaled(uint i) { return 3.0f * float(i); }\n",
    );
    (await sim.compile(src, "k", opts)).free();
    assertEquals(sim.info().compiler_runs, 4, "recompiled");
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
    await Deno.remove(folder, { recursive: true });
  }
});
