/**
 * Test helpers for Agent Steel: a workspace whose relu is deliberately slow
 * (so the suite's relu is clearly faster on the simulator), the kernels a
 * model might reply with (wrong ones, cheats, a slower one, the fast one),
 * replies in the format the prompt asks for, and readers of what the loop
 * wrote.
 */
import { join } from "node:path";
import { makeWorkspace } from "./_workspace.ts";
import { AttemptDB } from "../src/agent/attempts/db.ts";
import type { AttemptEntry } from "../src/agent/attempts/schema.ts";

const REPO = new URL("../", import.meta.url).pathname;
export const MAIN = join(REPO, "main.ts");
export const CONFIG = join(REPO, "deno.json");
export const BUCKET = `sim-${Deno.build.arch}`;

const RELU_PY = await Deno.readTextFile(join(REPO, "references/common/relu.py"));
const HEAD = "#include <metal_stdlib>\nusing namespace metal;\n";
const SIG = "kernel void relu_f32(device const float* x [[buffer(0)]],\n" +
  "                     device float* y [[buffer(1)]],\n" +
  "                     constant uint& n [[buffer(2)]],\n" +
  "                     uint gid [[thread_position_in_grid]])";
const EACH = "for (uint i = gid * 4; i < min(gid * 4 + 4, n); ++i)";

/** A correct relu that spins `spin` times per element (a loop the compiler cannot drop). */
export function spinRelu(spin: number): string {
  return `${HEAD}
// relu, slow on purpose: the loop's result never changes the output, but
// the compiler cannot prove it (it depends on the input).
${SIG} {
  ${EACH} {
    const float v = x[i];
    float acc = v;
    for (uint k = 0; k < ${spin}u; ++k) acc = acc * 0.999f + 0.001f;
    y[i] = (v < 0.0f ? 0.0f : v) + (acc == 12345.0f ? 1e-30f : 0.0f);
  }
}
`;
}

export const KERNELS = {
  /** The baseline: correct and slow. */
  slow: spinRelu(50),
  /** Correct and slower than the baseline. */
  slower: spinRelu(400),
  /** The suite's relu: correct, float4, far faster than the baseline. */
  fast: await Deno.readTextFile(join(REPO, "kernels/common/relu.metal")),
  /** Does not compile (a missing ';'). */
  syntax: `${HEAD}${SIG} {\n  ${EACH} y[i] = max(x[i], 0.0f)\n}\n`,
  /** Compiles, runs, wrong (a copy). */
  wrong: `${HEAD}${SIG} {\n  ${EACH} y[i] = x[i];\n}\n`,
  /** Cheat: does the work only when the output does not already hold an answer. */
  skipWritten: `${HEAD}${SIG} {
  ${EACH} {
    if (y[i] == y[i]) continue;  // not NaN: an earlier launch wrote it, skip the work
    const float v = x[i];
    y[i] = v < 0.0f ? 0.0f : v;
  }
}
`,
  /** Cheat: keeps the answer across launches in program-scope memory. */
  keepsState: `${HEAD}static float memo[4096];
static bool filled = false;
${SIG} {
  ${EACH} {
    if (!filled) { const float v = x[i]; memo[i] = v < 0.0f ? 0.0f : v; }
    y[i] = memo[i];
  }
  if (gid == 0) filled = true;
}
`,
  /** Cheat: right for inputs like the first trial's (|x| < 100), wrong for any other set. */
  firstTrialOnly: `${HEAD}${SIG} {
  ${EACH} {
    const float v = x[i];
    y[i] = v < 0.0f ? 0.0f : min(v, 100.0f);
  }
}
`,
};

/** A reply in the format the rewrite prompt asks for. */
export function reply(source: string, technique = "Vectorized float4 loads and stores."): string {
  return `Here is the kernel.\n\n\`\`\`metal\n${source}\`\`\`\n\nTechnique: ${technique}\n`;
}

/** A workspace with relu (and `others`, copies of it under other names) at `source`. */
export async function agentWorkspace(
  source = KERNELS.slow,
  others: string[] = [],
): Promise<string> {
  const names = ["relu", ...others];
  const problems = Object.fromEntries(names.map((n) => [n, {
    template: "elementwise",
    description: "y = max(x, 0)",
    function: "relu_f32",
    flopsPerElement: 1,
  }]));
  const files: Record<string, string> = {
    "registry/common.json": JSON.stringify({ set: "common", problems }),
  };
  for (const n of names) {
    files[`kernels/common/${n}.metal`] = source;
    files[`references/common/${n}.py`] = RELU_PY;
  }
  return await makeWorkspace(files);
}

export function kernelPath(ws: string, kernel = "relu"): string {
  return join(ws, "kernels/common", `${kernel}.metal`);
}

export async function entries(ws: string, kernel = "relu"): Promise<AttemptEntry[]> {
  const read = await new AttemptDB(join(ws, ".agent-steel"), kernel, BUCKET).read();
  if (read.warnings.length) throw new Error(read.warnings.join("\n"));
  return read.entries;
}

// deno-lint-ignore no-explicit-any
export async function session(ws: string): Promise<any | null> {
  try {
    return JSON.parse(await Deno.readTextFile(join(ws, "session.json")));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/** Args for a CLI run of the agent on `ws` against the stub at `url`. */
export function agentArgs(ws: string, url: string, api: "openai" | "anthropic", more: string[]) {
  return [
    "agent",
    "--backend=sim",
    "--workspace",
    ws,
    ...(api === "openai"
      ? ["--provider", "openai-compatible", "--base-url", `${url}/v1`]
      : ["--provider", "anthropic", "--base-url", url, "--api-key-env", "AGENT_TEST_KEY"]),
    "--model",
    "stub-model",
    ...more,
  ];
}

/** Spawn the CLI from source (stdout and stderr piped). */
export function spawnCli(args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "--config", CONFIG, MAIN, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

export async function finished(child: Deno.ChildProcess) {
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** The --json events of a run's stdout. */
// deno-lint-ignore no-explicit-any
export function events(stdout: string): any[] {
  return stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}
