/**
 * `deno task compile [--target <triple>]`: build the single `metalbench`
 * binary with everything it needs embedded — the bridge library of the
 * target's backend (Metal on macOS, the simulator with its runner and shim
 * on Linux), the MLX worker script and the built-in problem suite.
 *
 * The bridge must be built first: `make -C ffi sim` on Linux; on macOS
 * `make -C ffi metal`; from Linux for macOS, `make -C ffi check-macos
 * SDK=<sdk root>` (its dylib is then staged where the binary expects it).
 */
import { BRIDGE_ASSETS } from "../src/backend/assets.ts";

export const TARGETS = [
  "aarch64-apple-darwin",
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
] as const;
export type Target = (typeof TARGETS)[number];

/** Files and folders every binary embeds, relative to the repository root. */
export const COMMON_INCLUDES = [
  "src/reference/worker.py",
  "src/agent/prompts", // Agent Steel's built-in prompt templates (src/agent/prompts.ts)
  "registry",
  "kernels",
  "references",
];

export function includesFor(target: Target): string[] {
  const bridge = target.endsWith("apple-darwin")
    ? [BRIDGE_ASSETS.metal.library]
    : [BRIDGE_ASSETS.sim.library, BRIDGE_ASSETS.sim.runner, BRIDGE_ASSETS.sim.shimDir];
  return [...COMMON_INCLUDES, ...bridge];
}

export function compileArgs(target: Target, output: string): string[] {
  return [
    "compile",
    "--allow-all",
    "--target",
    target,
    "--output",
    output,
    ...includesFor(target).flatMap((p) => ["--include", p]),
    "main.ts",
  ];
}

const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};

if (import.meta.main) {
  const i = Deno.args.indexOf("--target");
  const target = (i >= 0 ? Deno.args[i + 1] : Deno.build.target) as Target;
  if (!TARGETS.includes(target)) {
    console.error(`compile: unsupported target '${target}' (one of: ${TARGETS.join(", ")})`);
    Deno.exit(2);
  }
  Deno.chdir(new URL("..", import.meta.url).pathname);
  // A dylib cross-linked on Linux by `make check-macos` is staged where the binary expects it.
  const crossLinked = "ffi/build/macos/libmetal_bridge.dylib";
  if (
    target.endsWith("apple-darwin") && !exists(BRIDGE_ASSETS.metal.library) && exists(crossLinked)
  ) {
    Deno.copyFileSync(crossLinked, BRIDGE_ASSETS.metal.library);
  }
  const missing = includesFor(target).filter((p) => !exists(p));
  if (missing.length) {
    const how = target.endsWith("apple-darwin")
      ? "make -C ffi metal (on a Mac) or make -C ffi check-macos SDK=<sdk root> (on Linux)"
      : "make -C ffi sim";
    console.error(`compile: missing ${missing.join(", ")}; build them first: ${how}`);
    Deno.exit(3);
  }
  const output = `dist/metalbench-${target}`;
  const status = await new Deno.Command(Deno.execPath(), { args: compileArgs(target, output) })
    .spawn().status;
  if (!status.success) Deno.exit(status.code || 1);
  console.error(`compile: wrote ${output}`);
}
