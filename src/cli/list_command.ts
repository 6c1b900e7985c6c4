/** `metalbench list`: the problems, their sets, templates and per-chip variants. */
import { existsSync } from "node:fs";
import { loadRegistry, problemsInOrder } from "../registry/load.ts";
import { chooseWorkspace } from "../registry/workspace.ts";
import type { ProblemSet } from "../registry/schema.ts";
import { EXIT } from "./exit_codes.ts";

export async function listCommand(
  opts: { set?: ProblemSet; json?: true; workspace?: string },
): Promise<number> {
  const registry = loadRegistry(chooseWorkspace(opts.workspace));
  const problems = problemsInOrder(registry, opts.set);
  const rows = problems.map((p) => ({
    name: p.name,
    set: p.set,
    template: p.template,
    description: p.description,
    variants: p.variants.length ? p.variants : ["flat"],
    dispatches: p.entry.dispatches.length,
    hasKernel: p.variants.length > 0 || existsSync(p.kernelPath),
    hasReference: existsSync(p.referencePath),
  }));
  if (opts.json) {
    console.log(JSON.stringify({ workspace: registry.workspace.root, problems: rows }, null, 2));
    return EXIT.OK;
  }
  console.log(`workspace: ${registry.workspace.root}`);
  let set = "";
  for (const r of rows) {
    if (r.set !== set) {
      set = r.set;
      console.log(`\n${set}`);
    }
    const missing = [!r.hasKernel && "no kernel", !r.hasReference && "no reference"].filter(
      Boolean,
    );
    console.log(
      `  ${r.name.padEnd(24)} ${r.template.padEnd(12)} ${
        r.variants.join(",").padEnd(14)
      } ${r.description}${missing.length ? `  [${missing.join(", ")}]` : ""}`,
    );
  }
  console.log(`\n${rows.length} problems`);
  return await Promise.resolve(EXIT.OK);
}
