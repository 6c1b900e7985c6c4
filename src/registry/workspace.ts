/**
 * Where problems live and where results go. A workspace is a folder with
 * `registry/`, `kernels/` and `references/` (this repository is one; so is a
 * folder made by `metalbench init`). Results, session.json and the
 * generated markdown are written into it — except for the suite built into
 * a compiled binary, which is read-only: its results go to the user's data
 * folder.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { dataHome, fromFileUrl } from "../util/paths.ts";

export interface Workspace {
  /** Problems: registry/, kernels/, references/. */
  root: string;
  registryDir: string;
  kernelsDir: string;
  referencesDir: string;
  /** Where results/, session.json and the generated markdown go. */
  outputRoot: string;
  resultsDir: string;
  sessionPath: string;
}

export function workspaceAt(root: string, outputRoot = root): Workspace {
  const r = resolve(root);
  const out = resolve(outputRoot);
  return {
    root: r,
    registryDir: join(r, "registry"),
    kernelsDir: join(r, "kernels"),
    referencesDir: join(r, "references"),
    outputRoot: out,
    resultsDir: join(out, "results"),
    sessionPath: join(out, "session.json"),
  };
}

export function isWorkspace(dir: string): boolean {
  return existsSync(join(dir, "registry")) && existsSync(join(dir, "kernels"));
}

/** The workspace holding `start` (or an ancestor of it), if any. */
export function findWorkspace(start: string): Workspace | undefined {
  let dir = resolve(start);
  for (;;) {
    if (isWorkspace(dir)) return workspaceAt(dir);
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** The suite that ships with the program (the repository root, or the binary's embedded copy). */
export function builtinSuiteRoot(): string {
  return fromFileUrl(new URL("../../", import.meta.url));
}

/** The built-in suite, with its outputs where they can be written. */
export function builtinWorkspace(): Workspace {
  const root = builtinSuiteRoot();
  return workspaceAt(root, Deno.build.standalone ? dataHome() : root);
}

export class WorkspaceError extends Error {
  override name = "WorkspaceError";
}

/**
 * The workspace to use: an explicit --workspace, else METALBENCH_WORKSPACE,
 * else the one around the current directory, else the built-in suite.
 */
export function chooseWorkspace(explicit?: string): Workspace {
  const given = explicit ?? Deno.env.get("METALBENCH_WORKSPACE");
  if (given) {
    if (!isWorkspace(given)) {
      throw new WorkspaceError(
        `${given} is not a MetalBench workspace (no registry/ and kernels/); create one with: metalbench init ${given}`,
      );
    }
    return workspaceAt(given);
  }
  return findWorkspace(Deno.cwd()) ?? builtinWorkspace();
}
