/**
 * `metalbench welder`: a new problem from a description and a PyTorch
 * reference (or `--polish` an existing kernel). Options only: the Welder
 * (src/welder/) and the LLM SDKs load when the command runs.
 */
import { Command, Option } from "@commander-js/extra-typings";
import { EXIT_CODES_HELP } from "./exit_codes.ts";
import { intOption, secondsOption } from "./options.ts";
import { PROBLEM_SETS } from "../registry/schema.ts";
import type { WelderFlags } from "../welder/command.ts";
import { withProviderOptions } from "./agent_cli.ts";

/**
 * The LLM and benchmark options the Welder shares with `metalbench agent`
 * (and `import`). Added untyped: commander's typed chain over this many
 * options is too slow for the type checker, so the actions read them as WeldFlags.
 */
// deno-lint-ignore no-explicit-any
export function withWeldOptions<T extends Command<any, any>>(command: T): T {
  // deno-lint-ignore no-explicit-any
  const cmd = command as any;
  withProviderOptions(
    cmd
      .option(
        "--retries <n>",
        "retries of a stage fed back its error (default 2)",
        intOption(0, 20),
      )
      .option("--loop", "hand each welded kernel to Agent Steel (metalbench agent --loop)")
      .option("--max-rounds <n>", "with --loop: rounds (default 5)", intOption(1, 10_000))
      .option("--patience <k>", "with --loop: rounds without a gain before stopping", intOption(1))
      .option("--candidates <k>", "with --loop: candidates per round", intOption(1, 64)),
  )
    .addOption(new Option("--backend <backend>").choices(["metal", "sim"] as const))
    .option("--timeout <ms>", "per-dispatch time limit (simulator)", intOption(1))
    .option(
      "--reference-timeout <seconds>",
      "time limit of one reference request, PyTorch or MLX (default 120)",
      secondsOption,
    )
    .option("--workspace <dir>", "the workspace the problem lands in");
  return command;
}

export function welderCli(setExit: (code: number) => void) {
  const cmd = new Command("welder")
    .description(
      "weld a new problem: from a description and a PyTorch reference (KernelBench's format), an LLM writes the MLX reference, the registry entry and the first kernel, each proved before anything lands",
    )
    .argument("<name>", "the new problem's name (an identifier)")
    .option("--description <text>", "what the operation computes, in a line")
    .option(
      "--reference <file.py>",
      "the PyTorch reference: class Model(nn.Module) with forward, get_inputs(), get_init_inputs()",
    )
    .addOption(
      new Option("--set <set>", "the set it joins (default standard)").choices(PROBLEM_SETS),
    )
    .option(
      "--polish",
      "tidy an existing kernel for review (re-verified), then regenerate the docs",
    )
    .option("--json", "print the result as one JSON object on stdout");
  return withWeldOptions(cmd)
    .addHelpText("after", `\n${EXIT_CODES_HELP}`)
    .action(async (name, opts) => {
      const { welderCommand } = await import("../welder/command.ts");
      setExit(await welderCommand(name, opts as WelderFlags));
    });
}
