/**
 * MetalBench as a library: benchmark problems, list them, read and merge
 * the files it writes, and the zod schemas of every format (see the README,
 * "Scripting"). The CLI (main.ts) runs on the same code.
 *
 * @example
 * ```ts
 * import { benchmark, readSession } from "metalbench";
 * const { summary } = await benchmark({ problems: ["relu"], backend: "sim" });
 * ```
 */
export { benchmark, listProblems } from "./src/api/bench.ts";
export type { BenchmarkOptions, BenchmarkResult, ProblemInfo } from "./src/api/bench.ts";
export {
  mergeResults,
  mergeSessions,
  readAllResults,
  readAttempts,
  readResultsFile,
  readSession,
} from "./src/api/files.ts";
export type { AttemptRead } from "./src/agent/attempts/db.ts";
export type { Summary } from "./src/bench/session_run.ts";
export { DeviceLostError } from "./src/bench/session_run.ts";

// File formats and streams: validate what a script reads with these.
export {
  ResultsFile,
  RunRecord,
  SCHEMA_VERSION,
  Session,
  SessionEntry,
} from "./src/store/schema.ts";
export { AttemptEntry } from "./src/agent/attempts/schema.ts";
export {
  AgentEvent,
  BenchEvent,
  BenchReport,
  type BenchStream,
  EVENTS_VERSION,
  parseBenchStream,
  RunSummary,
} from "./src/api/events.ts";
export { EXIT } from "./src/cli/exit_codes.ts";
export { VERSION } from "./src/version.ts";
