/**
 * The real MLX worker on MLX's CPU backend: real Python, real files.
 * The interpreter comes from the same resolution the program uses
 * (METALBENCH_PYTHON, else the managed venv of `metalbench setup`, else python3).
 */
import assert from "node:assert/strict";
import { MlxError, MlxWorker, WorkerError, workerScript } from "../src/reference/client.ts";
import { resolvePython, SetupError } from "../src/reference/python_env.ts";
import type { TensorRef } from "../src/reference/protocol.ts";
import { readTensor, toBfloat16Bits, writeTensor } from "../src/reference/tensor_io.ts";
import type { Dtype } from "../src/registry/schema.ts";

const PYTHON = resolvePython();
const FIXTURES = decodeURIComponent(new URL("./fixtures/reference", import.meta.url).pathname);
const fixture = (name: string) => `${FIXTURES}/${name}.py`;

/** A started worker and a folder of inputs and outputs it may read, both gone after `fn`. */
async function withWorker(
  fn: (w: MlxWorker, dir: string) => Promise<void>,
  options: Parameters<typeof MlxWorker.start>[0] = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "metalbench-ref-" });
  try {
    await using w = await MlxWorker.start({
      python: PYTHON,
      readable: [FIXTURES, dir],
      ...options,
    });
    await fn(w, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function input(
  dir: string,
  name: string,
  values: number[],
  shape: number[],
  dtype: Dtype = "float32",
): Promise<TensorRef> {
  const path = `${dir}/${name}.bin`;
  await writeTensor(path, values, dtype);
  return { path, dtype, shape };
}

/** Small values on a grid of halves: every sum and product below is exact in float32. */
const grid = (n: number, offset = 0) =>
  Array.from({ length: n }, (_, i) => ((i * 7 + offset) % 17 - 8) * 0.5);

Deno.test("hello reports versions, device and clock", async () => {
  await withWorker((w) => {
    assert.match(w.hello.mlx, /^\d+\.\d+/);
    assert.match(w.hello.numpy, /^\d+\.\d+/);
    assert.ok(w.hello.device === "cpu" || w.hello.device === "gpu");
    if (Deno.build.os === "linux") assert.equal(w.hello.device, "cpu");
    assert.ok(w.hello.pid > 0);
    assert.equal(w.hello.clock.monotonic, true);
    return Promise.resolve();
  });
});

Deno.test("relu: outputs match values computed in TypeScript", async () => {
  await withWorker(async (w, dir) => {
    const values = [...grid(30), -0, 0];
    const x = await input(dir, "x", values, [4, 8]);
    const loaded = await w.load("common/relu", fixture("relu"));
    assert.equal(loaded.entry, "__call__");
    const y = `${dir}/y.bin`;
    const produced = await w.run("common/relu", [x], [{
      path: y,
      dtype: "float32",
      shape: [4, 8],
    }]);
    assert.deepEqual(produced, [{ dtype: "float32", shape: [4, 8] }]);
    const got = await readTensor(y, "float32", [4, 8]);
    assert.deepEqual([...got], values.map((v) => Math.max(v, 0)));
  });
});

Deno.test("a model with two outputs writes both, in order", async () => {
  await withWorker(async (w, dir) => {
    const xv = grid(32), yv = grid(32, 5);
    const x = await input(dir, "x", xv, [4, 8]);
    const y = await input(dir, "y", yv, [4, 8]);
    await w.load("two", fixture("two_outputs"));
    const out = [
      { path: `${dir}/sum.bin`, dtype: "float32", shape: [4, 8] },
      { path: `${dir}/dot.bin`, dtype: "float32", shape: [4] },
    ] as const;
    await w.run("two", [x, y], out);
    assert.deepEqual([...await readTensor(out[0].path, "float32")], xv.map((v, i) => v + yv[i]));
    const dots = [0, 1, 2, 3].map((r) =>
      xv.slice(r * 8, r * 8 + 8).reduce((s, v, c) => s + v * yv[r * 8 + c], 0)
    );
    assert.deepEqual([...await readTensor(out[1].path, "float32")], dots);
  });
});

Deno.test("init kwargs reach Model(**init); a forward-only model is called via forward", async () => {
  await withWorker(async (w, dir) => {
    const xv = grid(16);
    const x = await input(dir, "x", xv, [16]);
    await w.load("scaled", fixture("scale_shift"), { scale: 3, shift: 0.5 });
    await w.run("scaled", [x], [{ path: `${dir}/a.bin` }]);
    assert.deepEqual([...await readTensor(`${dir}/a.bin`, "float32")], xv.map((v) => 3 * v + 0.5));

    const loaded = await w.load("fwd", fixture("forward_only"));
    assert.equal(loaded.entry, "forward");
    await w.run("fwd", [x], [{ path: `${dir}/b.bin` }]);
    assert.deepEqual(
      [...await readTensor(`${dir}/b.bin`, "float32")],
      xv.map((v) => Math.abs(v) - 1),
    );
  });
});

Deno.test("float16 and bfloat16 round-trip through files bit for bit", async () => {
  await withWorker(async (w, dir) => {
    await w.load("affine", fixture("affine_half"));
    // 0.1 and 1/3 are not representable: the files carry the rounded values.
    const values = [0, 1, -1, 0.5, 0.1, 1 / 3, -2.75, 3.140625, 1000, -0.0078125];
    const f16bits = (v: number) => new Uint16Array(new Float16Array([v]).buffer)[0];
    const cases = [
      { dtype: "float16" as const, round: Math.f16round, bits: f16bits },
      {
        dtype: "bfloat16" as const,
        round: (v: number) =>
          new Float32Array(new Uint32Array([toBfloat16Bits(v) << 16]).buffer)[0],
        bits: toBfloat16Bits,
      },
    ];
    for (const { dtype, round, bits } of cases) {
      const x = await input(dir, dtype, values, [values.length], dtype);
      const out = `${dir}/${dtype}.out`;
      const produced = await w.run("affine", [x], [{ path: out, dtype, shape: [values.length] }]);
      assert.equal(produced[0].dtype, dtype);
      const expected = values.map((v) => round(2 * round(v) + 1));
      assert.deepEqual([...await readTensor(out, dtype)], expected, dtype);
      const raw = new Uint16Array((await Deno.readFile(out)).buffer);
      assert.deepEqual([...raw], expected.map(bits), `${dtype} bits`);
    }
  });
});

Deno.test("an output of the wrong shape, dtype or count is named clearly", async () => {
  await withWorker(async (w, dir) => {
    const x = await input(dir, "x", grid(32), [4, 8]);
    await w.load("wrong", fixture("wrong_shape"));
    await assert.rejects(
      w.run("wrong", [x], [{ path: `${dir}/y.bin`, name: "y", dtype: "float32", shape: [4, 8] }]),
      (e: unknown) =>
        e instanceof MlxError && e.kind === "mismatch" &&
        e.message.includes("output 0 'y' is float32[8,4]") && e.message.includes("float32[4,8]"),
    );
    await w.load("relu", fixture("relu"));
    await assert.rejects(
      w.run("relu", [x], [{ path: `${dir}/y.bin`, dtype: "float16", shape: [4, 8] }]),
      (e: unknown) =>
        e instanceof MlxError && e.kind === "mismatch" && /float16\[4,8\]/.test(e.message),
    );
    await w.load("two", fixture("two_outputs"));
    await assert.rejects(
      w.run("two", [x, x], [{ path: `${dir}/y.bin` }]),
      (e: unknown) =>
        e instanceof MlxError && e.kind === "output" && /returned 2 output/.test(e.message),
    );
  });
});

Deno.test("a raising model, a syntax error and bad inputs leave the worker serving", async () => {
  await withWorker(async (w, dir) => {
    const x = await input(dir, "x", grid(8), [8]);
    await w.load("raises", fixture("raises"));
    await assert.rejects(w.run("raises", [x], [{ path: `${dir}/y.bin` }]), (e: unknown) => {
      assert.ok(e instanceof MlxError);
      assert.equal(e.kind, "model");
      assert.match(
        e.message,
        /ValueError: this reference is broken on purpose \(at raises\.py:7\)/,
      );
      assert.match(e.traceback, /Traceback/);
      assert.equal(e.file, fixture("raises"));
      return true;
    });

    await assert.rejects(w.load("syntax", fixture("syntax_error")), (e: unknown) => {
      assert.ok(e instanceof MlxError);
      assert.equal(e.kind, "load");
      assert.ok(e.message.includes(fixture("syntax_error")), e.message);
      assert.match(e.message, /SyntaxError: .*line 6/);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
    await assert.rejects(
      w.load("missing", `${dir}/nope.py`),
      (e: unknown) => e instanceof MlxError && e.kind === "load" && /no such file/.test(e.message),
    );
    await assert.rejects(
      w.load("scaled", fixture("scale_shift"), { nonsense: 1 }),
      (e: unknown) => e instanceof MlxError && e.kind === "load" && /TypeError/.test(e.message),
    );

    await w.load("relu", fixture("relu"));
    await assert.rejects(
      w.run("relu", [{ ...x, shape: [16] }], [{ path: `${dir}/y.bin` }]),
      (e: unknown) => e instanceof MlxError && e.kind === "input" && /32 bytes/.test(e.message),
    );
    await assert.rejects(
      w.run("relu", [{ ...x, path: `${dir}/absent.bin` }], [{ path: `${dir}/y.bin` }]),
      (e: unknown) => e instanceof MlxError && e.kind === "input",
    );
    await assert.rejects(
      w.run("unknown", [x], [{ path: `${dir}/y.bin` }]),
      (e: unknown) =>
        e instanceof MlxError && e.kind === "protocol" && /not loaded/.test(e.message),
    );

    // Still serving, with the right answer.
    await w.run("relu", [x], [{ path: `${dir}/y.bin` }]);
    assert.deepEqual(
      [...await readTensor(`${dir}/y.bin`, "float32")],
      grid(8).map((v) => Math.max(v, 0)),
    );
    await w.unload("relu");
    await assert.rejects(w.run("relu", [x], [{ path: `${dir}/y.bin` }]), MlxError);
  });
});

Deno.test("print() and raw fd-1 writes from a model go to stderr, not the protocol", async () => {
  const lines: string[] = [];
  await withWorker(async (w, dir) => {
    const x = await input(dir, "x", [1, 2, 3], [3]);
    await w.load("chatty", fixture("chatty"));
    await w.run("chatty", [x], [{ path: `${dir}/y.bin` }]);
    await w.run("chatty", [x], [{ path: `${dir}/y.bin` }]);
    assert.deepEqual([...await readTensor(`${dir}/y.bin`, "float32")], [2, 3, 4]);
  }, { onStderr: (l) => lines.push(l) });
  for (const text of ["chatty: importing", "chatty: constructing", "chatty: raw write to fd 1"]) {
    assert.ok(lines.includes(text), `${text} in ${JSON.stringify(lines)}`);
  }
});

Deno.test("time: every sample kept, both modes; batching amortises eval", async () => {
  await withWorker(async (w, dir) => {
    const x = await input(dir, "x", grid(16), [16]);
    await w.load("relu", fixture("relu"));
    const batched = await w.time("relu", [x], {
      mode: "batched",
      batch: 64,
      warmup: 3,
      samples: 25,
    });
    const launch = await w.time("relu", [x], { mode: "per-launch", warmup: 3, samples: 25 });
    for (const t of [batched, launch]) {
      assert.equal(t.samplesNs.length, 25);
      assert.ok(t.samplesNs.every((s) => s > 0));
      assert.equal(t.warmup, 3);
    }
    assert.equal(batched.batch, 64);
    assert.equal(launch.batch, 1);
    assert.equal(batched.clock.name, "time.perf_counter_ns");
    const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
    // One eval per 64 calls against one per call: measured ~10x apart on a 2-core box.
    assert.ok(
      median(batched.samplesNs) < median(launch.samplesNs),
      `batched ${median(batched.samplesNs)} ns vs per-launch ${median(launch.samplesNs)} ns`,
    );

    await w.load("raises", fixture("raises"));
    await assert.rejects(
      w.time("raises", [x], { mode: "per-launch", warmup: 0, samples: 3 }),
      (e: unknown) => e instanceof MlxError && e.kind === "model",
    );
  });
});

Deno.test("cold: the first call after load, once per load", async () => {
  await withWorker(async (w, dir) => {
    const x = await input(dir, "x", grid(16), [16]);
    await w.load("relu", fixture("relu"));
    const first = await w.cold("relu", [x]);
    assert.ok(first.ns > 0);
    assert.equal(first.processCold, true);
    await assert.rejects(
      w.cold("relu", [x]),
      (e: unknown) => e instanceof MlxError && e.kind === "state",
    );
    await w.load("relu", fixture("relu"));
    const again = await w.cold("relu", [x]);
    assert.equal(again.processCold, false);
  });
});

Deno.test("the load seed makes drawn weights repeatable", async () => {
  await withWorker(async (w, dir) => {
    const x = await input(dir, "x", Array(8).fill(1), [8]);
    const outputOf = async (id: string, seed: number) => {
      await w.load(id, fixture("weights"), { n: 8 }, { seed });
      await w.run(id, [x], [{ path: `${dir}/${id}.bin` }]);
      return [...await readTensor(`${dir}/${id}.bin`, "float32")];
    };
    const a = await outputOf("a", 1);
    assert.deepEqual(await outputOf("b", 1), a);
    assert.notDeepEqual(await outputOf("c", 2), a);
  });
});

Deno.test("a missing Python is a one-line SetupError with the fix", async () => {
  const python = resolvePython({ METALBENCH_PYTHON: "/nonexistent/python3" });
  await assert.rejects(MlxWorker.start({ python }), (e: unknown) => {
    assert.ok(e instanceof SetupError);
    assert.ok(
      e.message.startsWith("METALBENCH_PYTHON=/nonexistent/python3 is not a runnable Python"),
    );
    assert.ok(e.message.includes("metalbench setup"), e.message);
    assert.ok(!e.message.includes("\n"));
    assert.ok(e.fix.length > 0);
    return true;
  });
});

Deno.test("a Python without MLX is a SetupError naming mlx and the pip command", async () => {
  const dir = await Deno.makeTempDir({ prefix: "metalbench-nomlx-" });
  try {
    // A package that shadows the real one and fails to import, as a missing MLX would.
    await Deno.mkdir(`${dir}/mlx`);
    await Deno.writeTextFile(`${dir}/mlx/__init__.py`, "raise ImportError('no MLX here')\n");
    await assert.rejects(
      MlxWorker.start({ python: PYTHON.path, env: { PYTHONPATH: dir } }),
      (e: unknown) => {
        assert.ok(e instanceof SetupError);
        assert.match(e.message, /cannot import mlx.*no MLX here/);
        assert.match(e.fix, /-m pip install .*mlx/);
        return true;
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("files in the working directory do not shadow numpy or mlx", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "metalbench-cwd-" });
  try {
    await Deno.writeTextFile(`${cwd}/numpy.py`, "raise ImportError('shadowed')\n");
    await Deno.mkdir(`${cwd}/mlx`);
    await Deno.writeTextFile(`${cwd}/mlx/__init__.py`, "raise ImportError('shadowed')\n");
    await withWorker(async (w, dir) => {
      const x = await input(dir, "x", [-1, 1], [2]);
      await w.load("relu", fixture("relu"));
      await w.run("relu", [x], [{ path: `${dir}/y.bin` }]);
      assert.deepEqual([...await readTensor(`${dir}/y.bin`, "float32")], [0, 1]);
    }, { cwd });
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("a worker killed from outside gives a clear error, not a hang", async () => {
  await withWorker(async (w, dir) => {
    const x = await input(dir, "x", [1], [1]);
    await w.load("sleepy", fixture("sleepy"));
    const pending = w.run("sleepy", [x], [{ path: `${dir}/y.bin` }]);
    await new Promise((r) => setTimeout(r, 300));
    Deno.kill(w.hello.pid, "SIGKILL");
    await assert.rejects(pending, (e: unknown) => {
      assert.ok(e instanceof WorkerError);
      assert.equal(e.reason, "died");
      assert.match(e.message, /killed by SIGKILL during 'run' of sleepy/);
      return true;
    });
    // Later requests fail at once with the same reason.
    await assert.rejects(w.load("relu", fixture("relu")), /killed by SIGKILL/);
  });
});

Deno.test("a request past its time limit kills the worker and says so", async () => {
  await withWorker(async (w, dir) => {
    const x = await input(dir, "x", [1], [1]);
    await w.load("sleepy", fixture("sleepy"));
    const started = Date.now();
    await assert.rejects(
      w.run("sleepy", [x], [{ path: `${dir}/y.bin` }], { timeoutMs: 500 }),
      (e: unknown) =>
        e instanceof WorkerError && e.reason === "timeout" &&
        /did not answer 'run' of sleepy within 0.5 s/.test(e.message),
    );
    assert.ok(Date.now() - started < 5_000);
  });
});

Deno.test("the worker script is read through workerScript()", async () => {
  const text = await workerScript();
  assert.ok(text.startsWith('"""MetalBench MLX worker'));
  assert.match(text, /PROTOCOL = 2/);
});
