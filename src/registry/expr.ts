/**
 * Size expressions of the registry: "M*N", "ceil(N/4)", "2*4*M*N".
 *
 * Registry files are data that users and the Welder edit, so they are never
 * evaluated as code: this is a small arithmetic parser over named sizes with
 * + - * / % ( ), numbers, and the functions ceil floor min max ceil_div.
 */

export type Dim = number | string;
export type Env = Readonly<Record<string, number>>;

export class ExprError extends Error {
  override name = "ExprError";
}

const FUNCTIONS: Record<string, (...args: number[]) => number> = {
  ceil: (a) => Math.ceil(a),
  floor: (a) => Math.floor(a),
  min: (...a) => Math.min(...a),
  max: (...a) => Math.max(...a),
  ceil_div: (a, b) => Math.ceil(a / b),
  sqrt: (a) => Math.sqrt(a),
};

type Token = { kind: "num"; value: number } | { kind: "id"; value: string } | {
  kind: "op";
  value: string;
};

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|([A-Za-z_]\w*)|(.))/y;
  let m: RegExpExecArray | null;
  re.lastIndex = 0;
  while (re.lastIndex < src.length && (m = re.exec(src)) !== null) {
    if (m[1] !== undefined) tokens.push({ kind: "num", value: Number(m[1]) });
    else if (m[2] !== undefined) tokens.push({ kind: "id", value: m[2] });
    else if (m[3] !== undefined) {
      if (!"+-*/%(),".includes(m[3])) {
        throw new ExprError(`unexpected '${m[3]}' in expression "${src}"`);
      }
      tokens.push({ kind: "op", value: m[3] });
    }
  }
  return tokens;
}

/** Evaluate `dim` with the sizes in `env`. Numbers pass through. */
export function evaluate(dim: Dim, env: Env): number {
  if (typeof dim === "number") return dim;
  const tokens = tokenize(dim);
  let pos = 0;
  const peek = () => tokens[pos];
  const fail = (what: string): never => {
    throw new ExprError(`${what} in expression "${dim}"`);
  };
  const expectOp = (op: string) => {
    const t = tokens[pos++];
    if (!t || t.kind !== "op" || t.value !== op) fail(`expected '${op}'`);
  };

  const primary = (): number => {
    const t = tokens[pos++];
    if (!t) return fail("unexpected end");
    if (t.kind === "num") return t.value;
    if (t.kind === "op" && t.value === "(") {
      const v = sum();
      expectOp(")");
      return v;
    }
    if (t.kind === "op" && (t.value === "-" || t.value === "+")) {
      const v = primary();
      return t.value === "-" ? -v : v;
    }
    if (t.kind === "id") {
      const next = peek();
      if (next && next.kind === "op" && next.value === "(") {
        const fn = FUNCTIONS[t.value];
        if (!fn) fail(`unknown function '${t.value}'`);
        pos++;
        const args = [sum()];
        while (peek()?.kind === "op" && peek()?.value === ",") {
          pos++;
          args.push(sum());
        }
        expectOp(")");
        return fn(...args);
      }
      if (!(t.value in env)) {
        fail(`unknown size '${t.value}' (known: ${Object.keys(env).join(", ") || "none"})`);
      }
      return env[t.value];
    }
    return fail(`unexpected '${t.value}'`);
  };
  const product = (): number => {
    let v = primary();
    for (let t = peek(); t?.kind === "op" && "*/%".includes(t.value); t = peek()) {
      pos++;
      const r = primary();
      v = t.value === "*" ? v * r : t.value === "/" ? v / r : v % r;
    }
    return v;
  };
  const sum = (): number => {
    let v = product();
    for (let t = peek(); t?.kind === "op" && "+-".includes(t.value); t = peek()) {
      pos++;
      const r = product();
      v = t.value === "+" ? v + r : v - r;
    }
    return v;
  };

  const value = sum();
  if (pos !== tokens.length) fail(`unexpected '${tokens[pos].value}'`);
  if (!Number.isFinite(value)) fail("result is not a finite number");
  return value;
}

/** Evaluate to a non-negative integer (shapes, grids, byte counts). */
export function evaluateInt(dim: Dim, env: Env, what: string): number {
  const v = evaluate(dim, env);
  if (!Number.isInteger(v) || v < 0) {
    throw new ExprError(`${what} "${dim}" is ${v}, not a non-negative integer`);
  }
  return v;
}

/** The size names an expression mentions (for validation messages). */
export function namesIn(dim: Dim): string[] {
  if (typeof dim === "number") return [];
  return tokenize(dim).flatMap((t, i, all) =>
    t.kind === "id" && !(all[i + 1]?.kind === "op" && all[i + 1]?.value === "(") ? [t.value] : []
  );
}
