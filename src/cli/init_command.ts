/**
 * `metalbench init [dir]`: copy the built-in suite (registry, kernels,
 * references) into an editable workspace. Runs inside it use its files.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { builtinSuiteRoot, isWorkspace } from "../registry/workspace.ts";
import { CliError, EXIT } from "./exit_codes.ts";

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
  console.error(
    `metalbench: created a workspace in ${target} (${files} files); edit kernels/ and run: cd ${
      dir ?? "."
    } && metalbench <name>`,
  );
  return EXIT.OK;
}
