/**
 * Exit codes scripts can rely on (also in the README and `--help`).
 */
export const EXIT = {
  /** Everything ran and every kernel checked was correct. */
  OK: 0,
  /** A kernel was incorrect, faulted, timed out or did not compile. */
  KERNEL_FAILED: 1,
  /** Bad command line: unknown kernel, bad flag value. */
  USAGE: 2,
  /** The environment is not ready: Python/MLX, clang, bridge, device. */
  ENVIRONMENT: 3,
  /** A workspace file is invalid: registry entry, session.json, results file. */
  DATA: 4,
  /**
   * An MLX reference failed: it raised, hung past --reference-timeout or
   * crashed its worker. Wins over KERNEL_FAILED when both happen in one run:
   * the run could not judge every kernel.
   */
  REFERENCE_FAILED: 5,
  /**
   * The GPU was lost mid-run (Metal revoked the process's access after GPU
   * faults or time-outs): the run stopped; the kernels before were saved.
   */
  DEVICE_LOST: 6,
  /**
   * Agent Steel: a kernel's lineage is being optimized by another process
   * (the message names its pid); nothing was done. `--wait` waits instead.
   */
  LINEAGE_BUSY: 7,
  /**
   * Agent Steel: --max-tokens-total was spent; the run stopped cleanly
   * after recording every attempt. `--resume` continues.
   */
  BUDGET_SPENT: 8,
  /**
   * Welder: a weld failed at stage 0, 1 or 2 (the message says which and
   * why); the workspace's problem files are unchanged. `import` exits so
   * when any problem failed.
   */
  WELD_FAILED: 9,
  /** A bug in MetalBench itself. */
  INTERNAL: 70,
  /** Hung up (SIGHUP: the terminal or SSH session went away). */
  HANGUP: 129,
  /** Interrupted (Ctrl-C, SIGINT). */
  INTERRUPTED: 130,
  /** Terminated (SIGTERM). */
  TERMINATED: 143,
} as const;

export const EXIT_CODES_HELP = `Exit codes:
  0    ok: every kernel run was correct
  1    a kernel was incorrect, faulted, timed out or did not compile
  2    usage error (unknown kernel, bad option)
  3    environment not ready (Python/MLX, clang, bridge, device): see metalbench doctor
  4    invalid workspace file (registry, session.json, results), left untouched
  5    an MLX reference failed: raised, hung or crashed (wins over 1 when both happen)
  6    the GPU was lost mid-run (access revoked after GPU faults): run the rest again
  7    agent: the kernel's lineage is held by another process (--wait to wait)
  8    agent: the token budget (--max-tokens-total) is spent; --resume continues
  9    welder/import: a weld failed (the stage and reason are printed); workspace unchanged
  70   internal error
  129  hung up (SIGHUP)      130  interrupted (Ctrl-C)      143  terminated (SIGTERM)`;

/** An error that ends the program with a one-line message and an exit code. */
export class CliError extends Error {
  override name = "CliError";
  constructor(message: string, readonly code: number, readonly fix?: string) {
    super(message);
  }
}
