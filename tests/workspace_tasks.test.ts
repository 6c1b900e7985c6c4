/**
 * A workspace made by `metalbench init` scripts itself: its deno.json has
 * tasks that call the metalbench that made it, and `deno task nightly`
 * writes a dated report that matches its checked-in JSON Schema (checked
 * with a real JSON Schema validator, ajv).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Ajv2020 } from "ajv/dist/2020.js";
import { metalbench } from "./_cli.ts";
import { BenchReport } from "../src/api/events.ts";
import { localDate } from "../src/api/report.ts";
import { workspaceConfig } from "../src/api/workspace_tasks.ts";

const LAUNCHER = new URL("../metalbench", import.meta.url).pathname;
const REPORT_SCHEMA = JSON.parse(
  await Deno.readTextFile(new URL("../schemas/report.schema.json", import.meta.url)),
);
/** deno on PATH, as a user who runs `deno task` has it. */
const ENV = { PATH: `${join(Deno.execPath(), "..")}:${Deno.env.get("PATH")}` };

async function denoTask(cwd: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", ...args],
    cwd,
    env: ENV,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("init writes tasks that call this clone's launcher; deno task nightly writes a dated report valid against its JSON Schema", async () => {
  const parent = await Deno.makeTempDir({ prefix: "mb-init-" });
  const ws = join(parent, "my bench"); // a space in the path must survive the task shell
  try {
    const init = await metalbench(["init", ws]);
    assert.equal(init.code, 0, init.stderr);
    const config = JSON.parse(await Deno.readTextFile(join(ws, "deno.json")));
    assert.deepEqual(Object.keys(config.tasks).sort(), [
      "agent",
      "all",
      "bench",
      "docs",
      "nightly",
    ]);
    for (const t of Object.values(config.tasks) as { command: string }[]) {
      assert.ok(t.command.startsWith(`'${LAUNCHER}'`), t.command);
    }

    const day = localDate(new Date());
    const r = await denoTask(ws, ["nightly", "--backend=sim", "--iters=2", "--warmup=0"]);
    const reports = await Array.fromAsync(Deno.readDir(join(ws, "reports")));
    // Written atomically: the report alone, no temporary file beside it.
    assert.equal(reports.length, 1, reports.map((e) => e.name).join(" "));
    const name = reports[0].name;
    assert.ok([`${day}.json`, `${localDate(new Date())}.json`].includes(name), name);
    const report = JSON.parse(await Deno.readTextFile(join(ws, "reports", name)));

    const validate = new Ajv2020({ allErrors: true }).compile(REPORT_SCHEMA);
    assert.ok(validate(report), JSON.stringify(validate.errors?.slice(0, 3)));
    const typed = BenchReport.parse(report);
    assert.equal(typed.exitCode, r.code, r.stderr);
    assert.equal(typed.workspace, ws);
    assert.equal(typed.backend, "sim");
    const listed = await metalbench(["list", "--json", "--workspace", ws]);
    const names = (JSON.parse(listed.stdout).problems as { name: string }[]).map((p) => p.name);
    assert.deepEqual(typed.records.map((x) => x.kernel), names, "every problem of the suite ran");
    assert.equal(typed.summary.problems, names.length);
    assert.ok(
      typed.records.every((x) => x.settings.iters === 2),
      "the task passes its arguments on",
    );

    // The schema is not a formality: a report with a wrong field fails it.
    assert.equal(validate({ ...typed, exitCode: "0" }), false);
    assert.equal(validate({ ...typed, records: [{ ...typed.records[0], kernel: 1 }] }), false);
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("init leaves a deno.json of the user's own untouched", async () => {
  const ws = await Deno.makeTempDir({ prefix: "mb-init-" });
  try {
    const mine = '{ "tasks": { "mine": "echo mine" } }\n';
    await Deno.writeTextFile(join(ws, "deno.json"), mine);
    const init = await metalbench(["init", ws]);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(await Deno.readTextFile(join(ws, "deno.json")), mine);
    assert.match(init.stderr, /has a deno\.json already; no tasks were added/);
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});

Deno.test("a task calls the binary by its path word for word: quotes, $ and spaces run nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mb-tasks-" });
  try {
    // A binary whose path an attacker (or bad luck) named: it records its arguments.
    const bin = join(dir, `it's $(touch pwned) mb`);
    await Deno.writeTextFile(bin, `#!/bin/sh\nprintf '%s\\n' "$@" > "${dir}/args"\n`);
    await Deno.chmod(bin, 0o755);
    await Deno.writeTextFile(join(dir, "deno.json"), workspaceConfig(bin));
    const r = await denoTask(dir, ["nightly", "--iters=2"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      await Deno.readTextFile(join(dir, "args")),
      "--all\n--report\nreports/\n--iters=2\n",
    );
    assert.ok(!(await Array.fromAsync(Deno.readDir(dir))).some((e) => e.name === "pwned"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
