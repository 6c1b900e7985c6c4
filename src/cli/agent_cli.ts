/**
 * The `metalbench agent` command line: its options and subcommands. The
 * implementation (the loop, the LLM SDKs) is imported only when an agent
 * command runs, so `metalbench relu` does not pay for loading it.
 */
import { Command, Option, type OptionValues } from "@commander-js/extra-typings";
import { EXIT_CODES_HELP } from "./exit_codes.ts";
import { intOption, secondsOption } from "./options.ts";
import { SIZE_NAMES } from "../registry/schema.ts";
import type { ProviderFlags } from "./agent_command.ts";

/**
 * The LLM provider's options, shared by `metalbench agent`, `welder` and
 * `import`: one set of names, parsers and help. Typed by their signature
 * (ProviderFlags): commander's typed chain over a generic command does not
 * finish type checking.
 */
export function withProviderOptions<
  // deno-lint-ignore no-explicit-any
  Args extends any[],
  Opts extends OptionValues,
  GlobalOpts extends OptionValues,
>(command: Command<Args, Opts, GlobalOpts>): Command<Args, Opts & ProviderFlags, GlobalOpts> {
  // deno-lint-ignore no-explicit-any
  const cmd = command as any;
  return cmd
    .addOption(
      new Option("--provider <name>", "the LLM (default openai, or METALBENCH_PROVIDER)").choices(
        ["openai", "anthropic", "openai-compatible", "command"] as const,
      ),
    )
    .option("--model <name>", "the model (default per provider, or METALBENCH_MODEL)")
    .option(
      "--base-url <url>",
      "the server (openai-compatible: required, e.g. http://127.0.0.1:11434/v1)",
    )
    .option(
      "--api-key-env <NAME>",
      "the variable holding the key (default OPENAI_API_KEY / ANTHROPIC_API_KEY)",
    )
    .option("--command <program>", "provider command: the program that reads the prompt on stdin")
    .option("--max-tokens <n>", "largest reply per call (default 8192)", intOption(1, 1_000_000))
    .option(
      "--max-tokens-total <n>",
      "tokens for the whole run; a clean stop when spent",
      intOption(1),
    )
    .option("--llm-timeout <seconds>", "time limit of one LLM call (default 600)", secondsOption)
    .option(
      "--llm-retries <n>",
      "retries of a failed LLM call (429, 5xx, network; default 2)",
      intOption(0, 20),
    )
    .addOption(new Option("--stream <mode>", "stream replies (auto: long ones)").choices(
      ["auto", "always", "never"] as const,
    ));
}

/** `metalbench agent`, with `agent history` and `agent plot`, for main.ts to add. */
export function agentCli(setExit: (code: number) => void) {
  const options = new Command("agent")
    .description(
      "Agent Steel: profile, rewrite, verify and keep or revert a kernel with an LLM, round after round",
    )
    .argument("[kernels...]", "kernels to optimize (relu or relu,softmax)")
    .option(
      "--loop",
      "run rounds until --max-rounds, --patience or the token budget (default: one round)",
    )
    .option("--max-rounds <n>", "rounds this run (default 5 with --loop)", intOption(1, 10_000))
    .option(
      "--patience <k>",
      "stop after k rounds in a row without a gain (default 3)",
      intOption(1, 10_000),
    )
    .option(
      "--candidates <k>",
      "candidates written in parallel each round (default 2)",
      intOption(1, 64),
    )
    .option(
      "--retries <n>",
      "retries of a candidate fed back its error (default 4)",
      intOption(0, 20),
    )
    .option("--parallel <n>", "kernels optimized at once (default 1)", intOption(1, 64))
    .option("--no-diagnosis", "skip the LLM's diagnosis of the profile facts")
    .option("--resume", "continue the kernel's lineage from its AttemptDB")
    .option("--rebaseline", "continue the lineage from the kernel file as it is (a new baseline)")
    .option("--wait", "wait for a lineage another process holds instead of stopping")
    .option("--json", "print events on stdout, one JSON object a line");
  const agent = withProviderOptions(options)
    .addOption(new Option("--backend <backend>").choices(["metal", "sim"] as const))
    .addOption(new Option("--size <size>").choices(SIZE_NAMES))
    .option(
      "--warmup <n>",
      "untimed samples before timing (verifier default)",
      intOption(0, 100_000),
    )
    .option(
      "--iters <n>",
      "timed samples of each kernel (verifier default)",
      intOption(1, 1_000_000),
    )
    .option("--batch <k>", "launches per sample for the batched clock", intOption(1, 4096))
    .addOption(
      new Option("--clock <clock>").choices(["batched", "per-launch"] as const).default(
        "batched" as const,
      ),
    )
    .option("--timeout <ms>", "per-dispatch time limit (simulator)", intOption(1))
    .option(
      "--reference-timeout <seconds>",
      "time limit of one MLX reference request",
      secondsOption,
    )
    .option("--fast-math", "compile with fast math (default: off, as MLX)")
    .option("--workspace <dir>", "the workspace")
    .addHelpText("after", `\n${EXIT_CODES_HELP}`)
    .enablePositionalOptions()
    .action(async (kernels, opts) => {
      const { agentCommand } = await import("./agent_command.ts");
      setExit(await agentCommand(kernels, opts));
    });

  agent
    .command("history")
    .description("a kernel's AttemptDB as a table")
    .argument("<kernel>")
    .option("--json", "one entry a line")
    .option("--bucket <bucket>", "the chip bucket (default: the only one recorded)")
    .option("--workspace <dir>", "the workspace")
    .action(async (kernel, opts) => {
      const { historyCommand } = await import("./agent_command.ts");
      setExit(await historyCommand(kernel, opts));
    });

  agent
    .command("plot")
    .description("best-so-far gain over the baseline per round, one line per kernel")
    .argument("<kernels...>")
    .requiredOption("-o, --output <file>", "an .svg, or a .png (needs a converter)")
    .option("--bucket <bucket>", "the chip bucket (default: the only one recorded)")
    .option("--workspace <dir>", "the workspace")
    .action(async (kernels, opts) => {
      const { plotCommand } = await import("./agent_command.ts");
      setExit(await plotCommand(kernels, opts));
    });
  return agent;
}
