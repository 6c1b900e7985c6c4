/**
 * Every error a user can hit ends as one line on stderr (what went wrong,
 * and the fix when there is one) and a documented exit code.
 */
import { EXIT } from "./exit_codes.ts";
import { SetupError } from "../reference/python_env.ts";
import { WorkerError } from "../reference/client.ts";
import { ReferenceProblemError } from "../bench/reference_side.ts";
import { BackendError } from "../backend/select.ts";
import { RegistryError } from "../registry/load.ts";
import { ProblemError } from "../registry/problem.ts";
import { WorkspaceError } from "../registry/workspace.ts";
import { SessionFileError } from "../store/session.ts";
import { ResultsFileError } from "../store/results.ts";

/** One line: what went wrong, then what to do about it. */
export function printError(message: string, fix?: string) {
  console.error(`metalbench: ${message}${fix ? ` — fix: ${fix}` : ""}`);
}

/** Print `e` as a user-facing error and return its exit code. */
export function errorToExit(e: unknown): number {
  if (e instanceof SetupError) {
    printError(e.problem, e.fix);
    return EXIT.ENVIRONMENT;
  }
  if (e instanceof BackendError) {
    printError(e.message, e.fix);
    return EXIT.ENVIRONMENT;
  }
  if (e instanceof ReferenceProblemError) {
    printError(e.message); // it names the reference and carries its fix
    return EXIT.REFERENCE_FAILED;
  }
  if (e instanceof WorkerError) {
    printError(
      `the MLX worker stopped (${e.reason}): ${e.message}`,
      "metalbench doctor",
    );
    return EXIT.ENVIRONMENT;
  }
  if (
    e instanceof RegistryError || e instanceof ProblemError || e instanceof SessionFileError ||
    e instanceof ResultsFileError || e instanceof WorkspaceError
  ) {
    printError(e.message);
    return EXIT.DATA;
  }
  const err = e instanceof Error ? e : new Error(String(e));
  printError(`internal error: ${err.message} (please report it with the trace below)`);
  console.error(err.stack);
  return EXIT.INTERNAL;
}
