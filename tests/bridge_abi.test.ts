/** The TypeScript FFI table is the header's function list, with the same arity. */
import assert from "node:assert/strict";
import { BRIDGE_SYMBOLS } from "../src/backend/ffi_symbols.ts";
import type { DeviceTimeKind } from "../src/backend/bridge.ts";

/** Function name -> parameter count, from ffi/bridge.h's prototypes (comments removed). */
export function headerFunctions(): Map<string, number> {
  const text = Deno.readTextFileSync(new URL("../ffi/bridge.h", import.meta.url))
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/\/\/.*$/gm, "");
  const out = new Map<string, number>();
  for (const m of text.matchAll(/\b(mb_[a-z_]+)\s*\(([^)]*)\)\s*;/g)) {
    const params = m[2].trim();
    out.set(m[1], params === "" || params === "void" ? 0 : params.split(",").length);
  }
  return out;
}

Deno.test("BRIDGE_SYMBOLS binds exactly the functions of bridge.h, in order, with their arity", () => {
  const header = headerFunctions();
  assert.ok(header.size >= 20, `found ${header.size} prototypes`);
  assert.deepEqual(Object.keys(BRIDGE_SYMBOLS), [...header.keys()]);
  for (const [name, def] of Object.entries(BRIDGE_SYMBOLS)) {
    assert.equal(def.parameters.length, header.get(name), name);
  }
});

const SDK = Deno.env.get("METALBENCH_MACOS_SDK") ?? "";
const FFI = new URL("../ffi/", import.meta.url).pathname;

/** The Metal bridge cross-built for arm64 macOS (make -C ffi check-macos SDK=...). */
async function crossBuiltMetalBridge(): Promise<string> {
  const out = await new Deno.Command("make", {
    args: ["-s", "-C", FFI, "check-macos", `SDK=${SDK}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert.equal(out.code, 0, `${dec.decode(out.stdout)}\n${dec.decode(out.stderr)}`);
  assert.equal(dec.decode(out.stderr).trim(), "", "check-macos printed warnings");
  return `${FFI}build/macos/libmetal_bridge.dylib`;
}

Deno.test({
  name: SDK
    ? "the cross-built Metal bridge exports exactly BRIDGE_SYMBOLS, and speaks the device-info words the TypeScript side reads"
    : "the cross-built Metal bridge (ignored: set METALBENCH_MACOS_SDK=<macOS SDK root>)",
  ignore: SDK === "",
  async fn() {
    const dylib = await crossBuiltMetalBridge();
    const nm = await new Deno.Command("llvm-nm-19", { args: ["-gU", dylib], stdout: "piped" })
      .output();
    const exported = new TextDecoder().decode(nm.stdout).split("\n").map((l) =>
      l.trim().split(/\s+/).at(-1)?.replace(/^_/, "") ?? ""
    ).filter(Boolean).sort();
    assert.deepEqual(exported, Object.keys(BRIDGE_SYMBOLS).sort());
    // Keys and values of mb_device_info that src/backend/bridge.ts and the
    // report rely on, spelled the same in the Objective-C.
    const text = new TextDecoder("latin1").decode(await Deno.readFile(dylib));
    const kinds: DeviceTimeKind[] = ["gpu-pass-timestamps", "gpu-command-buffer"];
    for (const word of ["device_time", "layers", "gpu_cores", ...kinds]) {
      assert.ok(text.includes(`\0${word}\0`), `"${word}" not in the Metal bridge`);
    }
  },
});
