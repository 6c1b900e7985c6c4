/**
 * The report `--report` writes (the workspace's `nightly` task): one file
 * with the summary and every record of a run, written atomically so a
 * reader never sees half of it.
 */
import { join } from "node:path";
import { atomicWrite } from "../store/files.ts";
import type { RunRecord } from "../store/schema.ts";
import type { Summary } from "../bench/session_run.ts";
import { VERSION } from "../version.ts";
import { type BenchReport, EVENTS_VERSION } from "./events.ts";

/** YYYY-MM-DD of `d` in local time: a nightly run is named for the night it ran. */
export function localDate(d: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
}

/** A path ending in "/" or naming a folder gets the dated file name inside it. */
function reportPath(given: string, date: string): string {
  let folder = given.endsWith("/");
  try {
    folder ||= Deno.statSync(given).isDirectory;
  } catch { /* a file to create */ }
  return folder ? join(given, `${date}.json`) : given;
}

export interface ReportInput {
  startedAt: Date;
  workspace: string;
  mode: BenchReport["mode"];
  backend: BenchReport["backend"];
  exitCode: number;
  summary: Summary;
  records: RunRecord[];
}

/** Write the report; returns its path (a run of the same date replaces it). */
export async function writeReport(given: string, r: ReportInput): Promise<string> {
  const date = localDate(r.startedAt);
  const report: BenchReport = {
    version: EVENTS_VERSION,
    kind: "metalbench-report",
    date,
    startedAt: r.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    metalbench: VERSION,
    workspace: r.workspace,
    mode: r.mode,
    backend: r.backend,
    exitCode: r.exitCode,
    summary: r.summary,
    records: r.records,
  };
  const path = reportPath(given, date);
  await atomicWrite(path, JSON.stringify(report, null, 1) + "\n");
  return path;
}
