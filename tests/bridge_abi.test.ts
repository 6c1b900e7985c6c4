/** The TypeScript FFI table is the header's function list, with the same arity. */
import assert from "node:assert/strict";
import { BRIDGE_SYMBOLS } from "../src/backend/ffi_symbols.ts";

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
