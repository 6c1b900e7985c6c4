/**
 * `deno task schemas`: write schemas/*.schema.json, the JSON Schemas of
 * every format MetalBench writes, generated from their zod schemas (for
 * scripts in other languages). tests/api.test.ts fails when the checked-in
 * files differ from what this generates.
 */
import { z } from "zod";
import { ResultsFile, RunRecord, SCHEMA_VERSION, Session } from "../src/store/schema.ts";
import { AttemptEntry } from "../src/agent/attempts/schema.ts";
import { AgentEvent, BenchEvent, BenchReport, EVENTS_VERSION } from "../src/api/events.ts";

const FORMATS: Record<string, { schema: z.ZodType; title: string; version: number }> = {
  "run-record": {
    schema: RunRecord,
    title: "One benchmark run (results/<bucket>/<kernel>.json keeps every one)",
    version: SCHEMA_VERSION,
  },
  "results-file": {
    schema: ResultsFile,
    title: "results/<bucket>/<kernel>.json",
    version: SCHEMA_VERSION,
  },
  "session": { schema: Session, title: "session.json, the leaderboard", version: SCHEMA_VERSION },
  "attempt-entry": {
    schema: AttemptEntry,
    title: "One line of the AttemptDB (.agent-steel/history/<kernel>__<bucket>.jsonl)",
    version: 1,
  },
  "bench-event": {
    schema: BenchEvent,
    title: "One line of `metalbench … --json`",
    version: EVENTS_VERSION,
  },
  "agent-event": {
    schema: AgentEvent,
    title: "One line of `metalbench agent … --json`",
    version: EVENTS_VERSION,
  },
  "report": {
    schema: BenchReport,
    title: "The report `--report` writes (the workspace's nightly task)",
    version: EVENTS_VERSION,
  },
};

/** File name → text of every schema. Input shapes: a field with a default may be absent. */
export function schemaFiles(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(FORMATS).map(([name, f]) => {
      const json = z.toJSONSchema(f.schema, { io: "input", target: "draft-2020-12" });
      const doc = {
        $schema: json.$schema,
        title: `${f.title} (format version ${f.version})`,
        ...json,
      };
      return [`${name}.schema.json`, JSON.stringify(doc, null, 2) + "\n"];
    }),
  );
}

export const SCHEMAS_DIR = new URL("../schemas/", import.meta.url);

if (import.meta.main) {
  await Deno.mkdir(SCHEMAS_DIR, { recursive: true });
  for (const [name, text] of Object.entries(schemaFiles())) {
    await Deno.writeTextFile(new URL(name, SCHEMAS_DIR), text);
    console.error(`schemas: wrote schemas/${name}`);
  }
}
