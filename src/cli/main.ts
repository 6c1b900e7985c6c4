/**
 * The command line: `metalbench <kernel...>` benchmarks, plus list, doctor,
 * setup and docs. Parsing and wiring only; the work is in the rooms below.
 */
import { Command, Option } from "@commander-js/extra-typings";
import { CliError, EXIT, EXIT_CODES_HELP } from "./exit_codes.ts";
import { benchCommand } from "./bench_command.ts";
import { listCommand } from "./list_command.ts";
import { doctorCommand } from "./doctor_command.ts";
import { setupCommand } from "./setup_command.ts";
import { docsCommand } from "./docs_command.ts";
import { initCommand } from "./init_command.ts";
import { agentCli } from "./agent_cli.ts";
import { welderCli } from "./welder_command.ts";
import { importCli } from "./import_command.ts";
import { intOption, secondsOption } from "./options.ts";
import { TARGETS } from "../store/schema.ts";
import { PROBLEM_SETS, SIZE_NAMES } from "../registry/schema.ts";
import { VERSION } from "../version.ts";
import { errorToExit, printError } from "./errors.ts";
import { inheritGlobalOptions } from "./global_options.ts";
import { DEFAULT_TRIALS } from "../store/protocol.ts";

export function buildProgram(setExit: (code: number) => void = () => {}) {
  const program = new Command()
    .name("metalbench")
    .version(VERSION)
    .description(
      "Benchmark hand-written Metal compute kernels against MLX references.\n" +
        "On Linux the kernels run on the MSL simulator (CPU timings, for correctness).",
    )
    .argument("[kernels...]", "problems to benchmark (see: metalbench list)")
    .option("--all", "benchmark every problem of the registry")
    .addOption(
      new Option("--set <set>", "benchmark every problem of one set").choices(PROBLEM_SETS),
    )
    .option("--mlx", "time the MLX reference only")
    .option("--metal", "run the kernel only (no Python; correctness from cached reference outputs)")
    .option("--no-session", "write neither results/ nor session.json")
    .addOption(
      new Option("--target <target>", "the headline score").choices(TARGETS).default("speed"),
    )
    .addOption(
      new Option(
        "--backend <backend>",
        "where kernels run (default: metal on Apple Silicon, else sim)",
      ).choices(["metal", "sim"] as const),
    )
    .addOption(
      new Option(
        "--size <size>",
        "problem size: bench, test, or large (memory-bound problems, >= 256 MB of traffic); default: bench on metal, test on sim",
      ).choices(SIZE_NAMES),
    )
    .option("--iters <n>", "timed samples (up to 1000000)", intOption(1, 1_000_000))
    .option("--warmup <n>", "untimed samples first (up to 100000)", intOption(0, 100_000))
    .option(
      "--batch <k>",
      "launches per sample for the batched clock (up to 4096)",
      intOption(1, 4096),
    )
    .option(
      "--time-budget <seconds>",
      "stop timing a kernel after this long, keeping the samples so far (default 120)",
      secondsOption,
    )
    .addOption(
      new Option("--clock <clock>", "batched: K launches then one wait; per-launch: one wait each")
        .choices(["batched", "per-launch"] as const).default("batched" as const),
    )
    .option(
      "--trials <n>",
      "correctness trials, each with fresh inputs (up to 64)",
      intOption(1, 64),
      DEFAULT_TRIALS,
    )
    .option(
      "--seed <n>",
      "seed of the first trial's inputs, to reproduce a run (default: drawn fresh; a run with --seed stays off the leaderboard)",
      intOption(0),
    )
    .option(
      "--cold-start",
      "also measure first-launch latency (compile, first run, first MLX call)",
    )
    .option(
      "--variant <chip>",
      "use the kernel variant for this chip (e.g. m4) instead of the detected one",
    )
    .option(
      "--timeout <ms>",
      "per-dispatch time limit (simulator; Metal waits this long)",
      intOption(1),
    )
    .option(
      "--reference-timeout <seconds>",
      "time limit of one MLX reference request (load, run, time); default 120",
      secondsOption,
    )
    .option(
      "--fast-math",
      "compile the kernels with fast math (default: off, as MLX; a problem may opt in)",
    )
    .option(
      "--gputracer <path>",
      "capture one run of the kernel into a .gputrace (Metal; needs MTL_CAPTURE_ENABLED=1)",
    )
    .option(
      "--isolate-references",
      "a fresh MLX worker for every problem (default: reuse it while the references leave no trace)",
    )
    .option("--json", "print one JSON event a line on stdout: start, each run as it ends, summary")
    .option(
      "--report <path>",
      "write the summary and records as JSON (a folder: <YYYY-MM-DD>.json)",
    )
    .option("--workspace <dir>", "the workspace (default: the one around the current folder)")
    .addHelpText("after", `\n${EXIT_CODES_HELP}`)
    .showSuggestionAfterError()
    .enablePositionalOptions()
    .hook("preAction", inheritGlobalOptions)
    .action(async (kernels, opts) => {
      setExit(await benchCommand(kernels, opts));
    });

  program
    .command("list")
    .description("list the problems, their sets and per-chip variants")
    .addOption(new Option("--set <set>", "only this set").choices(PROBLEM_SETS))
    .option("--json", "as JSON")
    .option("--workspace <dir>", "the workspace")
    .action(async (opts) => {
      setExit(await listCommand(opts));
    });

  program
    .command("doctor")
    .description("check every prerequisite and print the exact fix for each missing one")
    .addOption(new Option("--backend <backend>").choices(["metal", "sim"] as const))
    .option("--workspace <dir>", "the workspace to check")
    .action(async (opts) => {
      setExit(await doctorCommand(opts));
    });

  program
    .command("setup")
    .description("create the Python environment with MLX and numpy, and build the bridge if needed")
    .option("--quiet", "print nothing when everything is ready")
    .option(
      "--torch",
      "also install CPU PyTorch, for the Welder's references (about 4 GB on Linux)",
    )
    .action(async (opts) => {
      setExit(await setupCommand(opts));
    });

  program
    .command("init")
    .description("copy the built-in suite into an editable workspace")
    .argument("[dir]", "the folder (default: the current one)")
    .action(async (dir) => {
      setExit(await initCommand(dir));
    });

  program.addCommand(agentCli(setExit));
  program.addCommand(welderCli(setExit));
  program.addCommand(importCli(setExit));

  program
    .command("docs")
    .description("regenerate best_times.md, LINK.md and KERNELS.md")
    .option("--workspace <dir>", "the workspace")
    .action(async (opts) => {
      setExit(await docsCommand(opts));
    });

  return program;
}

export type BenchFlags = ReturnType<ReturnType<typeof buildProgram>["opts"]>;

/** Run the CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  let exitCode: number = EXIT.OK;
  const program = buildProgram((code) => (exitCode = code));
  program.exitOverride();
  program.configureOutput({
    writeErr: (s) => Deno.stderr.writeSync(new TextEncoder().encode(s)),
    writeOut: (s) => Deno.stdout.writeSync(new TextEncoder().encode(s)),
  });
  try {
    await program.parseAsync(args, { from: "user" });
    return exitCode;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (typeof code === "string" && code.startsWith("commander.")) {
      // Help and version exit 0; commander already printed the message.
      return code === "commander.helpDisplayed" || code === "commander.version" ||
          code === "commander.help"
        ? EXIT.OK
        : EXIT.USAGE;
    }
    if (e instanceof CliError) {
      printError(e.message, e.fix);
      return e.code;
    }
    return errorToExit(e);
  }
}
