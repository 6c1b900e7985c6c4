/**
 * Where problems live and where results go. A workspace is a folder with
 * `registry/`, `kernels/` and `references/` (this repository is one; so is a
 * folder made by `metalbench init`). Results, session.json and the
 * generated markdown are written into it.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fromFileUrl } from "../util/paths.ts";

export interface Workspace {
  root: string;
  registryDir: string;
  kernelsDir: string;
  referencesDir: string;
  resultsDir: string;
  sessionPath: string;
}

export function workspaceAt(root: string): Workspace {
  const r = resolve(root);
  return {
    root: r,
    registryDir: join(r, "registry"),
    kernelsDir: join(r, "kernels"),
    referencesDir: join(r, "references"),
    resultsDir: join(r, "results"),
    sessionPath: join(r, "session.json"),
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

/** The suite that ships with the program (this repository's root). */
export function builtinSuiteRoot(): string {
  return fromFileUrl(new URL("../../", import.meta.url));
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
  return findWorkspace(Deno.cwd()) ?? workspaceAt(builtinSuiteRoot());
}
