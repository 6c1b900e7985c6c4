/**
 * The optimizer step: what the model is asked for a new kernel (the
 * rewrite prompt filled from a RewriteContext), how its reply is read
 * (reply.ts) and where the candidate is written (staging.ts). The words of
 * the prompts are template files (src/agent/prompts/); this file only
 * decides what fills them.
 */
import type { ChatMessage, ChatRequest } from "../providers/provider.ts";
import {
  fenced,
  fillTemplate,
  promptLabel,
  type PromptSet,
  systemPrompt,
  timingNote,
} from "../prompts.ts";
import { formatNs, type ProfileFacts, renderFacts } from "../profiler/profile.ts";
import type { History } from "./context.ts";

export { type ParsedReply, parseRewriteReply } from "./reply.ts";
export { stageCandidate, stagedPath, StagingError } from "./staging.ts";
export { callModel, type TranscriptCall, transcriptCall } from "./call.ts";
export {
  chipFactsText,
  functionNamesOf,
  type History,
  historyOf,
  registryEntryText,
} from "./context.ts";

export interface RewriteContext {
  kernel: string;
  diagnosis: string | null;
  facts: ProfileFacts;
  bestSource: string;
  referenceSource: string;
  /** The entry as JSON: bindings, grid, threadgroup, sizes (registryEntryText). */
  registryEntry: string;
  /** Peaks, SIMD width, threadgroup memory (chipFactsText). */
  chipFacts: string;
  history: History;
  /** For a retry: the compile error / fault / incorrect detail / rejection reason of the previous try. */
  feedback: string | null;
  /** The kernel functions the entry names (functionNamesOf); else read from registryEntry. */
  functionNames?: string[];
  /**
   * For a retry: the model's previous reply. With it the retry is a
   * conversation (request, that reply, the feedback); without it the
   * feedback is appended to a fresh request.
   */
  previousReply?: string | null;
}

const NONE = "(none yet)";

function pct(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return "no comparison";
  return `${v > 0 ? "+" : v < 0 ? "−" : "±"}${Math.abs(v).toFixed(1)}%`;
}

/** One line of prose from a field that may hold newlines (a technique, a reason). */
const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

export function renderHistory(h: History): { top: string; failed: string } {
  return {
    top: h.top.length
      ? h.top.map((t) => `- ${formatNs(t.medianNs)} (${pct(t.deltaPct)}): ${oneLine(t.technique)}`)
        .join("\n")
      : NONE,
    failed: h.failed.length
      ? h.failed.map((f) => `- ${f.verdict}: ${oneLine(f.technique)} — ${oneLine(f.reason)}`).join(
        "\n",
      )
      : NONE,
  };
}

/** The function names from the rendered entry, when the context does not give them. */
function functionNames(ctx: RewriteContext): string[] {
  if (ctx.functionNames) return ctx.functionNames;
  try {
    const e = JSON.parse(ctx.registryEntry);
    const ds: { function?: unknown }[] = e?.entry?.dispatches ?? e?.dispatches ?? [];
    return [
      ...new Set(ds.map((d) => d.function).filter((f): f is string => typeof f === "string")),
    ];
  } catch {
    return [];
  }
}

function namesList(names: string[]): string {
  return names.length
    ? names.map((n) => `\`${n}\``).join(", ")
    : "the functions the registry entry names";
}

/** The rewrite prompt's user message, filled. */
export function rewriteMessage(ctx: RewriteContext, prompts: PromptSet): string {
  const h = renderHistory(ctx.history);
  return fillTemplate(prompts.rewrite, {
    kernel: ctx.kernel,
    function_names: namesList(functionNames(ctx)),
    diagnosis: ctx.diagnosis?.trim() || "(no diagnosis for this round)",
    facts: renderFacts(ctx.facts),
    chip_facts: ctx.chipFacts,
    registry_entry: fenced(ctx.registryEntry, "json"),
    reference_source: fenced(ctx.referenceSource, "python"),
    best_source: fenced(ctx.bestSource, "metal"),
    history_top: h.top,
    history_failed: h.failed,
    timing_note: timingNote(ctx.facts.simulated, ctx.facts.chip),
  }, promptLabel(prompts, "rewrite"));
}

/** The retry prompt's message: what went wrong with the last kernel. */
export function retryMessage(
  feedback: string,
  prompts: PromptSet,
  v: { kernel: string; functionNames: string[] },
): string {
  return fillTemplate(prompts.retry, {
    kernel: v.kernel,
    function_names: namesList(v.functionNames),
    feedback: feedback.trim(),
  }, promptLabel(prompts, "retry"));
}

export function buildRewriteRequest(
  ctx: RewriteContext,
  prompts: PromptSet,
  maxTokens: number,
): ChatRequest {
  const names = functionNames(ctx);
  const system = systemPrompt(prompts, {
    kernel: ctx.kernel,
    functionNames: names,
    simulated: ctx.facts.simulated,
    chip: ctx.facts.chip,
  });
  const first = rewriteMessage(ctx, prompts);
  const messages: ChatMessage[] = [];
  if (ctx.feedback === null) {
    messages.push({ role: "user", content: first });
  } else {
    const retry = retryMessage(ctx.feedback, prompts, { kernel: ctx.kernel, functionNames: names });
    if (ctx.previousReply) {
      messages.push(
        { role: "user", content: first },
        { role: "assistant", content: ctx.previousReply },
        { role: "user", content: retry },
      );
    } else {
      messages.push({ role: "user", content: `${first}\n\n## The previous attempt\n\n${retry}` });
    }
  }
  return {
    system,
    messages,
    maxTokens,
    purpose: ctx.feedback === null ? "rewrite" : "retry",
  };
}

/**
 * The request after a failed attempt, continuing `previous`: its messages,
 * the model's reply, then the retry prompt with what went wrong.
 */
export function buildRetryRequest(
  previous: ChatRequest,
  reply: string,
  feedback: string,
  prompts: PromptSet,
  v: { kernel: string; functionNames: string[] },
): ChatRequest {
  return {
    ...previous,
    messages: [
      ...previous.messages,
      { role: "assistant", content: reply },
      { role: "user", content: retryMessage(feedback, prompts, v) },
    ],
    purpose: "retry",
  };
}
