/**
 * MlxWorker: the client of the long-lived MLX worker process (worker.py).
 * The wire protocol is described and typed in protocol.ts.
 *
 *   await using mlx = await MlxWorker.start();
 *   await mlx.load("common/relu", "references/common/relu.py", problem.init);
 *   await mlx.run("common/relu", inputs, outputs);
 *   const t = await mlx.time("common/relu", inputs, { mode: "batched", batch: 64, warmup: 5, samples: 100 });
 *
 * Requests go one at a time (concurrent calls queue). A failure of the
 * problem is an MlxError and the worker stays usable; a failure of the
 * process (it died, it timed out, it spoke nonsense) is a WorkerError and the
 * worker is gone; a Python that cannot run it is a SetupError.
 *
 * Reference code is untrusted: the worker starts with a minimal environment
 * (sandbox.ts), writes only into a private scratch folder that this client
 * makes and removes, reads only the `readable` folders (plus Python's own),
 * and outputs are copied out of scratch only when they are plain files.
 */
import type { z } from "zod";
import type { Dtype } from "../registry/schema.ts";
import { join } from "node:path";
import { readLines } from "./lines.ts";
import { workerEnv } from "./sandbox.ts";
import { producedBytes, readWorkerFile } from "./tensor_io.ts";
import {
  Cold,
  Empty,
  Envelope,
  Failure,
  type FailureKind,
  Hello,
  Integrity,
  Loaded,
  type ProducedTensor,
  PROTOCOL_VERSION,
  Ran,
  Runs,
  type TensorRef,
  Timing,
} from "./protocol.ts";
import {
  MIN_PYTHON,
  packagesMissing,
  type PythonChoice,
  pythonNotRunnable,
  pythonTooOld,
  resolvePython,
  SetupError,
  spawnFailure,
  versionAtLeast,
} from "./python_env.ts";

/** A failure of one problem (load, inputs, the model, its outputs); the worker lives on. */
export class MlxError extends Error {
  override name = "MlxError";
  constructor(
    readonly kind: FailureKind | "mismatch",
    message: string,
    readonly traceback = "",
    readonly file = "",
  ) {
    super(message);
  }
}

/** A failure of the worker process itself; it is no longer usable. */
export class WorkerError extends Error {
  override name = "WorkerError";
  constructor(
    readonly reason: "died" | "timeout" | "protocol" | "closed",
    message: string,
    readonly stderrTail = "",
    /** How it died: "was killed by SIGSEGV", "exited with code 3" (reason "died" only). */
    readonly how = "",
    /** The request in flight, e.g. "'run' of common/relu", or "". */
    readonly during = "",
  ) {
    super(message);
  }
}

/**
 * The worker's source text. Always read through this one function, so that
 * `deno run` exercises the path a compiled binary takes (there worker.py is
 * embedded with `deno compile --include src/reference/worker.py`).
 */
export async function workerScript(): Promise<string> {
  const url = new URL("./worker.py", import.meta.url);
  if (url.protocol === "file:") return await Deno.readTextFile(url);
  const res = await fetch(url);
  if (!res.ok) throw new Error(`cannot fetch the MLX worker script ${url}: ${res.status}`);
  return await res.text();
}

export interface StartOptions {
  /** The interpreter; default: resolvePython() (METALBENCH_PYTHON, managed venv, python3). */
  python?: string | PythonChoice;
  /** Default time limit of one request, in ms (default 120 s). On expiry the worker is killed. */
  timeoutMs?: number;
  /** Time limit for start-up, MLX import included (default 60 s). */
  startTimeoutMs?: number;
  /**
   * Extra environment variables for the worker, on top of the minimal
   * environment it always gets (sandbox.ts: no API keys, no HOME).
   */
  env?: Record<string, string>;
  /**
   * Folders the worker may read besides Python's own and scratch (where the
   * OS sandbox limits reads): the references' folders and the input files'.
   */
  readable?: readonly string[];
  /** Sandbox layers to leave off, to test each of the others alone. */
  sandboxOff?: readonly ("namespace" | "landlock" | "seccomp")[];
  /** Python sources run in the worker after its sandbox, to add ops (torch_worker.py). */
  extensions?: readonly string[];
  /** The worker's working directory (default: ours); relative tensor paths resolve from it. */
  cwd?: string;
  /** Each line the worker writes to stderr (a model's print() included). */
  onStderr?: (line: string) => void;
}

/** Where to write an output, and (optionally) what the registry says it must be. */
export interface OutputSpec {
  path: string;
  name?: string;
  dtype?: Dtype;
  shape?: readonly number[];
}

export type TimeOptions =
  & { warmup: number; samples: number; timeoutMs?: number }
  & ({ mode: "batched"; batch: number } | { mode: "per-launch" });

interface Pending {
  id: number;
  what: string;
  resolve: (raw: Record<string, unknown>) => void;
  reject: (e: Error) => void;
}

const STDERR_LINES = 50;
/** Longest stderr line kept, and longest protocol line accepted (chars). */
const STDERR_LINE_CHARS = 2_000;
const STDOUT_LINE_CHARS = 16 << 20;
const encoder = new TextEncoder();

/**
 * Text from the worker made safe for a terminal: no escapes, no line breaks,
 * no bidi overrides that would show a line other than the one printed.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, "?");
}
const UNPRINTABLE = /[\p{Cc}\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

export class MlxWorker {
  readonly #child: Deno.ChildProcess;
  readonly #scratch: string;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #timeoutMs: number;
  readonly #stderr: string[] = [];
  readonly #readers: Promise<void>[];
  #pending: Pending | null = null;
  #dead: WorkerError | null = null;
  #closing = false;
  #queue: Promise<unknown> = Promise.resolve();
  #nextId = 1;
  #outputs = 0;
  #hello: Hello | null = null;
  /** The first trace the worker's audit hook reported on stderr, if any. */
  #trace: string | null = null;
  readonly #syncs = new Map<string, () => void>();

  private constructor(
    child: Deno.ChildProcess,
    readonly python: PythonChoice,
    options: StartOptions,
    scratch: string,
  ) {
    this.#child = child;
    this.#scratch = scratch;
    this.#stdin = child.stdin.getWriter();
    this.#timeoutMs = options.timeoutMs ?? 120_000;
    const stderrDone = this.#readStderr(child.stderr, options.onStderr);
    this.#readers = [this.#readStdout(child.stdout, stderrDone), stderrDone];
  }

  /** Spawn the worker and wait for its hello. */
  static async start(options: StartOptions = {}): Promise<MlxWorker> {
    const python: PythonChoice = typeof options.python === "string"
      ? { path: options.python, source: "option" }
      : options.python ?? resolvePython();
    try {
      return await MlxWorker.#start(python, options, true);
    } catch (e) {
      // A Python whose packages live where the read limit does not reach
      // (an unusual layout): run it with reads open, the rest of the sandbox on.
      if (!(e instanceof SetupError) || !/Permission ?(denied|Error)/i.test(e.problem)) throw e;
      return await MlxWorker.#start(python, options, false);
    }
  }

  static async #start(python: PythonChoice, options: StartOptions, limitReads: boolean) {
    const script = await workerScript();
    const scratch = await Deno.makeTempDir({ prefix: "metalbench-mlx-" });
    await Deno.mkdir(join(scratch, "tmp"));
    await Deno.mkdir(join(scratch, "out"));
    const config = {
      scratch,
      readable: options.readable ?? [],
      limitReads,
      off: options.sandboxOff ?? [],
      extensions: options.extensions ?? [],
    };
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(python.path, {
        args: ["-c", script, JSON.stringify(config)],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        clearEnv: true,
        env: workerEnv(Deno.env.toObject(), join(scratch, "tmp"), options.env),
        cwd: options.cwd,
      }).spawn();
    } catch (e) {
      await removeScratch(scratch);
      throw pythonNotRunnable(python, spawnFailure(e));
    }
    const worker = new MlxWorker(child, python, options, scratch);
    try {
      const hello = await worker.#request("hello", {}, Hello, options.startTimeoutMs ?? 60_000);
      if (!versionAtLeast(hello.python, MIN_PYTHON)) throw pythonTooOld(python, hello.python);
      if (hello.protocol !== PROTOCOL_VERSION) {
        throw new WorkerError(
          "protocol",
          `MLX worker speaks protocol ${hello.protocol}, this client ${PROTOCOL_VERSION}`,
        );
      }
      worker.#hello = hello;
      return worker;
    } catch (e) {
      await worker.close();
      if (e instanceof MlxError && e.kind === "setup") throw packagesMissing(python, e.message);
      // Python itself failed before speaking the protocol (e.g. not a Python at all).
      if (e instanceof WorkerError && e.reason === "died") {
        throw pythonNotRunnable(python, e.message);
      }
      throw e;
    }
  }

  /** Versions, device, platform and clock, as the worker reported them at start. */
  get hello(): Hello {
    return this.#hello!;
  }

  /** The last lines the worker wrote to stderr. */
  stderrTail(): string {
    return this.#stderr.join("\n");
  }

  /** Import `path` in isolation and construct Model(**init) as problem `problem`. */
  load(
    problem: string,
    path: string,
    init: Record<string, number | string | boolean> = {},
    options: { seed?: number; timeoutMs?: number } = {},
  ): Promise<Loaded> {
    const body = { problem, path, init, seed: options.seed ?? 0 };
    return this.#request("load", body, Loaded, options.timeoutMs, problem);
  }

  async unload(problem: string): Promise<void> {
    await this.#request("unload", { problem }, Empty, undefined, problem);
  }

  /**
   * Run once on `inputs` (registry order) and write each output to its path.
   * Where an OutputSpec gives dtype or shape, a different result is an
   * MlxError of kind "mismatch". The worker writes into its scratch folder
   * (the only place it may write); the outputs are copied from there.
   */
  run(
    problem: string,
    inputs: readonly TensorRef[],
    outputs: readonly OutputSpec[],
    options: { timeoutMs?: number } = {},
  ): Promise<ProducedTensor[]> {
    return this.runs(problem, [{ inputs, outputs }], options).then((r) => r[0]);
  }

  /** Several runs in one request (the trial and edge sets of a benchmark). */
  async runs(
    problem: string,
    sets: readonly { inputs: readonly TensorRef[]; outputs: readonly OutputSpec[] }[],
    options: { timeoutMs?: number } = {},
  ): Promise<ProducedTensor[][]> {
    const inScratch = sets.map((set) => {
      const n = ++this.#outputs;
      return set.outputs.map((_, i) => join(this.#scratch, "out", `${n}_${i}.bin`));
    });
    const runs = sets.map((set, k) => ({
      inputs: set.inputs.map(tensorRef),
      outputs: inScratch[k].map((path) => ({ path })),
    }));
    const single = sets.length === 1;
    const ran = single
      ? [await this.#request("run", { problem, ...runs[0] }, Ran, options.timeoutMs, problem)]
      : (await this.#request("runs", { problem, runs }, Runs, options.timeoutMs, problem)).runs;
    if (ran.length !== sets.length) {
      throw new MlxError(
        "output",
        `MLX runs of ${problem}: ${ran.length} answers for ${sets.length}`,
      );
    }
    for (const [k, set] of sets.entries()) {
      ran[k].outputs.forEach((got, i) => checkOutput(problem, i, set.outputs[i], got));
      for (const [i, from] of inScratch[k].entries()) {
        let bytes: Uint8Array<ArrayBuffer>;
        try {
          const got = ran[k].outputs[i];
          bytes = await readWorkerFile(from, producedBytes(got.dtype, got.shape));
        } catch (e) {
          throw new MlxError(
            "output",
            `MLX run of ${problem}: output ${i}: ${(e as Error).message}`,
          );
        }
        await Deno.remove(from).catch(() => {});
        await Deno.writeFile(set.outputs[i].path, bytes);
      }
    }
    return ran.map((r) => r.outputs);
  }

  /** Time calls on `inputs`; every sample is kept (ns per call). */
  time(problem: string, inputs: readonly TensorRef[], options: TimeOptions): Promise<Timing> {
    const { timeoutMs, ...rest } = options;
    const body = { problem, inputs: inputs.map(tensorRef), ...rest };
    return this.#request("time", body, Timing, timeoutMs, problem);
  }

  /** An op an extension added (see StartOptions.extensions), answered as `schema`. */
  ask<T>(
    op: string,
    body: Record<string, unknown>,
    schema: z.ZodType<T>,
    options: { timeoutMs?: number; problem?: string } = {},
  ): Promise<T> {
    return this.#request(op, body, schema, options.timeoutMs, options.problem);
  }

  /** The scratch folder: the only place the worker may write. */
  get scratch(): string {
    return this.#scratch;
  }

  /**
   * May this worker serve another problem? Clean only when the worker finds
   * no trace of the references run so far and its audit hook reported none
   * (read up to the sync line the worker writes after any trace).
   */
  async integrity(): Promise<Integrity> {
    const nonce = crypto.randomUUID();
    const synced = new Promise<void>((resolve) => this.#syncs.set(nonce, resolve));
    try {
      const r = await this.#request("integrity", { nonce }, Integrity, 10_000);
      let seen = false;
      await within(synced.then(() => seen = true), 1_000);
      const why = [...r.why];
      if (!seen) why.push("the worker's stderr did not confirm the check");
      if (this.#trace) why.push(`the audit hook saw ${this.#trace}`);
      return { clean: why.length === 0, why };
    } finally {
      this.#syncs.delete(nonce);
    }
  }

  /** The first call + eval of a freshly loaded problem (load it again to repeat). */
  cold(
    problem: string,
    inputs: readonly TensorRef[],
    options: { timeoutMs?: number } = {},
  ): Promise<Cold> {
    const body = { problem, inputs: inputs.map(tensorRef) };
    return this.#request("cold", body, Cold, options.timeoutMs, problem);
  }

  /**
   * Ask the worker to exit (kill it if it does not) and release everything;
   * `now` kills it at once (Ctrl-C), without waiting for a request in progress.
   */
  async close(options: { now?: boolean } = {}): Promise<void> {
    if (options.now) this.#kill();
    else if (!this.#dead && !this.#closing) {
      this.#closing = true;
      await this.#request("shutdown", {}, Empty, 5_000).catch(() => {});
    }
    this.#closing = true;
    this.#fail(new WorkerError("closed", "the MLX worker was closed"));
    await this.#stdin.close().catch(() => {});
    const grace = setTimeout(() => this.#kill(), 2_000);
    await this.#child.status;
    clearTimeout(grace);
    await Promise.all(this.#readers);
    await removeScratch(this.#scratch);
  }

  async [Symbol.asyncDispose]() {
    await this.close();
  }

  // ---- the channel ----

  #request<T>(
    op: string,
    body: Record<string, unknown>,
    schema: z.ZodType<T>,
    timeoutMs = this.#timeoutMs,
    problem = "",
  ): Promise<T> {
    const what = problem ? `'${op}' of ${problem}` : `'${op}'`;
    const send = async (): Promise<T> => {
      if (this.#dead) throw this.#dead;
      const id = this.#nextId++;
      const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
        this.#pending = { id, what, resolve, reject };
      });
      const timer = setTimeout(() => {
        this.#fail(
          new WorkerError(
            "timeout",
            `the MLX worker did not answer ${what} within ${timeoutMs / 1000} s; it was stopped`,
            this.stderrTail(),
            "",
            what,
          ),
        );
        this.#kill();
      }, timeoutMs);
      try {
        // A write to a dead worker fails; the stdout reader then reports why it died.
        this.#stdin.write(encoder.encode(JSON.stringify({ id, op, ...body }) + "\n"))
          .catch(() => {});
        const raw = await reply;
        if (raw.ok === false) {
          const f = Failure.safeParse(raw);
          if (!f.success) throw this.#protocolError(`bad failure for ${what}: ${f.error}`);
          const where = problem ? `MLX ${op} of ${problem}: ` : "";
          throw new MlxError(f.data.kind, where + f.data.error, f.data.traceback, f.data.file);
        }
        const parsed = schema.safeParse(raw);
        if (!parsed.success) throw this.#protocolError(`bad answer to ${what}: ${parsed.error}`);
        return parsed.data;
      } finally {
        clearTimeout(timer);
        this.#pending = null;
      }
    };
    const result = this.#queue.then(send, send);
    this.#queue = result.catch(() => {});
    return result;
  }

  async #readStdout(stream: ReadableStream<Uint8Array>, stderrDone: Promise<void>) {
    try {
      for await (const line of readLines(stream, STDOUT_LINE_CHARS)) {
        if (line.trim()) this.#onLine(line);
      }
    } catch { /* a broken pipe ends the worker just as EOF does */ }
    const status = await this.#child.status;
    await within(stderrDone, 1_000); // its last words, usually the reason it died
    if (this.#closing) return this.#fail(new WorkerError("closed", "the MLX worker was closed"));
    const how = status.signal
      ? `was killed by ${status.signal}`
      : `exited with code ${status.code}`;
    const during = this.#pending?.what ?? "";
    const last = this.#stderr.filter((l) => l.trim()).at(-1);
    this.#fail(
      new WorkerError(
        "died",
        `the MLX worker (pid ${this.#child.pid}) ${how}${during ? ` during ${during}` : ""}${
          last ? `: ${printable(last.trim())}` : ""
        }`,
        this.stderrTail(),
        how,
        during,
      ),
    );
  }

  async #readStderr(stream: ReadableStream<Uint8Array>, onLine?: (line: string) => void) {
    try {
      for await (const line of readLines(stream, STDERR_LINE_CHARS)) {
        if (line.startsWith(SYNC_PREFIX)) {
          this.#syncs.get(line.slice(SYNC_PREFIX.length))?.();
          continue;
        }
        if (line.startsWith(TRACE_PREFIX)) this.#trace ??= line.slice(TRACE_PREFIX.length);
        this.#stderr.push(line);
        if (this.#stderr.length > STDERR_LINES) this.#stderr.shift();
        onLine?.(line);
      }
    } catch { /* the process is gone */ }
  }

  #onLine(line: string) {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      raw = undefined;
    }
    const envelope = Envelope.safeParse(raw);
    const pending = this.#pending;
    if (!envelope.success || !pending || envelope.data.id !== pending.id) {
      // Answers are strictly in order; anything else means the channel is corrupt.
      this.#fail(
        this.#protocolError(
          `unexpected line from the MLX worker: ${printable(line.slice(0, 200))}`,
        ),
      );
      this.#kill();
      return;
    }
    pending.resolve(raw as Record<string, unknown>);
  }

  #protocolError(message: string): WorkerError {
    return new WorkerError("protocol", message, this.stderrTail(), "", this.#pending?.what ?? "");
  }

  /** Mark the worker unusable (first reason wins) and fail the request in flight. */
  #fail(error: WorkerError) {
    this.#dead ??= error;
    this.#pending?.reject(this.#dead);
    this.#pending = null;
  }

  #kill() {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
  }
}

/**
 * Remove the scratch folder, whatever reference code left in it (a folder
 * it made unreadable included).
 */
async function removeScratch(dir: string) {
  try {
    await Deno.remove(dir, { recursive: true });
  } catch {
    const open = async (d: string) => {
      await Deno.chmod(d, 0o700).catch(() => {});
      for await (const e of Deno.readDir(d)) if (e.isDirectory) await open(join(d, e.name));
    };
    await open(dir).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Lines the worker writes to stderr about its own integrity (worker.py). */
const TRACE_PREFIX = "metalbench-worker-trace: ";
const SYNC_PREFIX = "metalbench-worker-sync: ";

/** Wait for `p`, but no longer than `ms`. */
async function within(p: Promise<unknown>, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
  clearTimeout(timer);
}

function tensorRef(t: TensorRef): TensorRef {
  return { path: t.path, dtype: t.dtype, shape: [...t.shape] };
}

const show = (dtype: string, shape: readonly number[]) => `${dtype}[${shape.join(",")}]`;

/** The registry's output against what the model produced; a 0-d result matches shape [1]. */
function checkOutput(problem: string, i: number, want: OutputSpec, got: ProducedTensor) {
  const shapeOk = !want.shape ||
    (want.shape.length === got.shape.length && want.shape.every((d, k) => d === got.shape[k])) ||
    (got.shape.length === 0 && want.shape.length === 1 && want.shape[0] === 1);
  const dtypeOk = !want.dtype || want.dtype === got.dtype;
  if (shapeOk && dtypeOk) return;
  const name = want.name ? ` '${want.name}'` : "";
  throw new MlxError(
    "mismatch",
    `MLX run of ${problem}: the reference's output ${i}${name} is ${show(got.dtype, got.shape)}; ` +
      `the registry says ${show(want.dtype ?? got.dtype, want.shape ?? got.shape)}`,
  );
}
