/**
 * How a session run behaves on the things a Metal GPU does that the
 * simulator cannot: a device lost mid-run (Metal revokes a process's GPU
 * access after faults or time-outs), Metal layers that slow every call, and
 * the fast-math compile option. A small C wrapper around the real simulator
 * bridge (fixtures/metal/fake_gpu_bridge.c) stands in for those device
 * behaviours; everything else — compiling, running, the session, the
 * records, the report — is the real thing on the simulator. A time-out runs
 * on the simulator itself.
 */
import { join } from "node:path";
import { type Backend, openBackend } from "../src/backend/select.ts";
import { assetPath, BRIDGE_ASSETS } from "../src/backend/assets.ts";
import { loadRegistry, problemsInOrder } from "../src/registry/load.ts";
import { chooseWorkspace } from "../src/registry/workspace.ts";
import { ReferenceCache } from "../src/bench/reference_cache.ts";
import { MlxReference } from "../src/bench/reference_mlx.ts";
import type { BenchContext } from "../src/bench/run.ts";
import { DeviceLostError, runSession, type SessionOptions } from "../src/bench/session_run.ts";
import { renderReport } from "../src/bench/report.ts";
import { settingsKey } from "../src/store/session.ts";
import { makeWorkspace } from "./_workspace.ts";
import { assert, assertEquals, buildSim, FFI_DIR, SIM_LIB } from "./_sim_lib.ts";

const RELU_METAL = await Deno.readTextFile(
  new URL("../kernels/common/relu.metal", import.meta.url),
);
const RELU_PY = await Deno.readTextFile(new URL("../references/common/relu.py", import.meta.url));
const FAKE_SOURCE = new URL("./fixtures/metal/fake_gpu_bridge.c", import.meta.url).pathname;

let fakeBuilt: Promise<string> | undefined;

/** The wrapper library, built once per test process. */
function buildFake(): Promise<string> {
  fakeBuilt ??= (async () => {
    await buildSim();
    const out = `${await Deno.makeTempDir({ prefix: "mb-fake-gpu-" })}/libfake_gpu.so`;
    const cc = await new Deno.Command("clang-19", {
      args: ["-shared", "-fPIC", "-Wall", "-Werror", `-I${FFI_DIR}`, "-o", out, FAKE_SOURCE],
      stderr: "piped",
    }).output();
    if (!cc.success) throw new Error(new TextDecoder().decode(cc.stderr));
    return out;
  })();
  return fakeBuilt;
}

/**
 * A simulator backend seen through the fake: each call gets its own copy
 * of the library, so one test's lost device stays in that test.
 */
async function fakeBackend(env: Record<string, string>): Promise<Backend> {
  const copy = `${await Deno.makeTempDir({ prefix: "mb-fake-gpu-" })}/libfake_gpu.so`;
  await Deno.copyFile(await buildFake(), copy);
  for (const k of ["MB_FAKE_LOSE_ON", "MB_FAKE_LAYERS", "MB_FAKE_LOG"]) Deno.env.delete(k);
  Deno.env.set("MB_FAKE_REAL", SIM_LIB);
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  const backend = await openBackend({
    kind: "sim",
    files: {
      library: copy,
      runner: assetPath(BRIDGE_ASSETS.sim.runner),
      shimDir: assetPath(BRIDGE_ASSETS.sim.shimDir),
    },
  });
  return backend;
}

/** A workspace of relu problems, one kernel function each (k_<name>). */
async function reluWorkspace(problems: Record<string, Record<string, unknown>>) {
  const entries: Record<string, unknown> = {};
  const files: Record<string, string> = {};
  for (const [name, extra] of Object.entries(problems)) {
    entries[name] = { template: "elementwise", description: name, function: `k_${name}`, ...extra };
    files[`kernels/common/${name}.metal`] = RELU_METAL.replace("relu_f32", `k_${name}`);
    files[`references/common/${name}.py`] = RELU_PY;
  }
  files["registry/common.json"] = JSON.stringify({ set: "common", problems: entries });
  const root = await makeWorkspace(files);
  const workspace = chooseWorkspace(root);
  return { root, workspace, problems: problemsInOrder(loadRegistry(workspace)) };
}

async function context(backend: Backend | null, reference: MlxReference | null = null) {
  return {
    backend,
    reference,
    referenceCache: new ReferenceCache(await Deno.makeTempDir({ prefix: "mb-ref-cache-" })),
    workDir: await Deno.makeTempDir({ prefix: "mb-work-" }),
    withTimingLock: (fn) => fn(),
  } satisfies BenchContext;
}

const OPTIONS: SessionOptions = {
  mode: "metal",
  size: "test",
  seed: 1,
  seedSource: "user",
  trials: 1,
  warmup: 0,
  iters: 2,
  clock: { mode: "batched", batch: 2, description: "batched wall: 2 launches then one wait, ÷2" },
  coldStart: false,
  target: "speed",
  save: true,
};

const resultsOf = async (root: string) => {
  const names: string[] = [];
  for await (const bucket of Deno.readDir(join(root, "results"))) {
    for await (const f of Deno.readDir(join(root, "results", bucket.name))) {
      if (!f.name.startsWith(".")) names.push(f.name); // not the lock sidecars
    }
  }
  return names.sort();
};

Deno.test("a lost GPU stops the session at that kernel, with the bridge's one message; earlier runs are saved, later kernels not run", async () => {
  const log = await Deno.makeTempFile();
  const { root, workspace, problems } = await reluWorkspace({ a: {}, b: {}, c: {} });
  const backend = await fakeBackend({ MB_FAKE_LOSE_ON: "k_b", MB_FAKE_LOG: log });
  try {
    const seen: string[] = [];
    let thrown: unknown;
    try {
      await runSession(await context(backend), workspace, problems, OPTIONS, {
        onResult: (r) => seen.push(r.kernel),
      });
    } catch (e) {
      thrown = e;
    }
    assert(thrown instanceof DeviceLostError, `not a DeviceLostError: ${thrown}`);
    assertEquals([thrown.kernel, thrown.notRun], ["b", ["b", "c"]]);
    assert(/^the GPU is lost for this process: .*AccessRevoked/.test(thrown.message));
    assert(!thrown.message.includes("\n"));
    // a was measured and saved; b is not recorded as a fault of its own; c never compiled.
    assertEquals(seen, ["a"]);
    assertEquals(await resultsOf(root), ["a.json"]);
    const compiled = (await Deno.readTextFile(log)).trim().split("\n").map((l) => l.split(" ")[1]);
    assertEquals([...new Set(compiled)], ["k_a", "k_b"]);
  } finally {
    backend.close();
  }
});

Deno.test("a kernel that times out is recorded as its own fault; the next kernel runs and is timed", async () => {
  await buildSim();
  const { workspace, problems } = await reluWorkspace({ a_hang: {}, b_fine: {} });
  // a_hang's kernel never returns.
  const hang = problems.find((p) => p.name === "a_hang")!;
  await Deno.writeTextFile(
    hang.kernelPath,
    RELU_METAL.replace("relu_f32", "k_a_hang").replace(/\{/, "{ while (true) { y[0] += 1.0f; } "),
  );
  const backend = await openBackend({ kind: "sim", timeoutMs: 1500 });
  try {
    const records = await runSession(await context(backend), workspace, problems, {
      ...OPTIONS,
      save: false,
    });
    assertEquals(records.map((r) => [r.kernel, r.correctness.status]), [
      ["a_hang", "fault"],
      ["b_fine", "unchecked"],
    ]);
    assertEquals(records[0].error?.kind, "timeout");
    assert(records[1].kernelTiming !== null && records[1].kernelTiming.wallNs.length === 2);
  } finally {
    backend.close();
  }
});

Deno.test("fast math is off by default on the way to the compiler, on for a problem that opts in and for --fast-math; records and reports say so", async () => {
  const log = await Deno.makeTempFile();
  const { workspace, problems } = await reluWorkspace({ plain: {}, opted: { fastMath: true } });
  const backend = await fakeBackend({ MB_FAKE_LOG: log });
  try {
    const ctx = await context(backend);
    const records = await runSession(ctx, workspace, problems, { ...OPTIONS, save: false });
    const compiles = (await Deno.readTextFile(log)).trim().split("\n");
    const fastMathOf = (kernel: string) =>
      compiles.filter((l) => l.startsWith(`compile ${kernel} `)).map((l) =>
        /(?:^|;)fast_math=(\d)/.exec(l.split(" ").slice(2).join(" "))?.[1]
      );
    // Explicit either way: the Metal bridge must not fall back to Metal's default (on).
    assertEquals(fastMathOf("k_plain"), ["0"]);
    assertEquals(fastMathOf("k_opted"), ["1"]);
    const [opted, plain] = records; // problems in name order
    assertEquals([plain.kernel, plain.settings.fastMath], ["plain", false]);
    assertEquals([opted.kernel, opted.settings.fastMath], ["opted", true]);
    assert(/fast math {3}: off \(IEEE Inf\/NaN and precise math, as MLX/.test(renderReport(plain)));
    assert(
      /fast math {3}: on \(.*\); the simulator computes IEEE results regardless/.test(
        renderReport(opted),
      ),
    );
    // Fast-math runs never compete with IEEE ones on the leaderboard.
    assert(settingsKey("sim", plain.settings) !== settingsKey("sim", opted.settings));

    await Deno.writeTextFile(log, "");
    const forced = await runSession(ctx, workspace, problems, {
      ...OPTIONS,
      save: false,
      fastMath: true,
    });
    assertEquals(forced.map((r) => r.settings.fastMath), [true, true]);
    assertEquals((await Deno.readTextFile(log)).match(/fast_math=0/g), null);
  } finally {
    backend.close();
  }
});

Deno.test("the report names the wall clock and the kind of device time; the record keeps the kind", async () => {
  const { workspace, problems } = await reluWorkspace({ a: {} });
  const backend = await openBackend({ kind: "sim" });
  try {
    const [r] = await runSession(await context(backend), workspace, problems, {
      ...OPTIONS,
      save: false,
    });
    assertEquals(r.kernelTiming?.deviceTime, "runner-cpu-time");
    const report = renderReport(r);
    assert(
      /wall: host monotonic clock \(CLOCK_MONOTONIC; MLX: perf_counter_ns\), from before the launches are encoded/
        .test(report),
      report,
    );
    assert(/kernel cpu {2}: .* CPU time of the simulator runner process/.test(report), report);
  } finally {
    backend.close();
  }
});

Deno.test("a run timed with a Metal capture layer on is saved, says so, and stays out of session.json", async () => {
  const { root, workspace, problems } = await reluWorkspace({ a: {} });
  const plain = await openBackend({ kind: "sim" });
  const ctx = await context(plain);
  const reference = await MlxReference.start({
    readable: [ctx.workDir, join(root, "references")],
  });
  // The default protocol (fresh seed, 3 trials, edge classes): a correct run may enter session.json.
  const paired: SessionOptions = { ...OPTIONS, mode: "paired", seedSource: "random", trials: 3 };
  const notes: string[] = [];
  const layered = await fakeBackend({ MB_FAKE_LAYERS: '["capture"]' });
  try {
    const [first] = await runSession({ ...ctx, reference }, workspace, problems, paired, {
      onNote: (n) => notes.push(n),
    });
    assertEquals(first.correctness.status, "correct", first.correctness.detail);
    assert(notes.some((n) => /updated session\.json/.test(n)), notes.join("\n"));
    const before = await Deno.readTextFile(join(root, "session.json"));

    notes.length = 0;
    const [r] = await runSession(
      { ...ctx, reference, backend: layered },
      workspace,
      problems,
      paired,
      { onNote: (n) => notes.push(n) },
    );
    assertEquals(r.correctness.status, "correct", r.correctness.detail);
    assertEquals(r.device.layers, ["capture"]);
    assert(/layers {6}: Metal capture on while timing/.test(renderReport(r)), renderReport(r));
    assertEquals(notes.length, 1, notes.join("\n"));
    assert(/^not offered to session\.json \[.*\/a\]: timed with Metal's capture/.test(notes[0]));
    assertEquals(await Deno.readTextFile(join(root, "session.json")), before);
    assertEquals(await resultsOf(root), ["a.json"]);
    const runs = JSON.parse(await Deno.readTextFile(join(root, "results", first.bucket, "a.json")));
    assertEquals(runs.runs.length, 2);
  } finally {
    layered.close();
    plain.close();
    await reference.close();
  }
});
