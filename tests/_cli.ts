/** Test helper: run the CLI (from source) as a user would, capturing its output. */
import { parseBenchStream } from "../src/api/events.ts";
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

export async function metalbench(
  args: string[],
  opts: { cwd?: string; env?: Record<string, string> } = {},
) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "--config", CONFIG, MAIN, ...args],
    cwd: opts.cwd,
    env: opts.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * `metalbench --all` over `workspace` on the simulator, no session, JSON
 * events; `args` adds options. The run, and its records by kernel.
 */
export async function runAllOnSim(workspace: string, args: string[] = []) {
  const out = await metalbench([
    "--all",
    "--workspace",
    workspace,
    "--backend",
    "sim",
    "--no-session",
    "--json",
    ...args,
  ]);
  return { ...out, runs: new Map(parseBenchStream(out.stdout).records.map((r) => [r.kernel, r])) };
}
