/**
 * `metalbench doctor`: check every prerequisite, end to end where it can
 * (a tiny kernel compiled and run, MLX imported), and print the exact fix
 * for each one that fails.
 */
import { existsSync } from "node:fs";
import { type BackendKind, defaultBackend, openBackend } from "../backend/select.ts";
import { assetPath, BRIDGE_ASSETS, bridgeAvailable } from "../backend/assets.ts";
import { checkPython, resolvePython, SetupError } from "../reference/python_env.ts";
import { MlxWorker } from "../reference/client.ts";
import { describeSandbox, sandboxIsOff } from "../reference/sandbox.ts";
import { chooseWorkspace } from "../registry/workspace.ts";
import { loadRegistry } from "../registry/load.ts";
import { readSession } from "../store/session.ts";
import { EXIT } from "./exit_codes.ts";
import { VERSION } from "../version.ts";

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

const PROBE_KERNEL = `#include <metal_stdlib>
using namespace metal;
kernel void doctor_probe(device float* x [[buffer(0)]], uint i [[thread_position_in_grid]]) {
  x[i] = float(i) * 2.0f;
}`;

async function backendCheck(kind: BackendKind): Promise<Check[]> {
  const checks: Check[] = [];
  const library = assetPath(BRIDGE_ASSETS[kind].library);
  const built = bridgeAvailable(kind);
  checks.push({
    name: `${kind} bridge library`,
    ok: built,
    detail: built ? library : `${library} is missing`,
    fix: built ? undefined : "metalbench setup   (or: deno task bridge)",
  });
  if (!built) return checks;
  try {
    const backend = await openBackend({ kind });
    try {
      const pipeline = await backend.bridge.compile(PROBE_KERNEL, "doctor_probe", {
        source_name: "probe.metal",
      });
      const buf = backend.bridge.buffer(64 * 4);
      const cmd = backend.bridge.command();
      cmd.setPipeline(pipeline);
      cmd.setBuffer(0, buf);
      cmd.dispatch("threads", [64, 1, 1], [32, 1, 1]);
      await cmd.run(1, 1);
      const out = new Float32Array(buf.read().buffer);
      const ok = out.every((v, i) => v === i * 2);
      checks.push({
        name: `${kind} device`,
        ok,
        detail: ok
          ? `${backend.info.name}${
            backend.info.sandbox ? ` (kernels sandboxed: ${backend.info.sandbox})` : ""
          }${
            backend.info.compile_sandbox
              ? ` (compiler confined: ${backend.info.compile_sandbox})`
              : ""
          }; a probe kernel compiled and ran correctly`
          : "the probe kernel gave wrong values",
      });
      cmd.free();
      buf.free();
      pipeline.free();
    } finally {
      backend.close();
    }
  } catch (e) {
    const fix = (e as { fix?: string }).fix;
    checks.push({ name: `${kind} device`, ok: false, detail: (e as Error).message, fix });
  }
  return checks;
}

async function pythonCheck(): Promise<Check> {
  const choice = resolvePython();
  try {
    const env = await checkPython(choice);
    return {
      name: "Python + MLX",
      ok: true,
      detail: `${choice.path} (${choice.source}): Python ${env.python}, mlx ${env.mlx}${
        env.mlxPinned ? "" : " (not the pinned version)"
      }, numpy ${env.numpy}`,
    };
  } catch (e) {
    if (e instanceof SetupError) {
      return { name: "Python + MLX", ok: false, detail: e.problem, fix: e.fix };
    }
    throw e;
  }
}

/** Start the real worker and report the sandbox it put itself in. */
async function referenceSandboxCheck(): Promise<Check> {
  const name = "reference sandbox";
  try {
    await using worker = await MlxWorker.start();
    const s = worker.hello.sandbox;
    return {
      name,
      ok: true,
      detail: sandboxIsOff(s)
        ? `none on ${Deno.build.os}: references run with the user's rights (minimal environment, no API keys)`
        : describeSandbox(s),
    };
  } catch (e) {
    return { name, ok: false, detail: (e as Error).message, fix: (e as { fix?: string }).fix };
  }
}

async function pythonAndSandboxChecks(): Promise<Check[]> {
  const python = await pythonCheck();
  return python.ok ? [python, await referenceSandboxCheck()] : [python];
}

async function workspaceCheck(dir?: string): Promise<Check[]> {
  try {
    const ws = chooseWorkspace(dir);
    const registry = loadRegistry(ws);
    const checks: Check[] = [{
      name: "workspace",
      ok: true,
      detail: `${ws.root}: ${registry.problems.size} problems`,
    }];
    try {
      await readSession(ws.sessionPath);
      checks.push({
        name: "session.json",
        ok: true,
        detail: existsSync(ws.sessionPath) ? "valid" : "none yet",
      });
    } catch (e) {
      checks.push({
        name: "session.json",
        ok: false,
        detail: (e as Error).message,
        fix: `move ${ws.sessionPath} away`,
      });
    }
    return checks;
  } catch (e) {
    return [{ name: "workspace", ok: false, detail: (e as Error).message }];
  }
}

export async function doctorCommand(
  opts: { backend?: BackendKind; workspace?: string },
): Promise<number> {
  const kind = opts.backend ?? defaultBackend();
  const checks: Check[] = [
    {
      name: "metalbench",
      ok: true,
      detail:
        `${VERSION} on Deno ${Deno.version.deno}, ${Deno.build.os}/${Deno.build.arch}; backend ${kind}`,
    },
    ...(await backendCheck(kind)),
    ...(await pythonAndSandboxChecks()),
    ...(await workspaceCheck(opts.workspace)),
  ];
  for (const c of checks) {
    console.log(`${c.ok ? "✓" : "✗"} ${c.name.padEnd(22)} ${c.detail}`);
    if (!c.ok && c.fix) console.log(`  ${"".padEnd(22)} fix: ${c.fix}`);
  }
  const bad = checks.filter((c) => !c.ok).length;
  console.log(bad ? `\n${bad} problem(s) found` : "\neverything is ready");
  return bad ? EXIT.ENVIRONMENT : EXIT.OK;
}
