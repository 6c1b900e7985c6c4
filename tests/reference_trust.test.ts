/**
 * Reference code is untrusted: the real MLX worker (MLX on CPU) runs
 * references that attack it, and the user's secrets, files, network and
 * processes stay out of reach; a reference that raises, hangs or crashes is
 * named, and the next problem gets a fresh worker.
 *
 * The sandbox assertions hold where the OS gives the layers (Linux with
 * Landlock, user namespaces, seccomp); each test checks that the layer it
 * relies on was reported on, so a machine without it fails loudly rather
 * than passing by accident.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { MlxWorker } from "../src/reference/client.ts";
import { resolvePython } from "../src/reference/python_env.ts";
import { readTensor, readWorkerFile, writeTensor } from "../src/reference/tensor_io.ts";
import { workerEnv } from "../src/reference/sandbox.ts";
import { MlxReference } from "../src/bench/reference_mlx.ts";
import { ReferenceProblemError } from "../src/bench/reference_side.ts";
import { makeWorkspace } from "./_workspace.ts";
import { metalbench } from "./_cli.ts";
import { parseBenchStream } from "../src/api/events.ts";

const PYTHON = resolvePython();
const LINUX = Deno.build.os === "linux";

// Planted in this process's environment, as a user's shell would have them.
const TOKEN = `tok${crypto.randomUUID().replaceAll("-", "")}`;
const PLAIN = `plain${crypto.randomUUID().replaceAll("-", "")}`;
Deno.env.set("OPENAI_API_KEY", TOKEN);
Deno.env.set("MB_TRUST_CANARY", PLAIN); // a name no secret filter would catch

/**
 * Python that collects every place a secret could be read from, as one
 * string: its environment, the harness's, and a .env file in a folder above
 * the reference (a workspace's).
 */
const GATHER = `
import os
def gather():
    seen = [repr(sorted(os.environ.items()))]
    up = os.path.dirname(os.path.abspath(__file__))
    envs = []
    for _ in range(3):
        up = os.path.dirname(up)
        envs.append(os.path.join(up, ".env"))
    for path in ["/proc/%d/environ" % os.getppid(), "/proc/self/environ",
                 "/proc/%d/cmdline" % os.getppid()] + envs:
        try:
            with open(path, "rb") as f:
                seen.append(f.read().decode("latin-1"))
        except OSError as e:
            seen.append("%s: %s" % (path, e.strerror))
    return "\\n".join(seen)
`;

interface Setup {
  dir: string;
  refs: string;
  data: string;
  ref(name: string, source: string): Promise<string>;
  input(): Promise<{ path: string; dtype: "float32"; shape: number[] }>;
}

/** A references folder and a data folder, removed after `fn`. */
async function withFolders(fn: (s: Setup) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "mb-trust-" });
  await Deno.writeTextFile(join(dir, ".env"), `OPENAI_API_KEY=${TOKEN}\n`);
  const refs = join(dir, "references");
  const data = join(dir, "data");
  await Deno.mkdir(refs);
  await Deno.mkdir(data);
  try {
    await fn({
      dir,
      refs,
      data,
      async ref(name, source) {
        const path = join(refs, `${name}.py`);
        await Deno.writeTextFile(path, source);
        return path;
      },
      async input() {
        const path = join(data, "x.bin");
        await writeTensor(path, [1, 2, 3, 4], "float32");
        return { path, dtype: "float32", shape: [4] };
      },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function startWorker(s: Setup, stderr: string[]) {
  return MlxWorker.start({
    python: PYTHON,
    readable: [s.refs, s.data],
    onStderr: (line) => stderr.push(line),
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await filesUnder(p));
    else out.push(p);
  }
  return out;
}

Deno.test("the worker's hello reports the sandbox in force (Linux: every layer)", async () => {
  await using w = await MlxWorker.start({ python: PYTHON });
  const s = w.hello.sandbox;
  if (!LINUX) return;
  assert.deepEqual(s.notes, []);
  assert.ok(s.landlock >= 1 && s.writes && s.reads && s.processes, JSON.stringify(s));
  assert.ok(s.network.includes("namespace") && s.network.includes("no-sockets"));
  assert.notEqual(s.signals, "");
});

Deno.test("no secret reaches a reference: not in its environment, output, error, stderr or files", async () => {
  await withFolders(async (s) => {
    const stderr: string[] = [];
    const w = await startWorker(s, stderr);
    try {
      // It prints everything it found, writes it to a file, returns it as numbers, then raises with it.
      await w.load(
        "leak",
        await s.ref(
          "leak",
          `${GATHER}
import tempfile
import mlx.core as mx
class Model:
    def __call__(self, x):
        blob = gather()
        print("GATHERED", blob)
        with tempfile.NamedTemporaryFile("w", delete=False, suffix=".txt") as f:
            f.write(blob)
        return mx.array([float(ord(c)) for c in blob])
`,
        ),
      );
      await w.load(
        "raise",
        await s.ref(
          "raise",
          `${GATHER}\nclass Model:\n    def __call__(self, x):\n        raise RuntimeError(gather())\n`,
        ),
      );
      const x = await s.input();
      const out = join(s.data, "leak.bin");
      const [produced] = await w.run("leak", [x], [{ path: out }]);
      const chars = [...new Float32Array((await Deno.readFile(out)).buffer)];
      const returned = String.fromCharCode(...chars.slice(0, produced.shape[0]));
      let error = "";
      await w.run("raise", [x], [{ path: join(s.data, "r.bin") }]).catch((e) => {
        error = `${e.message}\n${e.traceback}`;
      });
      const everything = [returned, error, stderr.join("\n"), w.stderrTail()].join("\n");
      // The reference did run and did see its environment: the channels work.
      assert.match(everything, /GATHERED/);
      assert.match(returned, /'PATH'/);
      assert.match(error, /RuntimeError/);
      for (const secret of [TOKEN, PLAIN]) {
        assert.ok(!everything.includes(secret), "a planted secret reached the reference");
      }
      assert.doesNotMatch(returned, /'HOME'|OPENAI_API_KEY|MB_TRUST_CANARY/);
      if (LINUX) {
        assert.match(returned, /environ: Permission denied/);
        assert.match(returned, /\.env: Permission denied/);
      }
    } finally {
      await w.close();
    }
    const planted = join(s.dir, ".env");
    for (const f of (await filesUnder(s.dir)).filter((f) => f !== planted)) {
      const text = await Deno.readTextFile(f).catch(() => "");
      assert.ok(!text.includes(TOKEN) && !text.includes(PLAIN), `secret written to ${f}`);
    }
  });
});

Deno.test("a reference cannot write outside its scratch folder", async () => {
  if (!LINUX) return;
  await withFolders(async (s) => {
    const tag = crypto.randomUUID();
    const home = await new Deno.Command("sh", { args: ["-c", "echo ~"] }).output();
    const homeDir = new TextDecoder().decode(home.stdout).trim();
    const targets = [
      join(homeDir, `mb-trust-${tag}`),
      `/tmp/mb-trust-${tag}`,
      join(Deno.cwd(), `mb-trust-${tag}`),
      join(s.refs, `mb-trust-${tag}`),
      join(s.data, `mb-trust-${tag}`),
    ];
    const path = await s.ref(
      "writer",
      `
import os, tempfile
import mlx.core as mx
TARGETS = ${JSON.stringify(targets)}
OWN = ${JSON.stringify(join(s.refs, "writer.py"))}
INPUT = ${JSON.stringify(join(s.data, "x.bin"))}
class Model:
    def __call__(self, x):
        results = []
        for t in TARGETS:
            try:
                with open(t, "w") as f:
                    f.write("pwned")
                results.append("WROTE " + t)
            except OSError as e:
                results.append("refused %s: %s" % (t, e.strerror))
        for t, mode in ((OWN, "a"), (INPUT, "r+b"), ("/proc/%d/fd/2" % os.getppid(), "w")):
            try:
                with open(t, mode) as f:
                    f.write(b"\\0\\0\\0\\0" if "b" in mode else "# pwned\\n")
                results.append("WROTE " + t)
            except OSError as e:
                results.append("refused %s: %s" % (t, e.strerror))
        for fn in (lambda: os.rename(INPUT, INPUT + ".moved"), lambda: os.unlink(OWN),
                   lambda: os.symlink("/etc/passwd", os.path.join(tempfile.gettempdir(), "l"))):
            try:
                fn()
                results.append("CHANGED")
            except OSError as e:
                results.append("refused: %s" % e.strerror)
        with open(os.path.join(tempfile.gettempdir(), "mine.txt"), "w") as f:
            f.write("scratch is fine")  # the one place it may write
        raise RuntimeError(" | ".join(results))
`,
    );
    const x = await s.input();
    const inputBytes = await Deno.readFile(x.path);
    const ownSource = await Deno.readTextFile(path);
    const written: string[] = [];
    const stderr: string[] = [];
    await using w = await startWorker(s, stderr);
    await w.load("writer", path);
    const e = await w.run("writer", [x], [{ path: join(s.data, "y.bin") }]).then(
      () => assert.fail("the writer should raise its report"),
      (e) => e as Error,
    ).finally(async () => {
      // Should a write get through, leave no trace in the home, /tmp or the repository.
      for (const t of targets) await Deno.remove(t).then(() => written.push(t), () => {});
    });
    assert.doesNotMatch(e.message, /WROTE|CHANGED/, e.message);
    assert.equal((e.message.match(/refused/g) ?? []).length, 5 + 3 + 3, e.message);
    assert.deepEqual(written, [], "files written outside scratch");
    assert.deepEqual(await Deno.readFile(x.path), inputBytes, "the input file changed");
    assert.equal(await Deno.readTextFile(path), ownSource, "the reference file changed");
  });
});

Deno.test("a reference reaches no network: TCP to loopback (v4, v6), UDP, unix sockets", async () => {
  if (!LINUX) return;
  await withFolders(async (s) => {
    const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const sockPath = join(s.dir, "harness.sock");
    const unix = Deno.listen({ transport: "unix", path: sockPath });
    let contacts = 0;
    const count = async (accepting: AsyncIterable<unknown>) => {
      try {
        for await (const c of accepting) {
          contacts++;
          (c as Deno.Conn).close?.();
        }
      } catch { /* closed */ }
    };
    const served = [count(tcp), count(unix)];
    const path = await s.ref(
      "net",
      `
import socket
class Model:
    def __call__(self, x):
        out = []
        attempts = [
            ("tcp", lambda: socket.create_connection(("127.0.0.1", ${tcp.addr.port}), timeout=2)),
            ("tcp6", lambda: socket.create_connection(("::1", ${tcp.addr.port}), timeout=2)),
            ("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
                b"hi", ("127.0.0.1", 9))),
            ("unix", lambda: socket.socket(socket.AF_UNIX).connect(${JSON.stringify(sockPath)})),
            ("abstract", lambda: socket.socket(socket.AF_UNIX).connect("\\0mb-trust")),
        ]
        for name, fn in attempts:
            try:
                fn()
                out.append("CONNECTED " + name)
            except OSError as e:
                out.append("refused %s: %s" % (name, e.strerror))
        raise RuntimeError(" | ".join(out))
`,
    );
    try {
      const stderr: string[] = [];
      await using w = await startWorker(s, stderr);
      await w.load("net", path);
      const x = await s.input();
      const e = await w.run("net", [x], [{ path: join(s.data, "y.bin") }]).catch((e) => e as Error);
      assert.ok(e instanceof Error);
      assert.doesNotMatch(e.message, /CONNECTED/, e.message);
      assert.equal((e.message.match(/refused/g) ?? []).length, 5, e.message);
      assert.equal(contacts, 0, "the harness's servers were contacted");
    } finally {
      tcp.close();
      unix.close();
      await Promise.all(served);
    }
  });
});

Deno.test("a reference starts no process and signals nobody but itself", async () => {
  if (!LINUX) return;
  await withFolders(async (s) => {
    let signalled = 0;
    const onSignal = () => signalled++;
    Deno.addSignalListener("SIGUSR1", onSignal);
    const marker = join(s.data, "ran");
    const path = await s.ref(
      "procs",
      `
import ctypes, os, signal, subprocess
class Model:
    def __call__(self, x):
        out = []
        attempts = [
            ("subprocess", lambda: subprocess.run(["touch", ${JSON.stringify(marker)}])),
            ("system", lambda: os.system("touch " + ${
        JSON.stringify(marker)
      }) or os.strerror(ctypes.get_errno())),
            ("fork", os.fork),
            ("exec", lambda: os.execv("/bin/true", ["true"])),
            ("parent", lambda: os.kill(os.getppid(), signal.SIGUSR1)),
            ("group", lambda: os.kill(0, signal.SIGUSR1)),
        ]
        for name, fn in attempts:
            try:
                r = fn()
                out.append("%s -> %r" % (name, r))
            except OSError as e:
                out.append("refused %s: %s" % (name, e.strerror))
        os.kill(os.getpid(), 0)  # itself: allowed
        raise RuntimeError(" | ".join(out))
`,
    );
    try {
      await using w = await startWorker(s, []);
      await w.load("procs", path);
      const x = await s.input();
      const e = await w.run("procs", [x], [{ path: join(s.data, "y.bin") }]).catch((e) =>
        e as Error
      );
      assert.ok(e instanceof Error);
      assert.match(e.message, /refused subprocess: Operation not permitted/);
      assert.match(e.message, /refused fork: Operation not permitted/);
      assert.match(e.message, /refused exec/);
      assert.match(e.message, /refused parent: Operation not permitted/);
      assert.match(e.message, /refused group: Operation not permitted/);
      assert.match(e.message, /system -> (-1|\d+|'Operation not permitted')/); // os.system cannot fork
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(signalled, 0, "the test process was signalled");
      assert.equal(await Deno.stat(marker).then(() => true, () => false), false);
    } finally {
      Deno.removeSignalListener("SIGUSR1", onSignal);
    }
  });
});

Deno.test("an output is only read back when it is a plain file (no link out of scratch)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mb-trust-out-" });
  try {
    const secret = join(dir, "secret.txt");
    await Deno.writeTextFile(secret, TOKEN);
    await Deno.symlink(secret, join(dir, "link.bin"));
    await Deno.link(secret, join(dir, "hard.bin"));
    const size = TOKEN.length;
    await assert.rejects(readWorkerFile(join(dir, "link.bin"), size), /not a plain file/);
    await assert.rejects(readWorkerFile(join(dir, "hard.bin"), size), /not a plain file/);
    await Deno.writeTextFile(join(dir, "plain.bin"), "ok");
    assert.equal(new TextDecoder().decode(await readWorkerFile(join(dir, "plain.bin"), 2)), "ok");
    // Grown after the worker wrote it (a sparse terabyte would exhaust our memory): refused.
    await Deno.truncate(join(dir, "plain.bin"), 2 ** 40);
    await assert.rejects(readWorkerFile(join(dir, "plain.bin"), 2), /has 1099511627776 bytes/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the worker's environment: allowed names only, TMPDIR in scratch, no HOME, no keys", () => {
  const env = workerEnv({
    PATH: "/usr/bin",
    HOME: "/home/u",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    VIRTUAL_ENV: "/venv",
    OMP_NUM_THREADS: "2",
    OPENBLAS_NUM_THREADS: "2",
    MLX_METAL_DEBUG: "1",
    MLX_API_KEY: "k", // an allowed prefix, but a key
    OPENAI_API_KEY: "k",
    ANTHROPIC_API_KEY: "k",
    GITHUB_TOKEN: "k",
    AWS_SECRET_ACCESS_KEY: "k",
    SSH_AUTH_SOCK: "/tmp/agent",
    MY_VAR: "x",
  }, "/scratch/tmp");
  assert.deepEqual(env, {
    PATH: "/usr/bin",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    VIRTUAL_ENV: "/venv",
    OMP_NUM_THREADS: "2",
    OPENBLAS_NUM_THREADS: "2",
    MLX_METAL_DEBUG: "1",
    TMPDIR: "/scratch/tmp",
  });
});

// ---- failures are named, and the next problem gets a fresh worker ---------------

const GOOD =
  `import mlx.core as mx\nclass Model:\n    def __call__(self, x):\n        return mx.maximum(x, 0)\n`;

async function failureOf(s: Setup, name: string, body: string, timeoutMs = 60_000) {
  const path = await s.ref(
    name,
    `import os, time, ctypes, signal\nclass Model:\n    def __call__(self, x):\n${body}\n        return x\n`,
  );
  const good = await s.ref("good", GOOD);
  const ref = await MlxReference.start({ python: PYTHON, readable: [s.refs, s.data], timeoutMs });
  try {
    const x = await s.input();
    await ref.load(name, path, {});
    const failure = await ref.run(name, [x], [{ ...x, path: join(s.data, "y.bin"), name: "y" }])
      .then(() => assert.fail(`${name} should fail`), (e) => e);
    assert.ok(failure instanceof ReferenceProblemError, String(failure));
    if (failure.how === "raised") {
      // That worker lives on: the same problem runs again in it.
      await ref.run(name, [x], [{ ...x, path: join(s.data, "y.bin"), name: "y" }]).catch(() => {});
      assert.equal(ref.restarts, 0);
    }
    // The next problem runs: in the same worker if this one left no trace, else a fresh one.
    await ref.load("good", good, {});
    await ref.run("good", [x], [{ ...x, path: join(s.data, "g.bin"), name: "y" }]);
    return { failure, restarts: ref.restarts, path };
  } finally {
    await ref.close();
  }
}

Deno.test("a reference that hangs is named, stopped at the time limit, and replaced", async () => {
  await withFolders(async (s) => {
    const started = performance.now();
    const { failure, restarts, path } = await failureOf(
      s,
      "hangs",
      "        time.sleep(600)",
      1500,
    );
    assert.ok(performance.now() - started < 30_000);
    assert.equal(failure.how, "hung");
    assert.equal(failure.file, path);
    assert.ok(failure.message.includes(path) || failure.message.includes("hangs.py"));
    assert.match(
      failure.message,
      /did not return within 1\.5 s \('run'\).* — fix: .*--reference-timeout/,
    );
    assert.equal(restarts, 1);
  });
});

for (
  const [name, body, pattern] of [
    ["exits", "        os._exit(3)", /exited with code 3/],
    ["segfaults", "        ctypes.string_at(0)", /killed by SIGSEGV/],
    ["kills_itself", "        os.kill(os.getpid(), signal.SIGKILL)", /killed by SIGKILL/],
    [
      "forges",
      "        import __main__\n        __main__.PROTO_OUT.write('{\"forged\": 1}\\n')\n        __main__.PROTO_OUT.flush()\n        time.sleep(5)",
      /broke the MLX worker's protocol/,
    ],
  ] as const
) {
  Deno.test(`a reference that ${name.replace("_", " ")} is named as a crash and replaced`, async () => {
    await withFolders(async (s) => {
      const { failure, restarts } = await failureOf(s, name, body);
      assert.equal(failure.how, "crashed");
      assert.match(failure.message, new RegExp(`the MLX reference .*${name}\\.py`));
      assert.match(failure.message, pattern);
      assert.match(failure.message, / — fix: /);
      assert.ok(!failure.message.includes("\n"));
      assert.equal(restarts, 1);
    });
  });
}

Deno.test("a reference that raises is named, its text made printable, and the worker lives on", async () => {
  await withFolders(async (s) => {
    const { failure, restarts } = await failureOf(
      s,
      "raises",
      "        raise ValueError('bad\\x1b[2Kmetalbench: all correct\\x07\\u202e')",
    );
    assert.equal(failure.how, "raised");
    assert.match(
      failure.message,
      /raises\.py raised ValueError: bad\?\[2Kmetalbench: all correct\?\?/,
    );
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\x00-\x1f]/.test(failure.message), "control characters reach the terminal");
    // Raising leaves no trace in the worker: it serves the next problem.
    assert.equal(restarts, 0);
  });
});

Deno.test("a reference cannot reach the problems after it: patched MLX, clock, a thread on scratch", async () => {
  await withFolders(async (s) => {
    const poison = await s.ref(
      "poison",
      `
import os, threading, time, tempfile
import mlx.core as mx
OUT = os.path.join(os.path.dirname(tempfile.gettempdir()), "out")
def spoil():
    while True:
        for name in os.listdir(OUT):
            try:
                with open(os.path.join(OUT, name), "r+b") as f:
                    f.write(b"\\0" * 16)
            except OSError:
                pass
        time.sleep(0.0005)
class Model:
    def __call__(self, x):
        mx.maximum = lambda a, b: mx.zeros_like(a)
        time.perf_counter_ns = lambda: 0
        threading.Thread(target=spoil, daemon=True).start()
        return x
`,
    );
    const good = await s.ref("good", GOOD);
    const ref = await MlxReference.start({ python: PYTHON, readable: [s.refs, s.data] });
    try {
      const x = await s.input();
      const out = (n: string) => [{ ...x, path: join(s.data, `${n}.bin`), name: "y" }];
      await ref.load("poison", poison, {});
      await ref.run("poison", [x], out("p"));
      await ref.load("good", good, {});
      for (let i = 0; i < 5; i++) {
        await ref.run("good", [x], out("g"));
        assert.deepEqual([...await readTensor(join(s.data, "g.bin"), "float32")], [1, 2, 3, 4]);
      }
      const t = await ref.time("good", [x], { mode: "batched", batch: 4, warmup: 1, samples: 5 });
      assert.ok(t.samplesNs.every((ns) => ns > 0), "the clock was patched");
    } finally {
      await ref.close();
    }
  });
});

// ---- the CLI: exit code 5, one line per failure, the run goes on ----------------

Deno.test("CLI --all: a hanging and a crashing reference exit 5 with one line each; the next problem still runs", async () => {
  const entry = (d: string) => ({ template: "elementwise", description: d, function: "relu_f32" });
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: { a_hangs: entry("h"), b_crashes: entry("c"), c_relu: entry("r") },
    }),
    "references/common/a_hangs.py":
      "import time\nclass Model:\n    def __call__(self, x):\n        time.sleep(600)\n",
    "references/common/b_crashes.py":
      "import ctypes\nclass Model:\n    def __call__(self, x):\n        ctypes.string_at(0)\n",
    "references/common/c_relu.py": GOOD,
  });
  try {
    const r = await metalbench(["--all", "--mlx", "--json", "--reference-timeout", "2"], {
      cwd: ws,
    });
    assert.equal(r.code, 5, r.stderr);
    const runs = parseBenchStream(r.stdout).records as {
      kernel: string;
      error: { kind: string; message: string } | null;
      mlxTiming: { workerPid: number } | null;
    }[];
    assert.deepEqual(runs.map((x) => [x.kernel, x.error?.kind ?? null]), [
      ["a_hangs", "reference"],
      ["b_crashes", "reference"],
      ["c_relu", null],
    ]);
    assert.ok(runs[2].mlxTiming && runs[2].mlxTiming.workerPid > 0);
    const lines = r.stderr.trim().split("\n").filter((l) => l.startsWith("metalbench: "));
    assert.deepEqual(lines, [
      "metalbench: the MLX reference references/common/a_hangs.py did not return within 2 s ('time'); its worker was stopped — fix: make it return sooner, or raise --reference-timeout",
      "metalbench: the MLX reference references/common/b_crashes.py crashed the MLX worker (it was killed by SIGSEGV) during 'time' — fix: correct the reference (the next problem gets a fresh worker)",
    ]);
    assert.doesNotMatch(r.stderr, /doctor/);
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});

Deno.test("CLI: a secret in the user's environment reaches no report, error or results file", async () => {
  const ws = await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: { leak: { template: "elementwise", description: "l", function: "relu_f32" } },
    }),
    // An attacker guesses the names first (an error message is cut short), then takes the rest.
    "references/common/leak.py": `${GATHER}
class Model:
    def __call__(self, x):
        guessed = [os.environ.get(n, "-") for n in ("OPENAI_API_KEY", "MB_TRUST_CANARY")]
        raise RuntimeError(" ".join(guessed) + gather())
`,
    "kernels/common/leak.metal": await Deno.readTextFile(
      new URL("../kernels/common/relu.metal", import.meta.url),
    ),
    ".env": `OPENAI_API_KEY=${TOKEN}\n`,
  });
  try {
    const r = await metalbench(["leak", "--json"], { cwd: ws });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stdout + r.stderr, /RuntimeError/); // the reference ran and its error shows
    const written = (await filesUnder(ws)).filter((f) => !f.endsWith(".env"));
    assert.ok(written.some((f) => f.includes("results")), "a results file was written");
    for (
      const text of [
        r.stdout,
        r.stderr,
        ...await Promise.all(written.map((f) => Deno.readTextFile(f))),
      ]
    ) {
      assert.ok(!text.includes(TOKEN) && !text.includes(PLAIN), "a planted secret leaked");
    }
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});

Deno.test("a reference or input outside the readable folders is refused with the reason", async () => {
  if (!LINUX) return;
  await withFolders(async (s) => {
    const elsewhere = await Deno.makeTempDir({ prefix: "mb-trust-elsewhere-" });
    try {
      const ref = join(elsewhere, "relu.py");
      await Deno.writeTextFile(ref, GOOD);
      await writeTensor(join(elsewhere, "x.bin"), [1, 2], "float32");
      await using w = await MlxWorker.start({ python: PYTHON, readable: [s.refs, s.data] });
      await assert.rejects(w.load("far", ref), /cannot read it \(outside the folders/);
      await w.load("near", await s.ref("near", GOOD));
      const x = { path: join(elsewhere, "x.bin"), dtype: "float32" as const, shape: [2] };
      await assert.rejects(
        w.run("near", [x], [{ path: join(s.data, "y.bin") }]),
        /input 0: cannot read .* \(outside the folders/,
      );
    } finally {
      await Deno.remove(elsewhere, { recursive: true });
    }
  });
});

// Each layer alone keeps the reference off the network, so a machine that
// lacks one still has the others: the namespace (ENETUNREACH), Landlock's
// TCP rules (EACCES), seccomp (no socket at all).
for (
  const [only, layer, error] of [
    ["namespace", "namespace", /Network is unreachable/],
    ["landlock", "landlock-tcp", /Permission denied/],
    ["seccomp", "no-sockets", /Operation not permitted/],
  ] as const
) {
  Deno.test(`the ${only} layer alone refuses a TCP connection to loopback`, async () => {
    if (!LINUX) return;
    await withFolders(async (s) => {
      const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      let contacts = 0;
      const served = (async () => {
        try {
          for await (const c of tcp) {
            contacts++;
            c.close();
          }
        } catch { /* closed */ }
      })();
      try {
        const layers = ["namespace", "landlock", "seccomp"] as const;
        await using w = await MlxWorker.start({
          python: PYTHON,
          readable: [s.refs, s.data],
          sandboxOff: layers.filter((l) => l !== only),
        });
        assert.deepEqual(w.hello.sandbox.network, [layer]);
        await w.load(
          "tcp",
          await s.ref(
            "tcp",
            `import socket\nclass Model:\n    def __call__(self, x):\n        socket.create_connection(("127.0.0.1", ${tcp.addr.port}), timeout=2)\n        raise RuntimeError("CONNECTED")\n`,
          ),
        );
        const x = await s.input();
        const e = await w.run("tcp", [x], [{ path: join(s.data, "y.bin") }]).catch((e) => e);
        assert.ok(e instanceof Error);
        assert.doesNotMatch(e.message, /CONNECTED/);
        assert.match(e.message, error);
        assert.equal(contacts, 0);
      } finally {
        tcp.close();
        await served;
      }
    });
  });
}

/** Runs `first` then a clean reference in one MlxReference; how many fresh workers it took, and why. */
async function nextWorker(s: Setup, first: string, options: { isolate?: boolean } = {}) {
  const a = await s.ref("first", first);
  const good = await s.ref("good", GOOD);
  const ref = await MlxReference.start({ python: PYTHON, readable: [s.refs, s.data], ...options });
  try {
    const x = await s.input();
    await ref.load("first", a, {});
    await ref.run("first", [x], [{ ...x, path: join(s.data, "a.bin"), name: "y" }]).catch(() => {});
    await ref.load("good", good, {});
    await ref.run("good", [x], [{ ...x, path: join(s.data, "g.bin"), name: "y" }]);
    assert.deepEqual([...await readTensor(join(s.data, "g.bin"), "float32")], [1, 2, 3, 4]);
    return { restarts: ref.restarts, why: ref.lastRestartReason };
  } finally {
    await ref.close();
  }
}

const model = (body: string, imports = "") =>
  `${imports}\nclass Model:\n    def __call__(self, x):\n${body}\n        return x\n`;

Deno.test("a worker serves the next problem only while the references it ran left no trace", async () => {
  await withFolders(async (s) => {
    // A plain reference (and one that only imports pure-Python modules) leaves the worker as it was.
    assert.deepEqual(await nextWorker(s, model("        y = x * 2", "import math, json")), {
      restarts: 0,
      why: "",
    });
    // --isolate-references: a fresh worker whatever the check says.
    assert.equal((await nextWorker(s, model("        y = x * 2"), { isolate: true })).restarts, 1);
    // Each kind of trace, including the ones only the audit hook sees.
    const traces: [string, string, RegExp][] = [
      ["        mx.exp = mx.sin", "import mlx.core as mx", /mlx\.core\.exp was rebound/],
      ["        np.sum = lambda *a, **k: 0", "import numpy as np", /numpy\.sum was rebound/],
      ["        time.perf_counter_ns = lambda: 0", "import time", /time\.perf_counter_ns/],
      [
        "        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()",
        "import threading, time",
        /a thread was left running/,
      ],
      [
        "        sys.setprofile(lambda *a: None)",
        "import sys",
        /trace or profile hook|sys\.setprofile/,
      ],
      [
        "        ctypes.c_int.from_address(ctypes.addressof(ctypes.c_int(1)))",
        "import ctypes",
        /ctypes\./,
      ],
      ["        [o for o in gc.get_objects() if 0]", "import gc", /gc\.get_objects/],
      // A class patched, which no module attribute shows.
      ["        nn.Linear.__call__ = lambda self, x: x", "import mlx.nn as nn", /Linear\.__call__/],
      ["        signal.signal(signal.SIGUSR1, lambda *a: None)", "import signal", /signal handler/],
      ["        sys.meta_path.insert(0, object())", "import sys", /import hook/],
    ];
    for (const [body, imports, why] of traces) {
      const r = await nextWorker(s, model(body, imports));
      assert.equal(r.restarts, 1, `${body}: not caught`);
      assert.match(r.why, why, `${body}: ${r.why}`);
    }
  });
});
