/**
 * `metalbench import kernelbench <folder>`: one weld per KernelBench problem
 * file, resumable, with a summary. Options only: the importer
 * (src/welder/kernelbench.ts) loads when the command runs.
 */
import { Command, Option } from "@commander-js/extra-typings";
import { EXIT_CODES_HELP } from "./exit_codes.ts";
import { PROBLEM_SETS } from "../registry/schema.ts";
import { withWeldOptions } from "./welder_command.ts";
import type { ImportFlags } from "../welder/kernelbench.ts";

export function importCli(setExit: (code: number) => void) {
  const cmd = new Command("import")
    .description("import problems from another benchmark (kernelbench: PyTorch Model files)")
    .argument("<source>", "where they come from: kernelbench")
    .argument("<folder>", "a folder of KernelBench problem files (e.g. KernelBench/level1)")
    .option("--only <globs>", "only these files, e.g. 1_*,23_* (matched against file names)")
    .addOption(
      new Option(
        "--set <set>",
        "the set they join (default: level1 → common, level2 → standard, level3 → full)",
      ).choices(PROBLEM_SETS),
    )
    .option("--prefix <p>", "problem names are <p><file name> (default kb_)")
    .option("--retry-failed", "weld again the problems that failed in an earlier run")
    .option("--json", "print one JSON event a line: each problem as it ends, then the summary");
  return withWeldOptions(cmd)
    .addHelpText("after", `\n${EXIT_CODES_HELP}`)
    .action(async (source, folder, opts) => {
      const { importCommand } = await import("../welder/kernelbench.ts");
      setExit(await importCommand(source, folder, opts as ImportFlags));
    });
}
