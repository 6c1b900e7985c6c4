/**
 * Function constants, checked before a kernel compiles on either backend.
 *
 * The registry gives values by a constant's name or index; the kernel
 * declares each constant's type (`constant uchar mode [[function_constant(0)]];`).
 * A value is parsed for that type — bool, char..ulong, half, float, bfloat,
 * and their 2- to 4-component vectors ("1 0.5 2") — and refused with one
 * line when it is not a value of it: out of range, fractional for an
 * integer, too many components. Nothing is truncated: the simulator would
 * otherwise wrap 300 into a uchar as C++ does, and a float past half's range
 * would become Inf. The backends get the values in one canonical spelling;
 * the Metal bridge checks again against the types the compiler reports.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

export class FunctionConstantError extends Error {
  override name = "FunctionConstantError";
}

type Kind = "bool" | "int" | "uint" | "float";

interface ScalarType {
  kind: Kind;
  bits: number;
  /** Largest finite magnitude (floats). */
  max?: number;
}

const SCALARS: Record<string, ScalarType> = {
  bool: { kind: "bool", bits: 8 },
  char: { kind: "int", bits: 8 },
  uchar: { kind: "uint", bits: 8 },
  short: { kind: "int", bits: 16 },
  ushort: { kind: "uint", bits: 16 },
  int: { kind: "int", bits: 32 },
  uint: { kind: "uint", bits: 32 },
  long: { kind: "int", bits: 64 },
  ulong: { kind: "uint", bits: 64 },
  half: { kind: "float", bits: 16, max: 65504 },
  float: { kind: "float", bits: 32, max: 3.4028234663852886e38 },
  bfloat: { kind: "float", bits: 16, max: 3.3895313892515355e38 },
};

/** Other spellings of the scalar types. */
const ALIASES: Record<string, string> = {
  "signed char": "char",
  "unsigned char": "uchar",
  "unsigned short": "ushort",
  "unsigned int": "uint",
  unsigned: "uint",
  int8_t: "char",
  uint8_t: "uchar",
  int16_t: "short",
  uint16_t: "ushort",
  int32_t: "int",
  uint32_t: "uint",
  int64_t: "long",
  uint64_t: "ulong",
  "unsigned long": "ulong",
};

export interface ConstantType {
  /** As the kernel spells it, normalized: "uchar", "float3". */
  name: string;
  scalar: ScalarType;
  scalarName: string;
  components: number;
}

/** The type of a declaration ("metal::float4", "vec<half, 2>", "unsigned int"), or null. */
export function constantType(spelled: string): ConstantType | null {
  const t = spelled.replace(/\bmetal::/g, "").replace(/\s+/g, " ").trim();
  const vec = /^vec ?< ?([a-z_0-9 ]+?) ?, ?([2-4]) ?>$/.exec(t) ?? /^([a-z]+)([2-4])$/.exec(t);
  const [base, n] = vec ? [vec[1], Number(vec[2])] : [t, 1];
  const scalarName = ALIASES[base] ?? base;
  const scalar = SCALARS[scalarName];
  if (!scalar) return null;
  const components = n;
  return {
    name: components > 1 ? `${scalarName}${components}` : scalarName,
    scalar,
    scalarName,
    components,
  };
}

export interface DeclaredConstant {
  name: string;
  /** null when the attribute's index is not a plain number (a macro). */
  index: number | null;
  /** null when the type is not one of the above (a typedef, a struct). */
  type: ConstantType | null;
  spelledType: string;
}

const DECLARATION =
  /\bconstant\s+([A-Za-z_][\w:<>, ]*?)\s+([A-Za-z_]\w*)\s*\[\[\s*function_constant\s*\(([^)]*)\)\s*\]\]/g;
const ATTRIBUTE = /\[\[\s*function_constant\s*\(/g;

function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, "");
}

export interface Declarations {
  constants: DeclaredConstant[];
  /** Every function_constant attribute was understood: a name not found is not declared. */
  complete: boolean;
}

/**
 * The function constants a source declares, with the files it includes by
 * `#include "name"` from `includeDir` (as the backends resolve them).
 */
export function declaredConstants(source: string, includeDir?: string): Declarations {
  const constants: DeclaredConstant[] = [];
  let attributes = 0;
  const seen = new Set<string>();
  const scan = (text: string, dir: string | undefined, depth: number) => {
    const code = withoutComments(text);
    attributes += [...code.matchAll(ATTRIBUTE)].length;
    for (const m of code.matchAll(DECLARATION)) {
      const index = /^\s*\d+\s*$/.test(m[3]) ? Number(m[3]) : null;
      constants.push({ name: m[2], index, type: constantType(m[1]), spelledType: m[1].trim() });
    }
    if (!dir || depth > 8) return;
    for (const inc of code.matchAll(/^\s*#\s*include\s*"([^"]+)"/gm)) {
      const path = join(dir, inc[1]);
      if (seen.has(path) || !existsSync(path)) continue;
      seen.add(path);
      scan(readFileSync(path, "utf8"), dirname(path), depth + 1);
    }
  };
  scan(source, includeDir, 0);
  return { constants, complete: attributes === constants.length };
}

const INTEGER = /^[+-]?\d+$/;

/** One component in its canonical spelling, or why it is not a value of `t`. */
function component(text: string, t: ConstantType): { value: string } | { why: string } {
  const s = t.scalar;
  if (s.kind === "bool") {
    if (text === "true" || text === "1") return { value: "true" };
    if (text === "false" || text === "0") return { value: "false" };
    return { why: `'${text}' is not true or false` };
  }
  const n = Number(text);
  if (text === "" || Number.isNaN(n)) return { why: `'${text}' is not a number` };
  if (s.kind === "float") {
    if (!Number.isFinite(n) || Math.abs(n) > s.max!) {
      return { why: `${text} is out of range for ${t.scalarName} (largest ${s.max})` };
    }
    return { value: String(n) };
  }
  // Integers: exact, as BigInt (a long may exceed 2^53).
  if (!INTEGER.test(text) && !(Number.isFinite(n) && Number.isInteger(n))) {
    return { why: `${text} is not an integer` };
  }
  const v = INTEGER.test(text) ? BigInt(text) : BigInt(n);
  const lo = s.kind === "uint" ? 0n : -(1n << BigInt(s.bits - 1));
  const hi = s.kind === "uint" ? (1n << BigInt(s.bits)) - 1n : (1n << BigInt(s.bits - 1)) - 1n;
  if (v < lo || v > hi) {
    return { why: `${text} is out of range for ${t.scalarName} (${lo}..${hi})` };
  }
  return { value: v.toString() };
}

/** A value for constant type `t`: its canonical spelling, or an error. */
export function constantValue(text: string, t: ConstantType): { value: string } | { why: string } {
  const parts = text.trim().split(/\s+/).filter(Boolean);
  if (parts.length !== t.components) {
    return {
      why: t.components === 1
        ? `'${text}' is not one ${t.name} value`
        : `'${text}' has ${parts.length} component(s); a ${t.name} takes ${t.components} (a list in the registry)`,
    };
  }
  const out: string[] = [];
  for (const p of parts) {
    const c = component(p, t);
    if ("why" in c) return c;
    out.push(c.value);
  }
  return { value: out.join(" ") };
}

export interface CheckOptions {
  /** The backend takes vector constants (the simulator does not). */
  vectors: boolean;
  backend: string;
}

/**
 * The function_constants option ("name=value,index=value") checked against
 * the source's declarations and rewritten in canonical spelling. Throws
 * FunctionConstantError with one line naming the constant.
 */
export function checkFunctionConstants(
  option: string,
  declared: Declarations,
  opts: CheckOptions,
): string {
  const out: string[] = [];
  for (const raw of option.split(",")) {
    const item = raw.trim();
    if (!item) continue;
    const eq = item.indexOf("=");
    if (eq < 0) throw new FunctionConstantError(`function constant '${item}' has no '=value'`);
    const key = item.slice(0, eq).trim();
    const text = item.slice(eq + 1).trim();
    const found = declared.constants.find((c) => c.name === key) ??
      declared.constants.find((c) => c.index !== null && String(c.index) === key);
    if (!found) {
      if (!declared.complete) {
        out.push(`${key}=${text}`); // declared in a way not understood here: the backend decides
        continue;
      }
      const names = declared.constants.map((c) => `${c.name} (${c.index ?? "?"})`);
      throw new FunctionConstantError(
        `the kernel declares no function constant '${key}' (it has: ${
          names.length ? names.join(", ") : "none"
        }) — fix: correct the registry's "constants"`,
      );
    }
    if (!found.type) {
      out.push(`${key}=${text}`); // a type not known here: the backend checks it
      continue;
    }
    const v = constantValue(text, found.type);
    if ("why" in v) {
      throw new FunctionConstantError(
        `function constant '${found.name}' (${found.type.name}): ${v.why} — fix: give a value of its type in the registry's "constants", or widen the kernel's type`,
      );
    }
    if (found.type.components > 1 && !opts.vectors) {
      throw new FunctionConstantError(
        `function constant '${found.name}' is a ${found.type.name}: the ${opts.backend} backend sets scalar function constants only — fix: run it on Metal, or declare ${found.type.components} scalar constants`,
      );
    }
    out.push(`${key}=${v.value}`);
  }
  return out.join(",");
}
