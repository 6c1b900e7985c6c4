/**
 * The Metal bridge (ffi/metal_bridge.m) cannot run here: there is no Mac.
 * What can be held on Linux is that it compiles and links for macOS with no
 * warnings and no unresolved symbols, and exports exactly the ABI:
 * `make -C ffi check-macos SDK=<root>` cross-builds it with clang-19 and
 * ld64.lld-19 against the macOS SDK named by METALBENCH_MACOS_SDK.
 */
import { strict as assert } from "node:assert";
import { BRIDGE_SYMBOLS } from "../src/backend/ffi_symbols.ts";

const FFI_DIR = new URL("../ffi/", import.meta.url).pathname;
const SDK = Deno.env.get("METALBENCH_MACOS_SDK") ?? "";
const decoder = new TextDecoder();

/** The function names bridge.h declares, read from the header itself. */
function headerFunctions(): string[] {
  const text = Deno.readTextFileSync(`${FFI_DIR}bridge.h`).replace(/\/\*[\s\S]*?\*\//g, " ");
  const names = [...text.matchAll(/\b(mb_[a-z0-9_]+)\s*\(/g)].map((m) => m[1]);
  return [...new Set(names)].sort();
}

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test({
  name: SDK
    ? `metal bridge: make -C ffi check-macos SDK=${SDK} builds it and it exports exactly the ABI`
    : "metal bridge: make -C ffi check-macos (ignored: set METALBENCH_MACOS_SDK=<macOS SDK root>)",
  ignore: SDK === "",
  async fn() {
    const build = await run("make", ["-C", FFI_DIR, "check-macos", `SDK=${SDK}`]);
    assert.equal(build.code, 0, `make check-macos failed:\n${build.stdout}\n${build.stderr}`);
    assert.equal(build.stderr.trim(), "", `make check-macos printed warnings:\n${build.stderr}`);
    assert.match(build.stdout, /no warnings and no unresolved symbols/);

    const nm = await run("llvm-nm-19", ["-gU", `${FFI_DIR}build/macos/libmetal_bridge.dylib`]);
    assert.equal(nm.code, 0, nm.stderr);
    const exported = nm.stdout.split("\n")
      .map((line) => line.trim().split(/\s+/).at(-1) ?? "")
      .filter((name) => name !== "")
      .map((name) => name.replace(/^_/, ""))
      .sort();
    assert.deepEqual(exported, headerFunctions());
    assert.deepEqual(exported, Object.keys(BRIDGE_SYMBOLS).sort());
  },
});

Deno.test("metal bridge: check-macos without an SDK says how to give one", async () => {
  const r = await run("make", ["-C", FFI_DIR, "check-macos"], { SDK: "" });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /SDK=<macOS SDK root>/);
});

Deno.test({
  name: "metal bridge: make metal off macOS points to check-macos",
  ignore: Deno.build.os === "darwin",
  async fn() {
    const r = await run("make", ["-C", FFI_DIR, "metal"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /check-macos SDK=/);
  },
});
