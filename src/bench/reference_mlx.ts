/**
 * The benchmark's reference side over the MLX worker. It lives in bench/
 * because it is the benchmark's view of the worker: every failure of a
 * reference — it raised, it hung past the time limit, it crashed the worker
 * — becomes a ReferenceProblemError naming the reference file, so the run
 * records it and goes on; a worker that died is replaced by a fresh one
 * when the next problem loads. Only a worker that cannot start at all
 * (Python/MLX missing) ends the session.
 *
 * Reference code is untrusted: one reference could leave a thread behind or
 * patch MLX or the clock, and so change the outputs or the times of the
 * problems after it. A worker serves the next problem only when its
 * integrity check finds no such trace (about 1 ms); otherwise, and for every
 * problem with --isolate-references, the next problem gets a fresh worker
 * (about 0.1 s to start, overlapped with the next problem's set-up by
 * prewarm()).
 */
import { isAbsolute, relative } from "node:path";
import {
  MlxError,
  MlxWorker,
  printable,
  type StartOptions,
  WorkerError,
} from "../reference/client.ts";
import {
  ReferenceProblemError,
  type ReferenceSide,
  type TensorFile,
  type TimeOptions,
} from "./reference_side.ts";

/** The default of --reference-timeout: far beyond what any reference needs at the test size. */
export const DEFAULT_REFERENCE_TIMEOUT_S = 120;

export interface MlxReferenceOptions {
  /** Time limit of one load, run or time request, in ms. */
  timeoutMs?: number;
  /** A fresh worker for every problem, whatever the integrity check says. */
  isolate?: boolean;
  /** Folders the worker may read: the references' and the input files'. */
  readable?: readonly string[];
  /** Passed on to MlxWorker.start (tests: the interpreter). */
  python?: StartOptions["python"];
}

/** A path as a user typed it: relative to the current folder when inside it. */
function shown(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : path;
}

/** What the worker said, as a clause about the reference: one printable line, not too long. */
function clause(e: MlxError, op: string, problem: string, file: string): string {
  let detail = e.message.replace(`MLX ${op} of ${problem}: `, "").replaceAll(file, shown(file));
  if (detail.startsWith(shown(file))) {
    detail = detail.slice(shown(file).length).replace(/^:? */, "");
  }
  detail = printable(detail);
  if (detail.length > 300) detail = `${detail.slice(0, 300)} …`;
  switch (e.kind) {
    case "load":
      return `did not load: ${detail}`;
    case "model":
      return `raised ${detail} during '${op}'`;
    case "output":
    case "mismatch":
      return `returned unusable outputs: ${detail}`;
    default:
      return `could not ${op}: ${detail}`;
  }
}

export class MlxReference implements ReferenceSide {
  #worker: MlxWorker;
  /** The worker died, or reference code has run in it: the next problem needs a fresh one. */
  #dead = false;
  #used = false;
  /** The next problem's worker, when prewarm() started one. */
  #spare: Promise<MlxWorker | null> | null = null;
  /** Workers started after the first (for tests and reports). */
  restarts = 0;
  readonly #paths = new Map<string, string>();

  private constructor(worker: MlxWorker, readonly options: MlxReferenceOptions) {
    this.#worker = worker;
  }

  static async start(options: MlxReferenceOptions = {}): Promise<MlxReference> {
    return new MlxReference(await MlxWorker.start(MlxReference.#startOptions(options)), options);
  }

  static #startOptions(o: MlxReferenceOptions): StartOptions {
    return { timeoutMs: o.timeoutMs, readable: o.readable, python: o.python };
  }

  get worker(): MlxWorker {
    return this.#worker;
  }

  get device(): string {
    const h = this.#worker.hello;
    return `MLX ${h.mlx} (${h.device})`;
  }

  get pid(): number {
    return this.#worker.hello.pid;
  }

  get timeoutS(): number {
    return (this.options.timeoutMs ?? DEFAULT_REFERENCE_TIMEOUT_S * 1000) / 1000;
  }

  /**
   * Whether the worker may serve the next problem: never with
   * --isolate-references; otherwise when the references it ran left no trace
   * (see worker.py, "integrity"). A reference that sets out to hide its
   * traces in its own process can; --isolate-references is the strict mode.
   */
  async #reusable(): Promise<boolean> {
    if (this.options.isolate) return false;
    const r = await this.#worker.integrity().catch(() => null);
    if (r && !r.clean) this.lastRestartReason = r.why.join("; ");
    return r?.clean ?? false;
  }

  /** Why the last fresh worker was started (a trace the previous reference left). */
  lastRestartReason = "";

  /** The worker, started afresh when the last one died, or ran a reference that left traces. */
  async #live(fresh = false): Promise<MlxWorker> {
    if (!this.#dead && !(fresh && this.#used)) return this.#worker;
    // A spare exists only when prewarm() found this worker unfit to go on.
    const spare = await this.#spare;
    this.#spare = null;
    if (!spare && !this.#dead && await this.#reusable()) return this.#worker;
    await this.#worker.close({ now: true }); // nothing in it is worth a graceful exit
    this.#worker = spare ?? await MlxWorker.start(MlxReference.#startOptions(this.options));
    this.#dead = this.#used = false;
    this.restarts++;
    return this.#worker;
  }

  async #call<T>(op: string, problem: string, fn: (w: MlxWorker) => Promise<T>): Promise<T> {
    const worker = await this.#live(op === "load");
    this.#used = true;
    try {
      return await fn(worker);
    } catch (e) {
      throw this.#named(e, op, problem);
    }
  }

  /** A failure of the request as the reference's own, named after its file. */
  #named(e: unknown, op: string, problem: string): unknown {
    const file = this.#paths.get(problem) ?? "";
    const ref = `the MLX reference ${file ? shown(file) : problem}`;
    if (e instanceof MlxError) {
      return new ReferenceProblemError(
        `${ref} ${clause(e, op, problem, file)} — fix: correct the reference`,
        "raised",
        file,
      );
    }
    if (!(e instanceof WorkerError) || e.reason === "closed") return e;
    this.#dead = true;
    if (e.reason === "timeout") {
      return new ReferenceProblemError(
        `${ref} did not return within ${this.timeoutS} s ('${op}'); its worker was stopped — ` +
          "fix: make it return sooner, or raise --reference-timeout",
        "hung",
        file,
      );
    }
    const how = e.reason === "died"
      ? `crashed the MLX worker (it ${e.how}) during '${op}'`
      : `broke the MLX worker's protocol during '${op}'`;
    return new ReferenceProblemError(
      `${ref} ${how} — fix: correct the reference (the next problem gets a fresh worker)`,
      "crashed",
      file,
    );
  }

  async load(problem: string, path: string, init: Record<string, number | string | boolean>) {
    this.#paths.set(problem, path);
    await this.#call("load", problem, (w) => w.load(problem, path, init));
  }

  run(problem: string, inputs: TensorFile[], outputs: (TensorFile & { name: string })[]) {
    return this.#call("run", problem, (w) => w.run(problem, inputs, outputs));
  }

  runs(
    problem: string,
    sets: { inputs: TensorFile[]; outputs: (TensorFile & { name: string })[] }[],
  ) {
    return this.#call("run", problem, (w) => w.runs(problem, sets));
  }

  async time(problem: string, inputs: TensorFile[], opts: TimeOptions) {
    const t = await this.#call(
      "time",
      problem,
      (w) =>
        w.time(
          problem,
          inputs,
          opts.mode === "batched"
            ? { mode: "batched", batch: opts.batch, warmup: opts.warmup, samples: opts.samples }
            : { mode: "per-launch", warmup: opts.warmup, samples: opts.samples },
        ),
    );
    return { samplesNs: t.samplesNs };
  }

  /**
   * Start the next problem's worker now, between problems, so that its
   * start-up overlaps the next problem's inputs and compile. Call it only
   * when another problem follows, and never while timing.
   */
  prewarm() {
    if (this.#spare || !this.#used) return;
    // A spare that fails to start is no loss: #live starts one the usual way.
    this.#spare = (async () => {
      if (!this.#dead && await this.#reusable()) return null;
      return await MlxWorker.start(MlxReference.#startOptions(this.options)).catch(() => null);
    })();
  }

  async cold(problem: string, inputs: TensorFile[]) {
    return (await this.#call("cold", problem, (w) => w.cold(problem, inputs))).ns;
  }

  /** Stop the worker (and a spare); `now` kills them without waiting (Ctrl-C). */
  async close(now = false) {
    const spare = this.#spare;
    this.#spare = null;
    await Promise.all([this.#worker.close({ now }), spare?.then((w) => w?.close({ now: true }))]);
  }
}
