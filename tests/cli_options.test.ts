/**
 * Options before a command mean what they mean after it (issue 10, part 6),
 * and `--size large` against problems without one. Real CLI processes, real
 * workspaces; the bench run is the real simulator and MLX worker.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { makeWorkspace } from "./_workspace.ts";
import { metalbench } from "./_cli.ts";
import { attempt } from "./_attempts.ts";

const repo = (path: string) => new URL(`../${path}`, import.meta.url);
const RELU_METAL = await Deno.readTextFile(repo("kernels/common/relu.metal"));
const RELU_PY = await Deno.readTextFile(repo("references/common/relu.py"));

/** A workspace with one problem whose name is its own (so a listing shows which workspace it read). */
async function workspaceWith(problem: string) {
  return await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: { [problem]: { template: "elementwise", description: problem, function: "f" } },
    }),
  });
}

Deno.test("--workspace before list, docs or agent history means what it means after", async () => {
  const here = await workspaceWith("only_in_cwd");
  const there = await workspaceWith("only_in_there");
  const run = (args: string[]) => metalbench(args, { cwd: here });

  for (
    const args of [
      ["--workspace", there, "list"],
      [`--workspace=${there}`, "list"],
      ["list", "--workspace", there],
      ["--workspace", there, "list", "--workspace", there],
    ]
  ) {
    const r = await run(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, /only_in_there/, args.join(" "));
    assert.doesNotMatch(r.stdout, /only_in_cwd/, args.join(" "));
  }

  const docs = await run(["--workspace", there, "docs"]);
  assert.equal(docs.code, 0, docs.stderr);
  assert.match(await Deno.readTextFile(join(there, "KERNELS.md")), /only_in_there/);
  assert.equal(existsSync(join(here, "KERNELS.md")), false, "docs wrote the other workspace");

  const db = join(there, ".agent-steel/history/relu__sim-x86_64.jsonl");
  await Deno.mkdir(join(there, ".agent-steel/history"), { recursive: true });
  const lines = [await attempt({ round: 0 }), await attempt({ round: 1, ms: 0.5 })];
  await Deno.writeTextFile(db, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");
  for (
    const args of [
      ["--workspace", there, "agent", "history", "relu"],
      ["agent", "--workspace", there, "history", "relu"],
      ["agent", "history", "relu", "--workspace", there],
    ]
  ) {
    const r = await run(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stdout, /relu \(sim-x86_64\): 2 attempts over 1 round/, args.join(" "));
  }
});

Deno.test("--workspace before doctor checks that workspace", async () => {
  const here = await workspaceWith("only_in_cwd");
  const there = await workspaceWith("only_in_there");
  for (const args of [["--workspace", there, "doctor"], ["doctor", "--workspace", there]]) {
    const r = await metalbench([...args, "--backend", "sim"], { cwd: here });
    assert.match(r.stdout, new RegExp(`workspace +${there}: 1 problems`), r.stdout + r.stderr);
  }
});

Deno.test("an option before a command it does not take, or given twice differently, exits 2 in one line", async () => {
  const ws = await workspaceWith("p");
  const cases: [string[], RegExp][] = [
    [
      ["--iters", "3", "list"],
      /--iters \(given before 'list'\) is not an option of `metalbench list`/,
    ],
    [["--no-session", "list"], /--no-session .* not an option of `metalbench list`/],
    [["--all", "agent", "history", "relu"], /--all .* not an option of `metalbench agent history`/],
    [
      ["agent", "--loop", "history", "relu"],
      /--loop .* not an option of `metalbench agent history`/,
    ],
    [["--json", "doctor"], /--json .* not an option of `metalbench doctor`/],
    [["--workspace", ws, "list", "--workspace", "/elsewhere"], /--workspace given twice/],
  ];
  for (const [args, message] of cases) {
    const r = await metalbench(args, { cwd: ws });
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line: ${r.stderr}`);
    assert.equal(r.stdout, "", "nothing ran");
  }
  // One the command has, given before it: --set and --json reach list.
  const r = await metalbench(["--set", "standard", "--json", "list", "--workspace", ws]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout).problems, []);
});

/** relu with a (tiny, for the simulator) large size, and dot_product without one. */
async function largeWorkspace() {
  return await makeWorkspace({
    "registry/common.json": JSON.stringify({
      set: "common",
      problems: {
        relu: {
          template: "elementwise",
          description: "relu",
          function: "relu_f32",
          sizes: { large: { M: 2, N: 515 } },
        },
        dot_product: {
          description: "no large size",
          sizes: { bench: { N: 8 }, test: { N: 8 } },
          inputs: [{ name: "x", shape: ["N"] }],
          outputs: [{ name: "y", shape: [1] }],
          dispatches: [{
            function: "f",
            buffers: [{ index: 0, tensor: "x" }, { index: 1, tensor: "y" }],
            grid: [1],
            threadgroup: [1],
            mode: "threads",
          }],
          flops: "N",
          bytes: "4*N",
        },
      },
    }),
    "kernels/common/relu.metal": RELU_METAL,
    "references/common/relu.py": RELU_PY,
  });
}

Deno.test("--size large: a problem named without one is a usage error naming it", async () => {
  const ws = await largeWorkspace();
  for (
    const args of [
      ["dot_product", "--size", "large"],
      ["relu", "dot_product", "--size", "large"],
      ["--size", "large", "agent", "dot_product"],
    ]
  ) {
    const r = await metalbench([...args, "--backend", "sim", "--workspace", ws]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(
      r.stderr,
      /^metalbench: dot_product has no 'large' size \(only memory-bound problems have one\) — fix: use --size bench, or give the entry a sizes\.large in .*common\.json\n$/,
    );
  }
  const bad = await metalbench(["relu", "--size", "huge", "--workspace", ws]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /Allowed choices are bench, test, large/);
});

Deno.test("--set --size large runs the problems that have it at that size and skips the rest with a note", async () => {
  const ws = await largeWorkspace();
  const r = await metalbench(
    ["--set", "common", "--size", "large", "--backend", "sim", "--iters", "2"],
    { cwd: ws },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stderr,
    /--size large: skipping 1 problem\(s\) without a 'large' size: dot_product\n/,
  );
  assert.match(r.stdout, /size +: large \(M=2, N=515\)/);
  assert.match(r.stdout, /correct/);
  // The leaderboard keeps large-size runs apart from the other sizes.
  const session = JSON.parse(await Deno.readTextFile(join(ws, "session.json")));
  const [bucket] = Object.values(session.buckets) as Record<string, { settingsKey: string }>[];
  assert.deepEqual(Object.keys(bucket), ["relu"]);
  assert.match(bucket.relu.settingsKey, /\|size=large\|/);
});
