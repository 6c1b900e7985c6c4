/**
 * `metalbench import kernelbench <folder>`: one weld per problem file
 * (KernelBench's format: class Model, get_inputs, get_init_inputs).
 *
 * Resumable: each file's outcome is written to a state file under
 * .agent-steel/import/ (atomically, after every problem), and a rerun skips
 * what is imported, degenerate or failed for good (`--retry-failed` welds
 * the failed ones again). A failure of the model's service, a spent budget
 * or a signal stops the run and leaves the problem it was on to the next.
 * The whole run holds a lock on the state file, so two runs take turns.
 */
import { basename, join, resolve } from "node:path";
import { z } from "zod";
import { agentCommand } from "../cli/agent_command.ts";
import { CliError, EXIT } from "../cli/exit_codes.ts";
import { errorToExit, printError } from "../cli/errors.ts";
import { ProviderError } from "../agent/providers/provider.ts";
import type { ChatProvider } from "../agent/providers/provider.ts";
import { listenForStop, STOP_SIGNALS } from "../agent/loop/signals.ts";
import type { ProblemSet } from "../registry/schema.ts";
import { atomicWrite, lockPathFor, readJsonFile, withLock } from "../store/files.ts";
import { sha256Hex } from "../util/hash.ts";
import { oneLine, WeldFailure } from "./failure.ts";
import {
  agentFlags,
  nameTaken,
  type WeldFlags,
  weldOptions,
  weldProvider,
  writableWorkspace,
} from "./command.ts";
import { weld } from "./weld.ts";

export interface ImportFlags extends WeldFlags {
  only?: string;
  set?: ProblemSet;
  prefix?: string;
  retryFailed?: true;
  json?: true;
}

const Outcome = z.object({
  name: z.string(),
  status: z.enum(["imported", "degenerate", "failed", "exists"]),
  stage: z.number().int().min(0).max(2).nullable(),
  reason: z.string(),
  /** Welding it again would fail the same way (not the network's or the budget's doing). */
  final: z.boolean(),
  sha256: z.string(),
  time: z.string(),
});
type Outcome = z.infer<typeof Outcome>;

const State = z.object({
  version: z.literal(1),
  source: z.literal("kernelbench"),
  folder: z.string(),
  problems: z.record(z.string(), Outcome),
});
type State = z.infer<typeof State>;

/** "1_*,23_*" → a test on file names. */
export function globFilter(only?: string): (file: string) => boolean {
  if (!only?.trim()) return () => true;
  const res = only.split(",").map((g) => g.trim()).filter(Boolean).map((g) =>
    new RegExp(
      `^${g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replaceAll("*", ".*").replaceAll("?", ".")}$`,
    )
  );
  return (file) => res.some((r) => r.test(file) || r.test(file.replace(/\.py$/, "")));
}

/** "23_Softmax.py" → "kb_23_softmax": a registry name. */
export function problemName(file: string, prefix = "kb_"): string {
  const stem = file.replace(/\.py$/, "").toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(
    /^_+|_+$/g,
    "",
  );
  const name = `${prefix}${stem}`;
  return /^[A-Za-z_]/.test(name) ? name : `kb_${name}`;
}

/** KernelBench's levels: single ops, fused ops, model blocks. */
export function setOf(folder: string): ProblemSet {
  const m = /level\s*_?(\d)/i.exec(basename(resolve(folder)));
  if (m?.[1] === "1") return "common";
  if (m && Number(m[1]) >= 3) return "full";
  return "standard";
}

/** Problem files in KernelBench's order: by their leading number, then by name. */
async function problemFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".py") && !e.name.startsWith("_")) files.push(e.name);
  }
  const num = (f: string) => Number(/^(\d+)/.exec(f)?.[1] ?? Infinity);
  return files.sort((a, b) => num(a) - num(b) || a.localeCompare(b));
}

export interface Summary {
  imported: string[];
  degenerate: { file: string; reason: string }[];
  failed: { file: string; stage: number | null; reason: string }[];
  exists: string[];
  /** Skipped because an earlier run settled them. */
  resumed: number;
  stopped: string | null;
}

export async function importCommand(source: string, folder: string, f: ImportFlags) {
  if (source !== "kernelbench") {
    throw new CliError(
      `unknown source '${source}'`,
      EXIT.USAGE,
      "metalbench import kernelbench <folder>",
    );
  }
  const dir = resolve(folder);
  let files: string[];
  try {
    files = (await problemFiles(dir)).filter(globFilter(f.only));
  } catch (e) {
    throw new CliError(`cannot read ${dir}: ${(e as Error).message}`, EXIT.USAGE);
  }
  if (files.length === 0) {
    throw new CliError(
      `no problem files in ${dir}${f.only ? ` matching ${f.only}` : ""}`,
      EXIT.USAGE,
    );
  }
  const ws = writableWorkspace(f.workspace);
  const set = f.set ?? setOf(dir);
  const statePath = join(
    ws.root,
    ".agent-steel",
    "import",
    `kernelbench-${(await sha256Hex(dir)).slice(0, 12)}.json`,
  );
  return await withLock(lockPathFor(statePath), () => run(files, dir, set, statePath, ws, f));
}

async function run(
  files: string[],
  dir: string,
  set: ProblemSet,
  statePath: string,
  ws: ReturnType<typeof writableWorkspace>,
  f: ImportFlags,
): Promise<number> {
  const state: State = (await readJsonFile(
    statePath,
    State,
    "import state",
    (m) => new CliError(m, EXIT.DATA),
  )) ?? { version: 1, source: "kernelbench", folder: dir, problems: {} };
  const summary: Summary = {
    imported: [],
    degenerate: [],
    failed: [],
    exists: [],
    resumed: 0,
    stopped: null,
  };
  const emit = (o: Record<string, unknown>) => f.json && console.log(JSON.stringify(o));
  const say = (line: string) => !f.json && console.error(`metalbench: ${line}`);
  let provider: ChatProvider | null = null;
  let exit: number = EXIT.OK;
  using stop = listenForStop(() => {});

  for (const file of files) {
    const path = join(dir, file);
    const sha256 = await sha256Hex(await Deno.readTextFile(path));
    const name = problemName(file, f.prefix);
    const before = state.problems[file];
    const settled = before && before.sha256 === sha256 &&
      (before.status !== "failed" || (before.final && !f.retryFailed));
    let outcome: Outcome;
    if (settled) {
      summary.resumed++;
      outcome = before;
    } else {
      const t0 = performance.now();
      const base = { name, sha256, stage: null, final: true };
      const taken = nameTaken(ws, name, set);
      if (taken) {
        outcome = { ...base, status: "exists", reason: taken, time: new Date().toISOString() };
      } else {
        say(`${file} → ${name}: welding`);
        try {
          provider ??= weldProvider(f).provider;
          const r = await weld(weldOptions(f, {
            name,
            set,
            description: "",
            reference: path,
            workspace: ws,
            provider,
            signal: stop.signal,
            log: (line) => say(`${name}: ${line}`),
          }));
          outcome = {
            ...base,
            status: "imported",
            reason: `welded in ${(r.ms.total / 1000).toFixed(1)} s: ${r.files.join(", ")}`,
            time: new Date().toISOString(),
          };
        } catch (e) {
          if (stop.received) {
            summary.stopped = `interrupted (${stop.received}) during ${file}`;
            exit = STOP_SIGNALS[stop.received];
            break;
          }
          if (e instanceof WeldFailure) {
            outcome = {
              ...base,
              status: e.kind === "degenerate" ? "degenerate" : "failed",
              stage: e.stage,
              reason: oneLine(e.reason),
              final: e.final,
              time: new Date().toISOString(),
            };
          } else if (e instanceof ProviderError) {
            summary.stopped = `the model's service: ${oneLine(e.message)} (during ${file})`;
            exit = e.kind === "budget" ? EXIT.BUDGET_SPENT : EXIT.ENVIRONMENT;
            break;
          } else {
            exit = errorToExit(e); // the environment (no PyTorch, no simulator): nothing else would weld
            summary.stopped = `stopped during ${file}`;
            break;
          }
        }
      }
      state.problems[file] = outcome;
      await atomicWrite(statePath, JSON.stringify(state, null, 1) + "\n");
      emit({ event: "problem", file, ...outcome, ms: Math.round(performance.now() - t0) });
      say(
        `${file} → ${name}: ${outcome.status}${
          outcome.stage !== null ? ` at stage ${outcome.stage}` : ""
        }${outcome.status === "imported" ? "" : `: ${outcome.reason}`}`,
      );
    }
    if (outcome.status === "imported") summary.imported.push(name);
    else if (outcome.status === "degenerate") {
      summary.degenerate.push({ file, reason: outcome.reason });
    } else if (outcome.status === "exists") summary.exists.push(name);
    else summary.failed.push({ file, stage: outcome.stage, reason: outcome.reason });
  }

  emit({ event: "summary", ...summary });
  if (!f.json) printSummary(summary, files.length);
  if (exit === EXIT.OK && summary.failed.length) exit = EXIT.WELD_FAILED;
  if (f.loop && summary.imported.length && !summary.stopped) {
    const code = await agentCommand(summary.imported, agentFlags(f));
    if (exit === EXIT.OK) exit = code;
  }
  if (summary.stopped && exit === EXIT.OK) exit = EXIT.INTERNAL;
  return exit;
}

function printSummary(s: Summary, total: number) {
  const line = (t: string) => console.error(`metalbench: ${t}`);
  line(
    `import: ${s.imported.length} imported, ${s.degenerate.length} degenerate (skipped), ${s.failed.length} failed, ${s.exists.length} already present, of ${total}${
      s.resumed ? ` (${s.resumed} settled by an earlier run)` : ""
    }`,
  );
  for (const stage of [0, 1, 2, null]) {
    const at = s.failed.filter((x) => x.stage === stage);
    if (!at.length) continue;
    line(`  failed at ${stage === null ? "no stage" : `stage ${stage}`}: ${at.length}`);
    for (const x of at) line(`    ${x.file}: ${x.reason}`);
  }
  for (const d of s.degenerate) line(`  degenerate: ${d.file}: ${d.reason}`);
  if (s.stopped) printError(`import stopped: ${s.stopped} — run the same command again to go on`);
}
