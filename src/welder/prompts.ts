/**
 * The Welder's prompts: template files beside Agent Steel's
 * (src/agent/prompts/welder_<name>.md), overridable per workspace at
 * <workspace>/.agent-steel/prompts/welder_<name>.md, filled in one pass by
 * the agent's fillTemplate (a value is never scanned again).
 */
import { join } from "node:path";
import { fillTemplate, PromptError } from "../agent/prompts.ts";
import { readIfExists } from "../store/files.ts";
import { fromFileUrl } from "../util/paths.ts";

export const WELDER_PROMPTS = ["system", "reference", "kernel", "polish"] as const;
export type WelderPrompt = (typeof WELDER_PROMPTS)[number];

/** The template `name`, from the workspace's override if it has one. */
export async function welderPrompt(name: WelderPrompt, workspaceRoot: string): Promise<string> {
  const file = `welder_${name}.md`;
  const override = join(workspaceRoot, ".agent-steel", "prompts", file);
  const own = await readIfExists(override);
  if (own !== undefined) {
    if (!own.trim()) {
      throw new PromptError(
        `${override} is empty — fix: write the prompt there, or delete the file`,
      );
    }
    return own;
  }
  const builtin = fromFileUrl(new URL(`../agent/prompts/${file}`, import.meta.url));
  const text = await readIfExists(builtin);
  if (text === undefined) {
    throw new PromptError(`the built-in prompt ${builtin} is missing — fix: reinstall metalbench`);
  }
  return text;
}

/** Load and fill `name`; every placeholder it uses must have a value. */
export async function fillWelderPrompt(
  name: WelderPrompt,
  workspaceRoot: string,
  values: Record<string, string>,
): Promise<string> {
  return fillTemplate(await welderPrompt(name, workspaceRoot), values, `the welder ${name} prompt`);
}
