/**
 * The deno.json `metalbench init` writes into a workspace: tasks that call
 * the same `metalbench` that made it (the compiled binary, or a clone's
 * launcher), and — from a clone — an import map so a script in the
 * workspace can `import … from "metalbench"` (mod.ts).
 */
import { fromFileUrl } from "../util/paths.ts";

/** The command that runs this program: the binary itself, or the clone's ./metalbench launcher. */
export function selfCommand(): string {
  return Deno.build.standalone
    ? Deno.execPath()
    : fromFileUrl(new URL("../../metalbench", import.meta.url));
}

/** A word for the deno task shell: single-quoted, so spaces and $ stay literal. */
export function shellWord(s: string): string {
  return `'${s.replaceAll("'", `'"'"'`)}'`;
}

/** The clone's own import map (its deno.json), for scripts that import mod.ts from a workspace. */
function cloneImports(): Record<string, string> {
  if (Deno.build.standalone) return {};
  const config = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  return { ...config.imports, metalbench: new URL("../../mod.ts", import.meta.url).href };
}

/** The text of the workspace's deno.json. */
export function workspaceConfig(command = selfCommand()): string {
  const mb = shellWord(command);
  const imports = cloneImports();
  const config = {
    tasks: {
      bench: { command: mb, description: "benchmark kernels: deno task bench relu softmax" },
      all: { command: `${mb} --all`, description: "benchmark every problem" },
      docs: { command: `${mb} docs`, description: "regenerate best_times.md, LINK.md, KERNELS.md" },
      agent: { command: `${mb} agent`, description: "Agent Steel: deno task agent relu" },
      nightly: {
        command: `${mb} --all --report reports/`,
        description: "the whole suite, its report in reports/<YYYY-MM-DD>.json",
      },
    },
    ...(Object.keys(imports).length ? { imports } : {}),
  };
  return JSON.stringify(config, null, 2) + "\n";
}
