/**
 * Loading the registry of a workspace: registry/<set>.json files, validated
 * with zod, expanded from their templates, with each problem's reference
 * and kernel files located.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import type { z } from "zod";
import {
  type CustomEntry,
  PROBLEM_SETS,
  type ProblemSet,
  RegistryFile,
  SIZE_NAMES,
} from "./schema.ts";
import { expand } from "./templates.ts";
import { hasSize, type SizedProblem, type SizeName, sizeProblem } from "./problem.ts";
import type { Workspace } from "./workspace.ts";

export class RegistryError extends Error {
  override name = "RegistryError";
}

export interface Problem {
  name: string;
  set: ProblemSet;
  template: string;
  description: string;
  entry: CustomEntry;
  /** references/<set>/<name>.py */
  referencePath: string;
  /** kernels/<set>/<name>.metal, or the folder kernels/<set>/<name>/ of per-chip variants. */
  kernelPath: string;
  /** Variant names available in the folder form ("default", "m4", ...); [] for a flat file. */
  variants: string[];
  registryFile: string;
}

export interface Registry {
  workspace: Workspace;
  problems: Map<string, Problem>;
}

function formatZodError(e: z.ZodError): string {
  const issue = e.issues[0];
  const path = issue.path.join(".");
  return `${path ? `${path}: ` : ""}${issue.message}` +
    (e.issues.length > 1 ? ` (and ${e.issues.length - 1} more problem(s))` : "");
}

/** Variants of a kernel folder: kernels/<set>/<name>/<variant>.metal. */
function listVariants(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".metal"))
    .map((f) => basename(f, ".metal"))
    .sort((a, b) => (a === "default" ? -1 : b === "default" ? 1 : a.localeCompare(b)));
}

export function loadRegistry(workspace: Workspace): Registry {
  const problems = new Map<string, Problem>();
  if (!existsSync(workspace.registryDir)) {
    throw new RegistryError(`no registry folder at ${workspace.registryDir}`);
  }
  const files = readdirSync(workspace.registryDir).filter((f) => f.endsWith(".json")).sort();
  for (const file of files) {
    const path = join(workspace.registryDir, file);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, "utf8"));
    } catch (e) {
      throw new RegistryError(`${path} is not valid JSON: ${(e as Error).message}`);
    }
    const parsed = RegistryFile.safeParse(raw);
    if (!parsed.success) {
      throw new RegistryError(`${path}: ${formatZodError(parsed.error)}`);
    }
    const { set } = parsed.data;
    for (const [name, entry] of Object.entries(parsed.data.problems)) {
      const earlier = problems.get(name);
      if (earlier) {
        throw new RegistryError(
          `${path}: problem '${name}' is already defined in ${earlier.registryFile}`,
        );
      }
      const kernelDir = join(workspace.kernelsDir, set, name);
      const variants = listVariants(kernelDir);
      const expanded = expand(entry);
      const problem: Problem = {
        name,
        set,
        template: entry.template,
        description: entry.description,
        entry: expanded,
        referencePath: join(workspace.referencesDir, set, `${name}.py`),
        kernelPath: variants.length ? kernelDir : join(workspace.kernelsDir, set, `${name}.metal`),
        variants,
        registryFile: path,
      };
      // Check every size now so a bad entry fails at load, not mid-run.
      for (const size of SIZE_NAMES) {
        if (hasSize(expanded, size)) sizeProblem(name, set, expanded, size);
      }
      problems.set(name, problem);
    }
  }
  return { workspace, problems };
}

export function problemsInOrder(registry: Registry, set?: ProblemSet): Problem[] {
  const order = (s: ProblemSet) => PROBLEM_SETS.indexOf(s);
  return [...registry.problems.values()]
    .filter((p) => !set || p.set === set)
    .sort((a, b) => order(a.set) - order(b.set) || a.name.localeCompare(b.name));
}

export function sized(problem: Problem, size: SizeName): SizedProblem {
  return sizeProblem(problem.name, problem.set, problem.entry, size);
}

export interface KernelSource {
  path: string;
  /** "default", a chip name such as "m4", or "flat" for kernels/<set>/<name>.metal. */
  variant: string;
  text: string;
  /**
   * An offline library built from the sources, beside them:
   * <name>__<chip>.metallib -> <name>__default.metallib -> <name>.metallib.
   * Only one at least as new as the source counts (a stale build is ignored).
   */
  metallib: string | null;
}

function mtime(path: string): number {
  return Deno.statSync(path).mtime?.getTime() ?? 0;
}

/** The offline .metallib for `chip`, as the seed looks it up, if one is up to date. */
function resolveMetallib(problem: Problem, sourcePath: string, chip?: string): string | null {
  const dir = join(problem.kernelPath, "..");
  const names = [
    ...(chip ? [`${problem.name}__${chip}`] : []),
    `${problem.name}__default`,
    problem.name,
  ];
  for (const n of names) {
    const path = join(dir, `${n}.metallib`);
    if (existsSync(path)) return mtime(path) >= mtime(sourcePath) ? path : null;
  }
  return null;
}

/**
 * The kernel source for a chip, as the seed resolves it:
 * <name>/<chip>.metal -> <name>/default.metal -> <name>.metal.
 */
export function resolveKernelSource(problem: Problem, chip?: string): KernelSource {
  const candidates: [string, string][] = [];
  if (problem.variants.length) {
    if (chip && problem.variants.includes(chip)) {
      candidates.push([join(problem.kernelPath, `${chip}.metal`), chip]);
    }
    candidates.push([join(problem.kernelPath, "default.metal"), "default"]);
  }
  const flat = problem.variants.length ? `${problem.kernelPath}.metal` : problem.kernelPath;
  candidates.push([flat, "flat"]);
  for (const [path, variant] of candidates) {
    if (existsSync(path)) {
      return {
        path,
        variant,
        text: readFileSync(path, "utf8"),
        metallib: resolveMetallib(problem, path, chip),
      };
    }
  }
  throw new RegistryError(
    `${problem.name}: no kernel source (looked for ${candidates.map(([p]) => p).join(", ")})`,
  );
}
