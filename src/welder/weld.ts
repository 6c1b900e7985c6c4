/**
 * One weld, start to landing: stage 0 (understand the PyTorch reference),
 * stage 1 (the MLX reference and registry entry, proved against PyTorch),
 * stage 2 (the first kernel, proved by the benchmark), then every file moved
 * into the workspace at once. Work happens in a staging folder; whatever
 * fails, the staging folder, the scratch files and the workers go, and the
 * workspace's problem files are as they were. Attempts go to the problem's
 * AttemptDB lineage (.agent-steel/), which a failed weld does write.
 */
import { dirname } from "node:path";
import { Harness } from "../bench/harness.ts";
import type { BackendKind } from "../backend/select.ts";
import { freshSeed } from "../bench/inputs.ts";
import type { ChatProvider } from "../agent/providers/provider.ts";
import { fenced, loadPrompts, systemPrompt } from "../agent/prompts.ts";
import { functionNamesOf, registryEntryText } from "../agent/optimizer/context.ts";
import { benchOf } from "../agent/loop/agent_steps.ts";
import type { ProblemSet } from "../registry/schema.ts";
import type { Workspace } from "../registry/workspace.ts";
import { checkParsed, converse } from "./converse.ts";
import { oneLine } from "./failure.ts";
import { fillWelderPrompt } from "./prompts.ts";
import { WeldRecorder } from "./record.ts";
import { parseKernelReply, parseReferenceReply } from "./reply.ts";
import { Staging } from "./staging.ts";
import { describeFacts, understand } from "./stage0.ts";
import { checkReference, paramName, type Stage1Value } from "./stage1.ts";
import { checkKernel, type Stage2Value } from "./stage2.ts";
import { TorchReference } from "./torch_reference.ts";

export interface WeldOptions {
  name: string;
  set: ProblemSet;
  /** What it computes, in a line; empty: the Model's docstring. */
  description: string;
  /** The PyTorch reference (KernelBench's format). */
  reference: string;
  workspace: Workspace;
  backend: BackendKind;
  provider: ChatProvider;
  maxTokens: number;
  /** Replies per stage (1 + retries). */
  attempts: number;
  referenceTimeoutS: number;
  /** Per-dispatch time limit of the simulator, ms. */
  timeoutMs?: number;
  secrets: readonly string[];
  signal?: AbortSignal;
  /** Progress, one line each. */
  log: (line: string) => void;
}

export interface WeldResult {
  files: string[];
  seed: number;
  /** Wall times, ms: each stage, the model's share, and the whole weld. */
  ms: { stage0: number; stage1: number; stage2: number; llm: number; total: number };
  attempts: { stage1: number; stage2: number };
}

export async function weld(o: WeldOptions): Promise<WeldResult> {
  const t0 = performance.now();
  const seed = freshSeed();
  let llm = 0;
  const timed: ChatProvider = {
    name: o.provider.name,
    model: o.provider.model,
    async complete(req) {
      const t = performance.now();
      try {
        return await o.provider.complete(req);
      } finally {
        llm += performance.now() - t;
      }
    },
  };
  const staging = await Staging.create(o.workspace, o.name, o.set);
  const workDir = await Deno.makeTempDir({ prefix: "metalbench-weld-" });
  let torch: TorchReference | null = null;
  let harness: Harness | null = null;
  const ms = { stage0: 0, stage1: 0, stage2: 0, llm: 0, total: 0 };
  const attempts = { stage1: 0, stage2: 0 };
  try {
    // Stage 0.
    o.log(`stage 0: loading the PyTorch reference ${o.reference}`);
    torch = await TorchReference.start([dirname(o.reference), workDir], o.referenceTimeoutS * 1000);
    const { facts } = await understand(torch, o.reference, seed);
    const torchSource = await Deno.readTextFile(o.reference);
    const description = o.description || oneLine(facts.doc) ||
      `${o.name}, as the PyTorch reference computes it`;
    ms.stage0 = performance.now() - t0;

    // Stage 1.
    const t1 = performance.now();
    harness = await Harness.open({
      mode: "paired",
      backend: o.backend,
      timeoutMs: o.timeoutMs,
      referenceTimeoutS: o.referenceTimeoutS,
      referenceDirs: [staging.referenceDir],
      isolateReferences: true, // written by a model: a fresh worker for each run
      signal: o.signal,
    });
    const recorder = new WeldRecorder(
      `${o.workspace.root}/.agent-steel`,
      o.name,
      harness.backend!.bucket,
      o.provider,
      o.secrets,
    );
    o.log(`stage 1: the MLX reference and registry entry (up to ${o.attempts} replies)`);
    const params = facts.params.length
      ? `the model's parameters and buffers are registry inputs after the forward tensors (named as shown above), taken as __call__ arguments too.`
      : "the PyTorch model has none either.";
    const ctx1 = {
      name: o.name,
      staging,
      facts,
      torch,
      workDir,
      seed,
      referenceTimeoutMs: o.referenceTimeoutS * 1000,
    };
    // What both stages ask with.
    const asking = {
      provider: timed,
      maxTokens: o.maxTokens,
      attempts: o.attempts,
      signal: o.signal,
    };
    const stage1: Stage1Value = await converse<Stage1Value>({
      stage: 1,
      ...asking,
      system: await fillWelderPrompt("system", o.workspace.root, {}),
      prompt: await fillWelderPrompt("reference", o.workspace.root, {
        name: o.name,
        set: o.set,
        description,
        torch_source: fenced(torchSource, "python"),
        facts: describeFacts(facts, paramName),
        param_rule: params,
      }),
      purpose: "welder-reference",
      check: checkParsed(parseReferenceReply, (v) => checkReference(ctx1, v.python, v.entry)),
      async record(turn) {
        attempts.stage1++;
        const parsed = parseReferenceReply(turn.reply);
        o.log(
          `stage 1, reply ${turn.retry + 1}: ${turn.checked.ok ? "passed" : turn.checked.reason}`,
        );
        await recorder.record({
          round: 0,
          candidate: 1,
          retry: turn.retry,
          technique: "welder stage 1: the MLX reference and the registry entry",
          source: parsed.ok ? parsed.value.python : turn.reply,
          verdict: turn.checked.verdict,
          reason: turn.checked.reason,
          profile: { welder: { stage: 1, facts, entry: parsed.ok ? parsed.value.entry : null } },
          tokens: turn.tokens,
          calls: turn.calls,
        });
      },
    });
    ms.stage1 = performance.now() - t1;

    // Stage 2.
    const t2 = performance.now();
    o.log(`stage 2: the first Metal kernel (up to ${o.attempts} replies)`);
    const problem = stage1.problem;
    const size = harness.backend!.kind === "sim" ? "test" : "bench";
    const stage2: Stage2Value = await converse<Stage2Value>({
      stage: 2,
      ...asking,
      system: systemPrompt(await loadPrompts(o.workspace.root), {
        kernel: o.name,
        functionNames: functionNamesOf(problem),
        simulated: harness.backend!.kind === "sim",
        chip: harness.backend!.chip?.name ?? null,
      }),
      prompt: await fillWelderPrompt("kernel", o.workspace.root, {
        name: o.name,
        description,
        registry_entry: fenced(registryEntryText(problem, size), "json"),
        reference_source: fenced(stage1.python, "python"),
        function_names: functionNamesOf(problem).map((n) => `\`${n}\``).join(", "),
      }),
      purpose: "welder-kernel",
      check: checkParsed(
        parseKernelReply,
        (kernel) => checkKernel(o.name, staging, harness!, o.backend, kernel),
      ),
      async record(turn) {
        attempts.stage2++;
        const parsed = parseKernelReply(turn.reply);
        o.log(
          `stage 2, reply ${turn.retry + 1}: ${turn.checked.ok ? "passed" : turn.checked.reason}`,
        );
        const record = turn.checked.ok ? turn.checked.value.record : null;
        await recorder.record({
          round: 0,
          candidate: 2,
          retry: turn.retry,
          technique: turn.checked.ok ? "baseline" : "welder stage 2: the first kernel",
          source: parsed.ok ? parsed.value : turn.reply,
          verdict: turn.checked.verdict,
          reason: turn.checked.ok ? `welded: ${turn.checked.reason}` : turn.checked.reason,
          profile: { welder: { stage: 2, reference: stage1.python } },
          bench: record ? benchOf(record) : null,
          correctness: record
            ? { status: record.correctness.status, detail: record.correctness.detail }
            : null,
          plausible: record?.plausibility?.plausible ?? null,
          tokens: turn.tokens,
          calls: turn.calls,
        });
      },
    });
    ms.stage2 = performance.now() - t2;
    void stage2;

    const files = await staging.land(o.workspace);
    ms.llm = llm;
    ms.total = performance.now() - t0;
    return { files, seed, ms, attempts };
  } finally {
    await torch?.close().catch(() => {});
    await harness?.close().catch(() => {});
    await Deno.remove(workDir, { recursive: true }).catch(() => {});
    await staging.remove();
  }
}
