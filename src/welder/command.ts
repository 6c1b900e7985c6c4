/**
 * `metalbench welder <name> …` and `--polish`: checks before any work,
 * one weld, its one-line outcome and exit code, then (with --loop) Agent
 * Steel on the new kernel. Shared by `metalbench import` for its flags.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { defaultBackend } from "../backend/select.ts";
import {
  agentCommand,
  type AgentFlags,
  openAgentProvider,
  type ProviderFlags,
} from "../cli/agent_command.ts";
import { CliError, EXIT } from "../cli/exit_codes.ts";
import { errorToExit, printError } from "../cli/errors.ts";
import { ProviderError, TokenBudget, withBudget } from "../agent/providers/provider.ts";
import type { ChatProvider } from "../agent/providers/provider.ts";
import { KEY_VARIABLES } from "../agent/providers/command.ts";
import { listenForStop, STOP_SIGNALS } from "../agent/loop/signals.ts";
import { DEFAULT_REFERENCE_TIMEOUT_S } from "../bench/reference_mlx.ts";
import { loadRegistry } from "../registry/load.ts";
import type { ProblemSet } from "../registry/schema.ts";
import { chooseWorkspace, type Workspace } from "../registry/workspace.ts";
import { STAGE_NAMES, WeldFailure } from "./failure.ts";
import { registryFileOf } from "./staging.ts";
import { weld, type WeldOptions, type WeldResult } from "./weld.ts";

export interface WeldFlags extends ProviderFlags {
  retries?: number;
  loop?: true;
  maxRounds?: number;
  patience?: number;
  candidates?: number;
  backend?: "metal" | "sim";
  timeout?: number;
  referenceTimeout?: number;
  workspace?: string;
}

export interface WelderFlags extends WeldFlags {
  description?: string;
  reference?: string;
  set?: ProblemSet;
  polish?: true;
  json?: true;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The flags as `metalbench agent` takes them (its provider, its --loop). */
export function agentFlags(f: WeldFlags): AgentFlags {
  return {
    loop: true,
    resume: true,
    diagnosis: true,
    clock: "batched",
    maxRounds: f.maxRounds,
    patience: f.patience,
    candidates: f.candidates,
    provider: f.provider,
    model: f.model,
    baseUrl: f.baseUrl,
    apiKeyEnv: f.apiKeyEnv,
    command: f.command,
    maxTokens: f.maxTokens,
    maxTokensTotal: f.maxTokensTotal,
    llmTimeout: f.llmTimeout,
    llmRetries: f.llmRetries,
    stream: f.stream,
    backend: f.backend,
    timeout: f.timeout,
    referenceTimeout: f.referenceTimeout,
    workspace: f.workspace,
  };
}

/** A workspace the Welder may write into (not the read-only built-in suite). */
export function writableWorkspace(given?: string): Workspace {
  const ws = chooseWorkspace(given);
  if (ws.root !== ws.outputRoot) {
    throw new CliError(
      "the built-in suite is read-only: the Welder adds files to a workspace",
      EXIT.USAGE,
      "make one with `metalbench init <dir>` and pass --workspace <dir>",
    );
  }
  return ws;
}

/** Why `name` cannot be welded into `ws` (taken, or a file in the way), or null. */
export function nameTaken(ws: Workspace, name: string, set: ProblemSet): string | null {
  if (!NAME.test(name)) {
    return `'${name}' is not a problem name (letters, digits, _; not a digit first)`;
  }
  const registry = loadRegistry(ws);
  const other = registry.problems.get(name);
  if (other) return `'${name}' is already a problem (${other.registryFile})`;
  for (
    const f of [
      `references/${set}/${name}.py`,
      `kernels/${set}/${name}.metal`,
      `kernels/${set}/${name}`,
      registryFileOf(name),
    ]
  ) {
    if (existsSync(join(ws.root, f))) return `${join(ws.root, f)} already exists`;
  }
  return null;
}

/** Key values this process holds: cut from every file and line a weld writes. */
export function heldSecrets(apiKeyEnv?: string): string[] {
  const names = [...KEY_VARIABLES, ...(apiKeyEnv ? [apiKeyEnv] : [])];
  return names.map((n) => Deno.env.get(n)).filter((v): v is string => !!v && v.length >= 8);
}

/** The provider, with the run's token budget. */
export function weldProvider(f: WeldFlags): { provider: ChatProvider; budget: TokenBudget } {
  const budget = new TokenBudget(f.maxTokensTotal);
  return { provider: withBudget(openAgentProvider(f), budget), budget };
}

/** What a weld is given: one problem's own parts, and the rest from the flags. */
export function weldOptions(
  f: WeldFlags,
  problem: Pick<
    WeldOptions,
    "name" | "set" | "description" | "reference" | "workspace" | "provider" | "signal" | "log"
  >,
): WeldOptions {
  return {
    ...problem,
    backend: f.backend ?? defaultBackend(),
    maxTokens: f.maxTokens ?? 8192,
    attempts: (f.retries ?? 2) + 1,
    referenceTimeoutS: f.referenceTimeout ?? DEFAULT_REFERENCE_TIMEOUT_S,
    timeoutMs: f.timeout,
    secrets: heldSecrets(f.apiKeyEnv),
  };
}

/** The exit code and line of an error that ended a weld (the workspace is unchanged either way). */
export function weldError(name: string, e: unknown): number {
  if (e instanceof WeldFailure) {
    printError(`weld of ${name} failed at ${e.message} — the workspace is unchanged`);
    return EXIT.WELD_FAILED;
  }
  if (e instanceof ProviderError) {
    printError(`weld of ${name} stopped: ${e.message} — the workspace is unchanged`);
    return e.kind === "budget" ? EXIT.BUDGET_SPENT : EXIT.ENVIRONMENT;
  }
  return errorToExit(e);
}

export async function welderCommand(name: string, f: WelderFlags): Promise<number> {
  if (f.polish) {
    const { polishCommand } = await import("./polish.ts");
    return await polishCommand(name, f);
  }
  if (!f.reference || !f.description?.trim()) {
    throw new CliError(
      "a weld needs --description '<what it computes>' and --reference <pytorch_ref.py>",
      EXIT.USAGE,
    );
  }
  const reference = resolve(f.reference);
  if (!existsSync(reference)) throw new CliError(`no file ${reference}`, EXIT.USAGE);
  const ws = writableWorkspace(f.workspace);
  const set = f.set ?? "standard";
  const taken = nameTaken(ws, name, set);
  if (taken) throw new CliError(taken, EXIT.USAGE, "choose another name");
  const { provider } = weldProvider(f);

  using stop = listenForStop(() => {});
  let result: WeldResult;
  try {
    result = await weld(weldOptions(f, {
      name,
      set,
      description: f.description.trim(),
      reference,
      workspace: ws,
      provider,
      signal: stop.signal,
      log: f.json ? () => {} : (line) => console.error(`metalbench: ${name}: ${line}`),
    }));
  } catch (e) {
    if (stop.received) return STOP_SIGNALS[stop.received];
    return weldError(name, e);
  }
  const s = (ms: number) => (ms / 1000).toFixed(2);
  if (f.json) {
    console.log(JSON.stringify({ event: "welded", name, set, ...result }));
  } else {
    console.error(
      `metalbench: welded ${name} (${set}) in ${s(result.ms.total)} s — stage 0 ${
        s(result.ms.stage0)
      } s, stage 1 ${s(result.ms.stage1)} s, stage 2 ${s(result.ms.stage2)} s, of which the model ${
        s(result.ms.llm)
      } s: ${result.files.join(", ")}`,
    );
  }
  if (!f.loop) return EXIT.OK;
  return await agentCommand([name], agentFlags(f));
}

export { STAGE_NAMES };
