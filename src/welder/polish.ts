/**
 * `metalbench welder <name> --polish`: the model tidies a kernel for review
 * (comments that say why, names), the harness puts the result through the
 * whole correctness protocol, and only a correct one replaces the kernel
 * file (atomically). It becomes the lineage's new baseline, so Agent Steel
 * continues from the file as it is; then the docs are regenerated.
 */
import { dirname, join } from "node:path";
import { defaultBackend } from "../backend/select.ts";
import { Harness, sourceFromFile } from "../bench/harness.ts";
import { DEFAULT_REFERENCE_TIMEOUT_S } from "../bench/reference_mlx.ts";
import { docsCommand } from "../cli/docs_command.ts";
import { CliError, EXIT } from "../cli/exit_codes.ts";
import { printError } from "../cli/errors.ts";
import { fenced } from "../agent/prompts.ts";
import { loadPrompts, systemPrompt } from "../agent/prompts.ts";
import { functionNamesOf, registryEntryText } from "../agent/optimizer/context.ts";
import { benchOf } from "../agent/loop/agent_steps.ts";
import { replaceKernelFile } from "../agent/loop/kernel_file.ts";
import { loadRegistry, resolveKernelSource } from "../registry/load.ts";
import type { RunRecord } from "../store/schema.ts";
import { converse } from "./converse.ts";
import { WeldFailure } from "./failure.ts";
import { fillWelderPrompt } from "./prompts.ts";
import { WeldRecorder } from "./record.ts";
import { parseKernelReply } from "./reply.ts";
import { benchmarkKernel } from "./stage2.ts";
import {
  heldSecrets,
  type WelderFlags,
  weldError,
  weldProvider,
  writableWorkspace,
} from "./command.ts";

export async function polishCommand(name: string, f: WelderFlags): Promise<number> {
  const ws = writableWorkspace(f.workspace);
  const problem = loadRegistry(ws).problems.get(name);
  if (!problem) throw new CliError(`unknown problem '${name}'`, EXIT.USAGE, "metalbench list");
  const backend = f.backend ?? defaultBackend();
  const { provider } = weldProvider(f);
  const secrets = heldSecrets(f.apiKeyEnv);
  const harness = await Harness.open({
    mode: "paired",
    backend,
    timeoutMs: f.timeout,
    referenceTimeoutS: f.referenceTimeout ?? DEFAULT_REFERENCE_TIMEOUT_S,
    referenceDirs: [dirname(problem.referencePath)],
    isolateReferences: true,
  });
  const staged = join(
    ws.root,
    ".agent-steel",
    "staging",
    `polish-${name}-${crypto.randomUUID().slice(0, 8)}.metal`,
  );
  try {
    const current = resolveKernelSource(problem, harness.backend!.chip?.variant);
    const recorder = new WeldRecorder(
      join(ws.root, ".agent-steel"),
      name,
      harness.backend!.bucket,
      provider,
      secrets,
    );
    const round = (await recorder.db.lastRound()) + 1;
    const size = backend === "sim" ? "test" : "bench";
    await Deno.mkdir(dirname(staged), { recursive: true });
    const polished = await converse<{ source: string; record: RunRecord }>({
      stage: 2,
      provider,
      system: systemPrompt(await loadPrompts(ws.root), {
        kernel: name,
        functionNames: functionNamesOf(problem),
        simulated: backend === "sim",
        chip: harness.backend!.chip?.name ?? null,
      }),
      prompt: await fillWelderPrompt("polish", ws.root, {
        name,
        description: problem.description,
        registry_entry: fenced(registryEntryText(problem, size), "json"),
        source: fenced(current.text, "metal"),
      }),
      purpose: "welder-polish",
      maxTokens: f.maxTokens ?? 8192,
      attempts: (f.retries ?? 2) + 1,
      async check(reply) {
        const parsed = parseKernelReply(reply);
        if (!parsed.ok) {
          return { ok: false, verdict: "rejected", reason: parsed.reason, feedback: parsed.reason };
        }
        await Deno.writeTextFile(staged, parsed.value);
        const { record, failure } = await benchmarkKernel(
          harness,
          problem,
          sourceFromFile(staged, "candidate"),
          backend,
        );
        if (failure) return failure;
        return {
          ok: true,
          verdict: "baseline",
          reason: "polished for review; passed the whole correctness protocol again",
          value: { source: parsed.value, record },
        };
      },
      async record(turn) {
        const parsed = parseKernelReply(turn.reply);
        const record = turn.checked.ok ? turn.checked.value.record : null;
        await recorder.record({
          round,
          candidate: 0,
          retry: turn.retry,
          technique: "welder polish: comments and names for review",
          source: parsed.ok ? parsed.value : turn.reply,
          verdict: turn.checked.verdict,
          reason: turn.checked.reason,
          bench: record ? benchOf(record) : null,
          correctness: record
            ? { status: record.correctness.status, detail: record.correctness.detail }
            : null,
          tokens: turn.tokens,
          calls: turn.calls,
        });
      },
    });
    await replaceKernelFile(current.path, polished.source);
    console.error(`metalbench: polished ${current.path} (re-verified)`);
  } catch (e) {
    if (e instanceof WeldFailure) {
      printError(`polish of ${name} failed: ${e.reason} — the kernel is unchanged`);
      return EXIT.WELD_FAILED;
    }
    return weldError(name, e);
  } finally {
    await harness.close();
    await Deno.remove(staged).catch(() => {});
  }
  return await docsCommand({ workspace: ws.root });
}
