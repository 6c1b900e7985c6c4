import assert from "node:assert/strict";
import {
  checkPython,
  ensurePythonEnv,
  managedEnvDir,
  MLX_VERSION,
  pipRequirements,
  resolvePython,
  SetupError,
  versionAtLeast,
} from "../src/reference/python_env.ts";

Deno.test("the managed environment's directory follows METALBENCH_HOME, XDG and macOS rules", () => {
  const home = { HOME: "/home/u" };
  assert.equal(managedEnvDir({ ...home, METALBENCH_HOME: "/opt/mb" }, "linux"), "/opt/mb/python");
  assert.equal(managedEnvDir(home, "linux"), "/home/u/.local/share/metalbench/python");
  assert.equal(managedEnvDir({ ...home, XDG_DATA_HOME: "/x" }, "linux"), "/x/metalbench/python");
  assert.equal(
    managedEnvDir(home, "darwin"),
    "/home/u/Library/Application Support/metalbench/python",
  );
});

Deno.test("Python choice: METALBENCH_PYTHON, then an existing managed venv, then python3", async () => {
  const dir = await Deno.makeTempDir({ prefix: "metalbench-home-" });
  try {
    const env = { METALBENCH_HOME: dir, HOME: "/nonexistent" };
    assert.deepEqual(resolvePython(env), { path: "python3", source: "PATH" });
    await Deno.mkdir(`${dir}/python/bin`, { recursive: true });
    await Deno.writeTextFile(`${dir}/python/bin/python`, "");
    assert.deepEqual(resolvePython(env), { path: `${dir}/python/bin/python`, source: "managed" });
    assert.deepEqual(resolvePython({ ...env, METALBENCH_PYTHON: "/p/python" }), {
      path: "/p/python",
      source: "METALBENCH_PYTHON",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pip requirements pin MLX, with the CPU backend on Linux", () => {
  assert.deepEqual(pipRequirements("linux", "x86_64")[0], `mlx[cpu]==${MLX_VERSION}`);
  assert.deepEqual(pipRequirements("darwin", "aarch64")[0], `mlx==${MLX_VERSION}`);
  assert.throws(() => pipRequirements("darwin", "x86_64"), SetupError);
  assert.ok(versionAtLeast("3.10.2", [3, 10]) && versionAtLeast("4.0", [3, 10]));
  assert.ok(!versionAtLeast("3.9.18", [3, 10]));
});

/** A stand-in interpreter that answers the probe as an old or bare Python would. */
async function fakePython(dir: string, answer: object): Promise<string> {
  const path = `${dir}/python`;
  await Deno.writeTextFile(path, `#!/bin/sh\necho '${JSON.stringify(answer)}'\n`);
  await Deno.chmod(path, 0o755);
  return path;
}

Deno.test("checks say what is missing in one line, with the fix for where Python came from", async () => {
  const dir = await Deno.makeTempDir({ prefix: "metalbench-fake-" });
  try {
    const old = await fakePython(dir, { python: "3.8.10", errors: [] });
    await assert.rejects(
      checkPython({ path: old, source: "PATH" }),
      (e: unknown) =>
        e instanceof SetupError && /is Python 3\.8\.10; MLX needs >= 3\.10/.test(e.message) &&
        e.fix.includes("metalbench setup"),
    );
    const bare = await fakePython(dir, {
      python: "3.12.1",
      numpy: "2.0.0",
      errors: ["ModuleNotFoundError: No module named mlx"], // no quotes: sh's echo '…'
    });
    await assert.rejects(
      ensurePythonEnv({ install: false, env: { METALBENCH_PYTHON: bare } }),
      (e: unknown) => {
        assert.ok(e instanceof SetupError);
        assert.match(e.message, /^METALBENCH_PYTHON=\S+ cannot import mlx\/numpy \(.*named mlx\)/);
        assert.ok(e.fix.startsWith(`${bare} -m pip install `), e.fix);
        assert.ok(e.fix.includes(`mlx`) && e.fix.includes(MLX_VERSION), e.fix);
        assert.ok(!e.message.includes("\n"));
        return true;
      },
    );
    // install never rewrites a Python the user chose.
    await assert.rejects(
      ensurePythonEnv({ install: true, env: { METALBENCH_PYTHON: bare }, log: () => {} }),
      SetupError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a missing METALBENCH_PYTHON is reported, not spawned blindly", async () => {
  await assert.rejects(
    ensurePythonEnv({ install: false, env: { METALBENCH_PYTHON: "/nonexistent" } }),
    (e: unknown) =>
      e instanceof SetupError &&
      e.message.startsWith("METALBENCH_PYTHON=/nonexistent is not a runnable Python (not found)"),
  );
});
