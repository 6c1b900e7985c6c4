/**
 * `metalbench init [dir]`: copy the built-in suite (registry, kernels,
 * references) into an editable workspace, with a deno.json of tasks
 * (src/api/workspace_tasks.ts). Runs inside it use its files.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { builtinSuiteRoot, isWorkspace } from "../registry/workspace.ts";
import { CliError, EXIT } from "./exit_codes.ts";
import { workspaceConfig } from "../api/workspace_tasks.ts";

const SUITE_FOLDERS = ["registry", "kernels", "references"];

/** Copy a folder tree; reads through Deno's fs so it works on a binary's embedded files. */
async function copyTree(from: string, to: string): Promise<number> {
  await Deno.mkdir(to, { recursive: true });
  let files = 0;
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) files += await copyTree(join(from, e.name), join(to, e.name));
    else if (e.isFile) {
      await Deno.writeFile(join(to, e.name), await Deno.readFile(join(from, e.name)));
      files++;
    }
  }
  return files;
}

export async function initCommand(dir: string | undefined): Promise<number> {
  const target = resolve(dir ?? ".");
  if (isWorkspace(target)) {
    throw new CliError(
      `${target} is already a workspace; nothing was copied (use another folder, or edit this one)`,
      EXIT.USAGE,
    );
  }
  const clash = SUITE_FOLDERS.filter((f) => existsSync(join(target, f)));
  if (clash.length) {
    throw new CliError(`${target} already has ${clash.join(", ")}; nothing was copied`, EXIT.USAGE);
  }
  const source = builtinSuiteRoot();
  let files = 0;
  for (const f of SUITE_FOLDERS) files += await copyTree(join(source, f), join(target, f));
  // A deno.json of the user's own is theirs: never replaced.
  const config = join(target, "deno.json");
  const hasConfig = existsSync(config) || existsSync(join(target, "deno.jsonc"));
  if (!hasConfig) await Deno.writeTextFile(config, workspaceConfig());
  console.error(
    `metalbench: created a workspace in ${target} (${files} files); edit kernels/ and run: cd ${
      dir ?? "."
    } && metalbench <name>`,
  );
  console.error(
    hasConfig
      ? `metalbench: ${target} has a deno.json already; no tasks were added (see the README, "Scripting")`
      : "metalbench: tasks in deno.json: deno task bench <name> | all | docs | agent | nightly",
  );
  return EXIT.OK;
}
