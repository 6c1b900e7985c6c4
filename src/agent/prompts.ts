/**
 * Agent Steel's prompts are template files, not code: the built-in set is
 * src/agent/prompts/<name>.md (embedded in the compiled binary), and a
 * workspace overrides any of them with <workspace>/.agent-steel/prompts/<name>.md.
 *
 * A template holds `{{name}}` placeholders and nothing else of a language.
 * Filling is one pass over the template: a value is never scanned again, so
 * a kernel source or a model's reply that contains "{{feedback}}" stays text.
 * A placeholder without a value, or a value the template never asks for that
 * the caller marks required, is an error naming it.
 */
import { join } from "node:path";
import { readIfExists } from "../store/files.ts";
import { fromFileUrl } from "../util/paths.ts";

export const PROMPT_NAMES = ["system", "diagnosis", "rewrite", "retry"] as const;
export type PromptName = (typeof PROMPT_NAMES)[number];

export interface PromptSet {
  system: string;
  diagnosis: string;
  rewrite: string;
  retry: string;
  /** Where each template came from (a file path), for logs and `doctor`. */
  origins?: Record<PromptName, string>;
}

/**
 * The values each template may use, and those it must use. Sources and
 * entries come already fenced (see `fenced`); a list comes as Markdown
 * bullets, or "(none yet)".
 */
export const PLACEHOLDERS: Record<PromptName, { available: string[]; required: string[] }> = {
  system: { available: ["kernel", "function_names", "timing_note"], required: [] },
  diagnosis: {
    available: ["kernel", "facts", "source", "reference", "registry_entry", "timing_note"],
    required: ["facts", "source"],
  },
  rewrite: {
    available: [
      "kernel",
      "function_names",
      "diagnosis",
      "facts",
      "chip_facts",
      "registry_entry",
      "reference_source",
      "best_source",
      "history_top",
      "history_failed",
      "timing_note",
    ],
    required: ["best_source", "registry_entry"],
  },
  retry: { available: ["kernel", "function_names", "feedback"], required: ["feedback"] },
};

export class PromptError extends Error {
  override name = "PromptError";
}

/** The built-in templates' folder (the source tree, or the binary's embedded copy). */
export const BUILTIN_PROMPTS_DIR = "src/agent/prompts";

export function builtinPromptPath(name: PromptName): string {
  return fromFileUrl(new URL(`./prompts/${name}.md`, import.meta.url));
}

/** Where a workspace keeps its overrides. */
export function overridePromptPath(workspaceRoot: string, name: PromptName): string {
  return join(workspaceRoot, ".agent-steel", "prompts", `${name}.md`);
}

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g;

/** The placeholders a template uses, each once, in order. */
export function placeholdersOf(template: string): string[] {
  return [...new Set([...template.matchAll(PLACEHOLDER)].map((m) => m[1]))];
}

/**
 * Fill `template` in one pass. `what` names the template in errors
 * ("the rewrite prompt (path)").
 */
export function fillTemplate(
  template: string,
  values: Record<string, string>,
  what: string,
): string {
  const missing = placeholdersOf(template).filter((n) => !Object.hasOwn(values, n));
  if (missing.length) {
    throw new PromptError(
      `${what} uses {{${missing[0]}}}, which has no value${
        missing.length > 1 ? ` (nor ${missing.slice(1).map((n) => `{{${n}}}`).join(", ")})` : ""
      } — fix: use only ${Object.keys(values).map((n) => `{{${n}}}`).join(", ")}`,
    );
  }
  return template.replace(PLACEHOLDER, (_, n: string) => values[n]);
}

/**
 * Check that a template asks for every value in `required` (a rewrite
 * prompt that drops {{kernel_source}} would have the model write blind).
 */
export function requirePlaceholders(template: string, required: string[], what: string): void {
  const used = new Set(placeholdersOf(template));
  const absent = required.filter((n) => !used.has(n));
  if (absent.length) {
    throw new PromptError(
      `${what} does not use ${absent.map((n) => `{{${n}}}`).join(", ")} — fix: put ${
        absent.length > 1 ? "them" : "it"
      } back in the template`,
    );
  }
}

async function readPrompt(path: string): Promise<string | undefined> {
  try {
    return await readIfExists(path);
  } catch (e) {
    throw new PromptError(
      `cannot read ${path}: ${(e as Error).message} — fix: make it a readable text file`,
    );
  }
}

/** A template asks only for values it can get, and for every value it needs. */
function checkTemplate(name: PromptName, text: string, path: string): void {
  const { available, required } = PLACEHOLDERS[name];
  const unknown = placeholdersOf(text).filter((n) => !available.includes(n));
  if (unknown.length) {
    throw new PromptError(
      `${path} uses {{${unknown[0]}}}, which the ${name} prompt has no value for — fix: use only ${
        available.map((n) => `{{${n}}}`).join(", ")
      }`,
    );
  }
  requirePlaceholders(text, required, path);
}

/**
 * The four templates: each from the workspace's override when it has one,
 * else the built-in file. An override that is empty is refused (it would
 * silently send the model nothing).
 */
export async function loadPrompts(workspaceRoot: string | null): Promise<PromptSet> {
  const set = {} as Record<PromptName, string>;
  const origins = {} as Record<PromptName, string>;
  for (const name of PROMPT_NAMES) {
    const override = workspaceRoot ? overridePromptPath(workspaceRoot, name) : null;
    const text = override ? await readPrompt(override) : undefined;
    if (text !== undefined && override) {
      if (!text.trim()) {
        throw new PromptError(
          `${override} is empty — fix: write the ${name} prompt there, or delete the file to use the built-in one`,
        );
      }
      checkTemplate(name, text, override);
      set[name] = text;
      origins[name] = override;
      continue;
    }
    const builtin = builtinPromptPath(name);
    const own = await readPrompt(builtin);
    if (own === undefined) {
      throw new PromptError(
        `the built-in ${name} prompt is missing (${builtin}) — fix: reinstall metalbench, or put one at ${
          workspaceRoot ? overridePromptPath(workspaceRoot, name) : ".agent-steel/prompts/" + name +
            ".md"
        }`,
      );
    }
    checkTemplate(name, own, builtin);
    set[name] = own;
    origins[name] = builtin;
  }
  return { ...set, origins };
}

/**
 * `text` in a Markdown code fence longer than any run of backticks inside
 * it, so a source holding ``` cannot close the fence early.
 */
export function fenced(text: string, lang = ""): string {
  const longest = Math.max(0, ...[...text.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = "`".repeat(Math.max(3, longest + 1));
  return `${fence}${lang}\n${text.replace(/\n$/, "")}\n${fence}`;
}

/** How to read the times, by backend: a fact for the system prompt. */
export function timingNote(simulated: boolean, chip: string | null): string {
  return simulated
    ? "These runs are on MetalBench's CPU simulator of MSL, not on a GPU: every time is a simulated CPU time, good for comparing two kernels with each other and nothing else. SIMD groups are 32 wide and barriers are exact, as on the GPU. Write the kernel you would ship for an Apple GPU; do not tune for the CPU."
    : `These runs are on the GPU${
      chip ? ` of an ${chip}` : ""
    }: times are per launch, measured on the host by the batched wall clock, with GPU timestamps beside them.`;
}

/** The system prompt, filled. */
export function systemPrompt(
  prompts: PromptSet,
  v: { kernel: string; functionNames: string[]; simulated: boolean; chip: string | null },
): string {
  return fillTemplate(prompts.system, {
    kernel: v.kernel,
    function_names: v.functionNames.length
      ? v.functionNames.map((n) => `\`${n}\``).join(", ")
      : "the functions the registry entry names",
    timing_note: timingNote(v.simulated, v.chip),
  }, promptLabel(prompts, "system"));
}

/** "the rewrite prompt (<path>)", for errors. */
export function promptLabel(prompts: PromptSet, name: PromptName): string {
  const at = prompts.origins?.[name];
  return `the ${name} prompt${at ? ` (${at})` : ""}`;
}
