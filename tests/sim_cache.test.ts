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
