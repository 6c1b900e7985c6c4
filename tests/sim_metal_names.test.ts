/**
 * mb_sim_kernel_ns.h lists the shim's metal names so that a kernel's own
 * `namespace metal { ... }` adds to them (tools/gen_metal_names.ts). A name
 * added to the shim but missing from the list would be invisible through
 * `metal::` in exactly the kernels that extend the namespace (MLX's): the
 * checked-in list must be what the generator makes of today's shim.
 */
import { assertEquals } from "./_sim_lib.ts";
import { HEADER, render, shimNames } from "../tools/gen_metal_names.ts";

Deno.test("sim: the kernel namespace's metal names match the shim (deno task metal-names)", async () => {
  const names = await shimNames();
  // A sanity floor: the shim's math, SIMD and atomic names are there.
  for (const n of ["sqrt", "simd_shuffle_down", "atomic_fetch_add_explicit", "numeric_limits"]) {
    assertEquals(names.get("metal")!.has(n), true, n);
  }
  assertEquals(names.get("metal::fast")!.has("exp"), true);
  // Names Metal's library lacks, which kernels define themselves (MLX).
  assertEquals(names.get("metal")!.has("void_t"), false);
  assertEquals(
    await Deno.readTextFile(HEADER),
    render(names),
    `${HEADER} is stale: deno task metal-names`,
  );
});
