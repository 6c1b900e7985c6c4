/**
 * libsim_bridge.so exports exactly the functions of ffi/bridge.h (and so of
 * the TypeScript symbol table), nothing more.
 */
import { BRIDGE_SYMBOLS } from "../src/backend/ffi_symbols.ts";
import { assertEquals, buildSim, FFI_DIR, SIM_LIB } from "./_sim_lib.ts";

function headerFunctions(): string[] {
  const header = Deno.readTextFileSync(`${FFI_DIR}/bridge.h`);
  return [...new Set([...header.matchAll(/\b(mb_[a-z_]+)\s*\(/g)].map((m) => m[1]))].sort();
}

async function exportedSymbols(): Promise<string[]> {
  for (const nm of ["llvm-nm-19", "llvm-nm", "nm"]) {
    try {
      const out = await new Deno.Command(nm, {
        args: ["-D", "--defined-only", SIM_LIB],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (!out.success) continue;
      return new TextDecoder().decode(out.stdout).trim().split("\n")
        .map((line) => line.trim().split(/\s+/).at(-1) ?? "").filter((s) => s).sort();
    } catch {
      // not installed: try the next one
    }
  }
  throw new Error("no nm found (install llvm-19 or binutils)");
}

Deno.test("sim: libsim_bridge.so exports exactly bridge.h's functions", async () => {
  await buildSim();
  const header = headerFunctions();
  assertEquals(await exportedSymbols(), header);
  assertEquals(Object.keys(BRIDGE_SYMBOLS).sort(), header);
});
