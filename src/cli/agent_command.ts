/**
 * `metalbench agent …`: Agent Steel's commands — the loop over one or more
 * kernels, `history` (a lineage as a table or JSON lines) and `plot` (gain
 * curves). Parsing and wiring only: the loop is src/agent/loop/.
 */
import { join } from "node:path";
import { defaultBackend } from "../backend/select.ts";
import { DeviceLostError } from "../bench/session_run.ts";
import { loadRegistry, type Problem } from "../registry/load.ts";
import { chooseWorkspace, type Workspace } from "../registry/workspace.ts";
import {
  openProvider,
  PROVIDER_NAMES,
  ProviderError,
  type ProviderName,
  type StreamMode,
  TokenBudget,
  withBudget,
} from "../agent/providers/provider.ts";
import { KEY_VARIABLES } from "../agent/providers/command.ts";
import { redactor } from "../agent/providers/errors.ts";
import { AttemptDB } from "../agent/attempts/db.ts";
import { historyJsonLines, renderHistory } from "../agent/attempts/history_view.ts";
import { plotCurves, svgToPng } from "../agent/plot.ts";
import { EventSink, type KernelSummary, newLogPath } from "../agent/loop/events.ts";
import { DEFAULT_POLICY, type LoopPolicy, type StopReason } from "../agent/loop/policy.ts";
import { runAgent } from "../agent/loop/run.ts";
import type { LineageResult } from "../agent/loop/lineage.ts";
import { listenForStop, STOP_SIGNALS } from "../agent/loop/signals.ts";
import { agentSteps } from "../agent/loop/agent_steps.ts";
import { CliError, EXIT } from "./exit_codes.ts";
import { errorToExit, printError } from "./errors.ts";
import { closest } from "fastest-levenshtein";
import { PlotError } from "../agent/plot.ts";
import { LineageNameError } from "../agent/attempts/paths.ts";
import type { SizeName } from "../registry/problem.ts";
import { problemsAtSize } from "./sizes.ts";
import { RUN_DEFAULTS } from "../bench/harness.ts";

/** The model asked for when --model is not given (override with --model or METALBENCH_MODEL). */
export const DEFAULT_MODELS: Partial<Record<ProviderName, string>> = {
  openai: "gpt-5",
  anthropic: "claude-sonnet-4-5",
};

/** The LLM provider's flags, shared by `metalbench agent`, `welder` and `import`. */
export interface ProviderFlags {
  provider?: string;
  model?: string;
  baseUrl?: string;
  apiKeyEnv?: string;
  command?: string;
  maxTokens?: number;
  maxTokensTotal?: number;
  llmTimeout?: number;
  llmRetries?: number;
  stream?: StreamMode;
}

export interface AgentFlags extends ProviderFlags {
  loop?: true;
  maxRounds?: number;
  patience?: number;
  candidates?: number;
  retries?: number;
  parallel?: number;
  diagnosis: boolean;
  resume?: true;
  rebaseline?: true;
  wait?: true;
  json?: true;
  backend?: "metal" | "sim";
  size?: SizeName;
  warmup?: number;
  iters?: number;
  batch?: number;
  clock: "batched" | "per-launch";
  timeout?: number;
  referenceTimeout?: number;
  fastMath?: true;
  workspace?: string;
}

/** The .agent-steel folder of a workspace (beside its session.json). */
export function agentRoot(ws: Workspace): string {
  return join(ws.outputRoot, ".agent-steel");
}

/** "relu,softmax gelu" → ["relu", "softmax", "gelu"]. */
function kernelNames(args: string[]): string[] {
  return [...new Set(args.flatMap((a) => a.split(",")).map((s) => s.trim()).filter(Boolean))];
}

/** The values of every variable that may hold a key: cut from everything the run writes. */
function heldSecrets(apiKeyEnv?: string): string[] {
  const names = [...KEY_VARIABLES, ...(apiKeyEnv ? [apiKeyEnv] : [])];
  return names.map((n) => Deno.env.get(n)).filter((v): v is string => !!v && v.length >= 8);
}

function policyOf(f: AgentFlags): LoopPolicy {
  return {
    maxRounds: f.maxRounds ?? (f.loop ? DEFAULT_POLICY.maxRounds : 1),
    patience: f.patience ?? DEFAULT_POLICY.patience,
    candidates: f.candidates ?? DEFAULT_POLICY.candidates,
    retries: f.retries ?? DEFAULT_POLICY.retries,
    parallel: f.parallel ?? DEFAULT_POLICY.parallel,
    diagnosis: f.diagnosis,
    maxTokens: f.maxTokens ?? DEFAULT_POLICY.maxTokens,
    maxTokensTotal: f.maxTokensTotal,
  };
}

/** Exit codes, most severe first: a run of several kernels exits with the first that applies. */
const SEVERITY: number[] = [
  EXIT.INTERRUPTED,
  EXIT.TERMINATED,
  EXIT.HANGUP,
  EXIT.INTERNAL,
  EXIT.ENVIRONMENT,
  EXIT.REFERENCE_FAILED,
  EXIT.DEVICE_LOST,
  EXIT.DATA,
  EXIT.USAGE,
  EXIT.LINEAGE_BUSY,
  EXIT.KERNEL_FAILED,
  EXIT.BUDGET_SPENT,
  EXIT.OK,
];

const STOP_EXIT: Record<Exclude<StopReason, "interrupted" | "error">, number> = {
  "max-rounds": EXIT.OK,
  patience: EXIT.OK,
  budget: EXIT.BUDGET_SPENT,
  usage: EXIT.USAGE,
  "kernel-file-changed": EXIT.DATA,
  "incorrect-baseline": EXIT.KERNEL_FAILED,
  provider: EXIT.ENVIRONMENT,
};

function exitOf(r: LineageResult, signalCode: number): number {
  if (r.stop === "interrupted") return signalCode;
  if (r.stop === "error") {
    if (r.error instanceof ProviderError) return EXIT.ENVIRONMENT;
    if (r.error instanceof DeviceLostError) {
      printError(
        r.error.message,
        `run it again in a new process: metalbench agent ${r.kernel} --resume`,
      );
      return EXIT.DEVICE_LOST;
    }
    return errorToExit(r.error); // prints its one line (and a trace for a bug)
  }
  return STOP_EXIT[r.stop];
}

function worst(codes: number[]): number {
  return SEVERITY.find((c) => codes.includes(c)) ?? Math.max(EXIT.OK, ...codes);
}

export async function agentCommand(args: string[], f: AgentFlags): Promise<number> {
  const names = kernelNames(args);
  if (names.length === 0) {
    throw new CliError(
      "name a kernel to optimize, e.g. metalbench agent relu --loop (list them with: metalbench list)",
      EXIT.USAGE,
    );
  }
  if (f.resume && f.rebaseline) {
    throw new CliError("--resume and --rebaseline exclude each other", EXIT.USAGE);
  }
  const workspace = chooseWorkspace(f.workspace);
  if (workspace.root !== workspace.outputRoot) {
    throw new CliError(
      "the built-in suite is read-only: Agent Steel rewrites kernel files",
      EXIT.USAGE,
      "copy it into a workspace with `metalbench init <dir>` and run the agent there",
    );
  }
  const registry = loadRegistry(workspace);
  const problems = problemsAtSize(
    names.map((n) => findProblem(registry.problems, n)),
    f.size ?? RUN_DEFAULTS[f.backend ?? defaultBackend()].size,
    true,
    () => {},
  );
  const policy = policyOf(f);
  const provider = openAgentProvider(f);
  const budget = new TokenBudget(policy.maxTokensTotal);
  const secrets = heldSecrets(f.apiKeyEnv);
  const root = agentRoot(workspace);
  const log = await newLogPath(root);
  const sink = new EventSink({ json: !!f.json, logPath: log, redact: redactor(secrets) });
  const backend = f.backend ?? defaultBackend();

  using stop = listenForStop((sig) =>
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        `\nmetalbench: ${sig}: stopping at the next step (again to quit at once)\n`,
      ),
    )
  );
  const signalCode = () => (stop.received ? STOP_SIGNALS[stop.received] : EXIT.INTERRUPTED);
  sink.emit({
    event: "start",
    kernels: problems.map((p) => p.name),
    provider: provider.name,
    model: provider.model,
    backend,
    policy,
    log,
  });
  let outcome;
  try {
    outcome = await runAgent({
      problems,
      workspace,
      root,
      backend,
      policy,
      provider: withBudget(provider, budget),
      budget,
      bench: {
        size: f.size,
        warmup: f.warmup,
        iters: f.iters,
        batch: f.batch,
        clock: f.clock,
        timeoutMs: f.timeout,
        referenceTimeoutS: f.referenceTimeout,
        fastMath: !!f.fastMath,
      },
      resume: !!f.resume,
      rebaseline: !!f.rebaseline,
      wait: !!f.wait,
      signal: stop.signal,
      sink,
      secrets,
      makeSteps: agentSteps,
    });
  } catch (e) {
    if (stop.signal.aborted) return done(sink, signalCode(), [], budget);
    return done(sink, errorToExit(e), [], budget); // the harness could not open: one line, then done
  }
  if (outcome.kind === "busy") {
    printError(outcome.error.message);
    return done(sink, EXIT.LINEAGE_BUSY, [], budget);
  }
  if (outcome.kind === "forced") return done(sink, signalCode(), [], budget);
  const code = worst(outcome.results.map((r) => exitOf(r, signalCode())));
  return done(sink, code, outcome.results, budget);
}

function done(sink: EventSink, exitCode: number, results: LineageResult[], budget: TokenBudget) {
  const kernels: KernelSummary[] = results.map(({ error: _e, ...k }) => k);
  sink.emit({ event: "done", exitCode, kernels, tokensSpent: budget.spent });
  return exitCode;
}

function findProblem(problems: Map<string, Problem>, name: string): Problem {
  const p = problems.get(name);
  if (p) return p;
  const near = problems.size ? closest(name, [...problems.keys()]) : undefined;
  throw new CliError(
    `unknown kernel '${name}'${
      near ? `; did you mean '${near}'?` : ""
    } (metalbench list shows all)`,
    EXIT.USAGE,
  );
}

export function openAgentProvider(f: ProviderFlags) {
  const name = (f.provider ?? Deno.env.get("METALBENCH_PROVIDER") ?? "openai") as ProviderName;
  if (!PROVIDER_NAMES.includes(name)) {
    throw new CliError(
      `unknown provider '${name.slice(0, 40)}'`,
      EXIT.USAGE,
      `pass --provider ${PROVIDER_NAMES.join("|")}`,
    );
  }
  const model = f.model ?? Deno.env.get("METALBENCH_MODEL") ?? DEFAULT_MODELS[name] ?? "";
  try {
    return openProvider({
      provider: name,
      model,
      baseUrl: f.baseUrl,
      apiKeyEnv: f.apiKeyEnv,
      command: f.command,
      timeoutMs: f.llmTimeout === undefined ? undefined : f.llmTimeout * 1000,
      maxRetries: f.llmRetries,
      stream: f.stream,
    });
  } catch (e) {
    if (!(e instanceof ProviderError)) throw e;
    // A missing key is the environment's; any other bad setting is the command line's.
    throw new CliError(e.message, /is not set/.test(e.message) ? EXIT.ENVIRONMENT : EXIT.USAGE);
  }
}

/** The lineages of `kernel` under the .agent-steel folder: their buckets. */
async function bucketsOf(root: string, kernel: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(join(root, "history"))) {
      const m = /^(.+)__(.+)\.jsonl$/.exec(e.name);
      if (e.isFile && m && m[1] === kernel) out.push(m[2]);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort();
}

/** The one lineage of `kernel` to show: --bucket, or the only one there is. */
async function lineageOf(root: string, kernel: string, bucket?: string): Promise<AttemptDB> {
  if (bucket) {
    try {
      return new AttemptDB(root, kernel, bucket);
    } catch (e) {
      if (e instanceof LineageNameError) throw new CliError(e.message, EXIT.USAGE);
      throw e;
    }
  }
  const buckets = await bucketsOf(root, kernel);
  if (buckets.length === 1) return new AttemptDB(root, kernel, buckets[0]);
  if (buckets.length === 0) {
    throw new CliError(
      `no attempts recorded for ${kernel} in ${root}`,
      EXIT.USAGE,
      `run: metalbench agent ${kernel} --loop`,
    );
  }
  throw new CliError(
    `${kernel} has lineages on ${buckets.join(", ")}`,
    EXIT.USAGE,
    `pass --bucket ${buckets[0]} (or another)`,
  );
}

/** Read a lineage, printing its read warnings (torn lines) on stderr. */
async function readLineage(db: AttemptDB) {
  const read = await db.read();
  for (const w of read.warnings) console.error(`metalbench: warning: ${w}`);
  return read.entries;
}

export async function historyCommand(
  kernel: string,
  f: { json?: true; bucket?: string; workspace?: string },
): Promise<number> {
  const root = agentRoot(chooseWorkspace(f.workspace));
  const entries = await readLineage(await lineageOf(root, kernel, f.bucket));
  Deno.stdout.writeSync(
    new TextEncoder().encode(f.json ? historyJsonLines(entries) : renderHistory(entries)),
  );
  return EXIT.OK;
}

export async function plotCommand(
  args: string[],
  f: { output: string; bucket?: string; workspace?: string },
): Promise<number> {
  const names = kernelNames(args);
  if (names.length === 0) throw new CliError("name the kernels to plot", EXIT.USAGE);
  const lower = f.output.toLowerCase();
  if (!lower.endsWith(".svg") && !lower.endsWith(".png")) {
    throw new CliError(`-o ${f.output}: write a .svg or a .png`, EXIT.USAGE);
  }
  const root = agentRoot(chooseWorkspace(f.workspace));
  const lineages = [];
  for (const kernel of names) {
    lineages.push({ kernel, entries: await readLineage(await lineageOf(root, kernel, f.bucket)) });
  }
  const svg = plotCurves(lineages);
  try {
    if (lower.endsWith(".svg")) await Deno.writeTextFile(f.output, svg);
    else await svgToPng(svg, f.output);
  } catch (e) {
    if (e instanceof PlotError) throw new CliError(e.message, EXIT.ENVIRONMENT);
    throw e;
  }
  console.error(`metalbench: wrote ${f.output}`);
  return EXIT.OK;
}
