/**
 * The profiler's second half: one model call that turns the facts into a
 * 2–3 paragraph diagnosis (what bounds the kernel, what in the source
 * causes it, what to change). The loop skips it with --no-diagnosis.
 */
import type { ChatProvider } from "../providers/provider.ts";
import { callModel, type TranscriptCall } from "../optimizer/call.ts";
import {
  fenced,
  fillTemplate,
  promptLabel,
  type PromptSet,
  systemPrompt,
  timingNote,
} from "../prompts.ts";
import { type ProfileFacts, renderFacts } from "./profile.ts";

export interface DiagnoseInput {
  source: string;
  reference: string;
  /** The entry as JSON (optimizer/context.ts, registryEntryText). */
  registryEntry: string;
  /** For the prompt's wording; default "the kernel". */
  kernel?: string;
  functionNames?: string[];
}

export interface DiagnoseOptions {
  maxTokens: number;
  signal?: AbortSignal;
  prompts: PromptSet;
  /** Called with the transcript entry, also when the call fails (the error is rethrown). */
  onCall?: (call: TranscriptCall) => void;
}

export async function diagnose(
  provider: ChatProvider,
  facts: ProfileFacts,
  input: DiagnoseInput,
  opts: DiagnoseOptions,
): Promise<{ text: string; call: TranscriptCall }> {
  const kernel = input.kernel ?? "the kernel";
  const note = timingNote(facts.simulated, facts.chip);
  const req = {
    system: systemPrompt(opts.prompts, {
      kernel,
      functionNames: input.functionNames ?? [],
      simulated: facts.simulated,
      chip: facts.chip,
    }),
    messages: [{
      role: "user" as const,
      content: fillTemplate(opts.prompts.diagnosis, {
        kernel,
        facts: renderFacts(facts),
        source: fenced(input.source, "metal"),
        reference: fenced(input.reference, "python"),
        registry_entry: fenced(input.registryEntry, "json"),
        timing_note: note,
      }, promptLabel(opts.prompts, "diagnosis")),
    }],
    maxTokens: opts.maxTokens,
    purpose: "diagnosis",
    signal: opts.signal,
  };
  const { reply, call } = await callModel(provider, req, opts.onCall);
  return { text: reply.text.trim(), call };
}
