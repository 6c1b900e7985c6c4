/**
 * Agent Steel's steps, one by one: the profiler's facts (from a real relu
 * run on the simulator with the real MLX worker) and its diagnosis call (to
 * a real HTTP server on loopback), the optimizer's prompts, reply parsing
 * and staging, and the verifier on real kernels: faster, slower, wrong,
 * cheating, not compiling — and the keep rule on samples made to test it.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { assetPath } from "../src/backend/assets.ts";
import { clockOf, Harness, RUN_DEFAULTS } from "../src/bench/harness.ts";
import { loadRegistry, sized } from "../src/registry/load.ts";
import { workspaceAt } from "../src/registry/workspace.ts";
import { includesFor } from "../tools/compile.ts";
import {
  BUILTIN_PROMPTS_DIR,
  builtinPromptPath,
  fenced,
  fillTemplate,
  loadPrompts,
  PROMPT_NAMES,
  PromptError,
} from "../src/agent/prompts.ts";
import {
  diagnose,
  measureLaunchOverhead,
  type ProfileFacts,
  profileFacts,
  renderFacts,
} from "../src/agent/profiler/profile.ts";
import {
  buildRetryRequest,
  buildRewriteRequest,
  chipFactsText,
  functionNamesOf,
  historyOf,
  parseRewriteReply,
  registryEntryText,
  type RewriteContext,
  stageCandidate,
  StagingError,
  type TranscriptCall,
} from "../src/agent/optimizer/optimizer.ts";
import {
  binomialTail,
  judgeRecord,
  keepRule,
  verify,
  verifyOptions,
} from "../src/agent/verifier/verifier.ts";
import { openProvider, ProviderError } from "../src/agent/providers/provider.ts";
import { startLlmStub } from "./_llm_stub.ts";
import { buildSim } from "./_sim_lib.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const registry = loadRegistry(workspaceAt(ROOT));
const relu = registry.problems.get("relu")!;
const RELU_METAL = await Deno.readTextFile(join(ROOT, "kernels/common/relu.metal"));
const RELU_PY = await Deno.readTextFile(relu.referencePath);

/** A relu with the suite's bindings and grid (4 elements per thread), given the body for element j. */
const reluKernel = (body: string, prelude = "") =>
  `#include <metal_stdlib>
using namespace metal;
${prelude}
kernel void relu_f32(device const float* x [[buffer(0)]],
                     device float* y [[buffer(1)]],
                     constant uint& n [[buffer(2)]],
                     uint gid [[thread_position_in_grid]]) {
  for (uint j = gid * 4; j < min(gid * 4 + 4, n); ++j) {
    ${body}
  }
}
`;

/** Correct, and slow: 64 wasted reads per element that the compiler cannot drop. */
const SLOW_RELU = reluKernel(`float acc = 0.0f;
    for (uint r = 0; r < 64; ++r) acc += x[(j + r * 7) % n];
    float v = x[j];
    if (acc == 1.5e38f) v = -v; // never true: keeps the loop alive
    y[j] = v < 0.0f ? 0.0f : v;`);
/** Wrong: copies x. */
const WRONG_RELU = reluKernel("y[j] = x[j];");
/** Does the work only where the output does not already hold a value (NaN poison). */
const SKIP_IF_WRITTEN = reluKernel("if (!isnan(y[j])) continue; y[j] = x[j] < 0.0f ? 0.0f : x[j];");
const BROKEN = reluKernel("y[j] = undeclared_thing(x[j]);");

async function writeTemp(dir: string, name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await Deno.writeTextFile(path, text);
  return path;
}

function openHarness(): Promise<Harness> {
  return Harness.open({
    mode: "paired",
    backend: "sim",
    timeoutMs: 20_000,
    referenceDirs: [join(ROOT, "references/common")],
  });
}

function simOptions(iters = 20) {
  const d = RUN_DEFAULTS.sim;
  return {
    mode: "paired" as const,
    size: d.size,
    seed: 4242,
    seedSource: "random" as const,
    trials: 3,
    warmup: d.warmup,
    iters,
    clock: clockOf("batched", d.batch, "sim"),
    coldStart: false,
    target: "speed" as const,
  };
}

// ---- the profiler ---------------------------------------------------------

Deno.test("profiler: facts of a real relu run on the simulator, with an empty dispatch beside it", async () => {
  await buildSim();
  const h = await openHarness();
  try {
    const opts = simOptions(40);
    const [out] = await h.benchmark(relu, [() => ({
      path: join(ROOT, "kernels/common/relu.metal"),
      variant: "flat",
      text: RELU_METAL,
      metallib: null,
    })], opts);
    const r = out.record;
    assert.equal(r.correctness.status, "correct", r.correctness.detail);

    const overhead = await measureLaunchOverhead(h, { clock: opts.clock });
    assert.ok(overhead !== null && overhead > 0, `overhead ${overhead}`);
    const again = await measureLaunchOverhead(h, { clock: opts.clock });
    assert.equal(again, overhead, "measured once per process, then cached");

    const f = profileFacts(r, h.backend!.chip, overhead, sized(relu, opts.size));
    assert.equal(f.backend, "sim");
    assert.equal(f.simulated, true);
    assert.equal(f.chip, null);
    assert.equal(f.medianNs, r.kernelTiming!.wall.median);
    assert.equal(f.deviceMedianNs, r.kernelTiming!.device.median);
    assert.ok(f.stability !== null && f.stability >= 0 && f.stability <= 1);
    assert.equal(f.gbps, r.metrics.gbps);
    assert.equal(f.arithmeticIntensity, 3003 / 24024); // 1 FLOP per 8 bytes
    // No chip on the simulator: no peaks, no roofline, rather than made-up ones.
    assert.equal(f.pctPeakBandwidth, null);
    assert.equal(f.pctPeakCompute, null);
    assert.equal(f.ridgePoint, null);
    assert.equal(f.roofline, null);
    assert.deepEqual(f.threadsPerThreadgroup, [256, 1, 1]);
    assert.equal(f.executionWidth, 32);
    assert.equal(f.threadgroupMemoryBytes, 0);
    assert.equal(f.dispatches?.[0].grid[0], Math.ceil(3003 / 4));
    assert.equal(f.launchOverheadNs, overhead);
    assert.ok(f.overheadShare !== null && f.overheadShare > 0 && f.overheadShare <= 1);
    assert.equal(f.overheadShare, Math.min(1, overhead / f.medianNs));
    assert.deepEqual(f.correctness, { status: "correct", detail: r.correctness.detail });
    assert.ok(f.notes.some((n) => n.includes("simulated CPU times")), f.notes.join("; "));

    const text = renderFacts(f);
    assert.match(text, /MSL simulator on the CPU \(not a GPU\)/);
    assert.match(text, /simulated CPU time/);
    assert.match(text, /threadgroup 256×1×1, execution width 32/);
    assert.match(text, /roofline: unknown \(no chip peaks\)/);
    assert.match(text, /launch overhead \(an empty dispatch, same clock\): \d/);
    assert.match(text, /correctness: correct/);

    // With a chip, the peaks and the roofline class follow from the table.
    const chip = {
      name: "Apple M2 Pro",
      generation: 2 as const,
      tier: "pro" as const,
      bucket: "apple-m2-pro",
      variant: "m2",
      gpuCores: 19,
      peakGBps: 200,
      peakGflops: 6800,
    };
    const g = profileFacts({ ...r, backend: "metal" }, chip, null);
    assert.equal(g.pctPeakBandwidth, (100 * r.metrics.gbps!) / 200);
    assert.equal(g.ridgePoint, 34);
    assert.equal(g.roofline, "memory-bound");
    assert.equal(g.overheadShare, null);
    assert.ok(!g.notes.some((n) => n.includes("simulated")));
  } finally {
    await h.close();
  }
});

Deno.test("profiler: the diagnosis is one call to a real HTTP server, transcribed; a failed call is transcribed and rethrown", async () => {
  const stub = startLlmStub([
    "The kernel is launch-bound at this size.\n\nIt reads float4.",
    { status: 400 },
  ]);
  try {
    const provider = openProvider({
      provider: "openai-compatible",
      model: "stub-model",
      baseUrl: `${stub.url}/v1`,
      maxRetries: 0,
    }, () => undefined);
    const prompts = await loadPrompts(null);
    const facts = FACTS;
    const input = {
      source: RELU_METAL,
      reference: RELU_PY,
      registryEntry: registryEntryText(relu, "test"),
      kernel: "relu",
      functionNames: functionNamesOf(relu),
    };
    const calls: TranscriptCall[] = [];
    const d = await diagnose(provider, facts, input, {
      maxTokens: 700,
      prompts,
      onCall: (c) => calls.push(c),
    });
    assert.equal(d.text, "The kernel is launch-bound at this size.\n\nIt reads float4.");
    assert.equal(d.call.purpose, "diagnosis");
    assert.equal(d.call.reply, d.text);
    assert.equal(d.call.model, "stub-model");
    assert.deepEqual(calls, [d.call]);
    const req = stub.requests[0];
    assert.equal(req.maxTokens, 700);
    assert.match(req.system, /Only the Metal source changes/);
    assert.match(req.system, /`relu_f32`/);
    assert.match(req.system, /simulated CPU time/);
    const user = req.messages[0].content;
    assert.match(user, /2–3 short paragraphs/);
    assert.ok(user.includes(renderFacts(facts)), "the facts, as rendered");
    assert.ok(user.includes(RELU_METAL.trim()) && user.includes("mx.maximum(x, 0)"));
    assert.ok(user.includes("```json\n" + input.registryEntry + "\n```"));
    const entry = JSON.parse(input.registryEntry);
    assert.deepEqual(entry.resolved.dispatches[0].grid, [Math.ceil(3003 / 4), 1, 1]);
    assert.deepEqual(
      entry.resolved.dispatches[0].buffers.map((b: { tensor: string }) => b.tensor),
      [
        "x",
        "y",
      ],
    );

    await assert.rejects(
      diagnose(provider, facts, input, { maxTokens: 700, prompts, onCall: (c) => calls.push(c) }),
      (e) => e instanceof ProviderError,
    );
    assert.equal(calls.length, 2);
    assert.equal(calls[1].reply, null);
    assert.match(calls[1].error!, /ProviderError/);
  } finally {
    await stub.close();
  }
});

/** Facts as the profiler makes them on the simulator (for the steps that only render them). */
const FACTS: ProfileFacts = {
  backend: "sim",
  simulated: true,
  chip: null,
  medianNs: 7700,
  deviceMedianNs: 6300,
  stability: 0.81,
  gbps: 3.1,
  gflops: 0.39,
  pctPeakBandwidth: null,
  pctPeakCompute: null,
  arithmeticIntensity: 0.125,
  ridgePoint: null,
  roofline: null,
  threadsPerThreadgroup: [256, 1, 1],
  executionWidth: 32,
  threadgroupMemoryBytes: 0,
  launchOverheadNs: 2100,
  overheadShare: 0.27,
  correctness: { status: "correct", detail: "10 checks passed" },
  notes: ["simulated CPU times (MetalBench's MSL simulator, not a GPU): relative comparisons only"],
};

// ---- the optimizer: prompts ---------------------------------------------

function context(facts: ProfileFacts, over: Partial<RewriteContext> = {}): RewriteContext {
  return {
    kernel: "relu",
    diagnosis: "DIAGNOSIS: bandwidth-bound at 3% of peak.",
    facts,
    bestSource: RELU_METAL,
    referenceSource: RELU_PY,
    registryEntry: registryEntryText(relu, "test"),
    chipFacts: "- SIMD-group width 32\n- CHIPFACTS",
    history: {
      top: [{ technique: "TOP-TECHNIQUE float4 loads.", medianNs: 12_345, deltaPct: -8.25 }],
      failed: [{
        technique: "FAILED-TECHNIQUE half math.",
        verdict: "incorrect",
        reason: "REASON-1",
      }],
    },
    feedback: null,
    functionNames: ["relu_f32"],
    ...over,
  };
}

Deno.test("optimizer: the rewrite request carries everything in the context, and a retry feeds the failure back", async () => {
  const prompts = await loadPrompts(null);
  const facts = FACTS;
  const req = buildRewriteRequest(context(facts), prompts, 8000);
  assert.equal(req.maxTokens, 8000);
  assert.equal(req.purpose, "rewrite");
  assert.equal(req.messages.length, 1);
  const m = req.messages[0].content;
  for (
    const part of [
      "DIAGNOSIS: bandwidth-bound",
      renderFacts(facts),
      "CHIPFACTS",
      "```json\n" + registryEntryText(relu, "test"),
      "```python\n" + RELU_PY.trim(),
      "```metal\n" + RELU_METAL.trim(),
      "12.3 µs (−8.3%): TOP-TECHNIQUE float4 loads.",
      "incorrect: FAILED-TECHNIQUE half math. — REASON-1",
      "Technique: <2–3 sentences",
      "`relu_f32`",
    ]
  ) assert.ok(m.includes(part), `rewrite prompt lacks: ${part}`);
  assert.match(req.system, /NaN, \+Inf and −Inf/);
  assert.match(req.system, /never skip work because an output looks written/);
  assert.match(req.system, /No host code/);
  assert.match(req.system, /simulated CPU time/);

  // Empty history and no diagnosis say so instead of leaving holes.
  const bare = buildRewriteRequest(
    context(facts, { diagnosis: null, history: { top: [], failed: [] } }),
    prompts,
    100,
  ).messages[0].content;
  assert.match(bare, /\(no diagnosis for this round\)/);
  assert.equal(bare.split("(none yet)").length - 1, 2);

  // A source that holds ``` cannot close its fence early.
  const tricky = RELU_METAL + "// ``` and ````\n";
  const t = buildRewriteRequest(context(facts, { bestSource: tricky }), prompts, 100);
  assert.ok(t.messages[0].content.includes("`````metal\n" + tricky));

  // Retry with the previous reply: a conversation; without it, one message.
  const retry = buildRewriteRequest(
    context(facts, { feedback: "COMPILE: line 3: error: x", previousReply: "PREVIOUS REPLY" }),
    prompts,
    100,
  );
  assert.equal(retry.purpose, "retry");
  assert.deepEqual(retry.messages.map((x) => x.role), ["user", "assistant", "user"]);
  assert.equal(retry.messages[1].content, "PREVIOUS REPLY");
  assert.match(retry.messages[2].content, /COMPILE: line 3: error: x/);
  const flat = buildRewriteRequest(context(facts, { feedback: "WRONG AT [7]" }), prompts, 100);
  assert.equal(flat.messages.length, 1);
  assert.match(flat.messages[0].content, /The previous attempt[\s\S]*WRONG AT \[7\]/);

  const next = buildRetryRequest(req, "REPLY 1", "FEEDBACK 1", prompts, {
    kernel: "relu",
    functionNames: ["relu_f32"],
  });
  assert.deepEqual(next.messages.slice(0, 2).map((x) => x.content), [m, "REPLY 1"]);
  assert.match(next.messages[2].content, /FEEDBACK 1/);
  assert.equal(next.system, req.system);
});

Deno.test("optimizer: values are filled once — a source holding {{feedback}} stays text; a missing value is named", () => {
  assert.equal(
    fillTemplate("a {{x}} b {{ y }}", { x: "{{y}}", y: "Y" }, "t"),
    "a {{y}} b Y",
  );
  assert.throws(
    () => fillTemplate("{{x}} {{zz}}", { x: "1" }, "the test prompt"),
    (e) =>
      e instanceof PromptError &&
      /the test prompt uses \{\{zz\}\}, which has no value/.test(e.message),
  );
  assert.equal(fenced("a\n```\nb"), "````\na\n```\nb\n````");
});

Deno.test("prompts: a workspace overrides any template; bad overrides are refused naming the placeholder; built-ins are where the binary embeds them", async () => {
  const ws = await Deno.makeTempDir({ prefix: "mb-prompts-" });
  try {
    const builtin = await loadPrompts(null);
    assert.deepEqual(await loadPrompts(ws), builtin, "no override folder: the built-in set");
    const dir = join(ws, ".agent-steel", "prompts");
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(
      join(dir, "rewrite.md"),
      "MY REWRITE for {{kernel}}:\n{{best_source}}\n{{registry_entry}}\n",
    );
    const p = await loadPrompts(ws);
    assert.equal(p.rewrite, "MY REWRITE for {{kernel}}:\n{{best_source}}\n{{registry_entry}}\n");
    assert.equal(p.origins?.rewrite, join(dir, "rewrite.md"));
    assert.equal(p.system, builtin.system);
    assert.equal(p.origins?.system, builtinPromptPath("system"));
    const req = buildRewriteRequest(
      context(FACTS),
      p,
      100,
    );
    assert.ok(req.messages[0].content.startsWith("MY REWRITE for relu:\n```metal\n"));

    await Deno.writeTextFile(join(dir, "retry.md"), "fix {{feedbak}} please {{feedback}}");
    await assert.rejects(
      loadPrompts(ws),
      (e) =>
        e instanceof PromptError && e.message.includes("retry.md uses {{feedbak}}") &&
        e.message.includes("fix: use only"),
    );
    await Deno.writeTextFile(join(dir, "retry.md"), "try again");
    await assert.rejects(
      loadPrompts(ws),
      (e) => e instanceof PromptError && /retry\.md does not use \{\{feedback\}\}/.test(e.message),
    );
    await Deno.writeTextFile(join(dir, "retry.md"), "  \n");
    await assert.rejects(
      loadPrompts(ws),
      (e) => e instanceof PromptError && /is empty/.test(e.message),
    );
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
  // The compile task embeds the folder the built-ins are read from.
  for (const target of ["x86_64-unknown-linux-gnu", "aarch64-apple-darwin"] as const) {
    assert.ok(includesFor(target).includes(BUILTIN_PROMPTS_DIR), target);
  }
  for (const name of PROMPT_NAMES) {
    assert.equal(builtinPromptPath(name), join(assetPath(BUILTIN_PROMPTS_DIR), `${name}.md`));
    assert.ok(existsSync(builtinPromptPath(name)), name);
  }
});

// ---- the optimizer: replies ---------------------------------------------

const GOOD_SOURCE = "#include <metal_stdlib>\nusing namespace metal;\nkernel void relu_f32() {}\n";
const block = (lang: string, body = GOOD_SOURCE) => "```" + lang + "\n" + body + "```";

Deno.test("optimizer: a reply is exactly one ```metal block and a Technique line, else a reason to feed back", () => {
  const technique = "Technique: Four elements per thread with float4 loads. Fewer, wider accesses.";
  const good = parseRewriteReply(`Here it is.\n\n${block("metal")}\n\n${technique}\n`);
  assert.deepEqual(good, {
    ok: true,
    source: GOOD_SOURCE,
    technique: "Four elements per thread with float4 loads. Fewer, wider accesses.",
  });
  // Bold label, technique first, running over two lines, CRLF line ends, ~~~ fences.
  const bold = parseRewriteReply(
    "**Technique:** Use simd_sum for the reduction.\nIt removes two barriers.\n\n~~~Metal\r\n" +
      GOOD_SOURCE + "~~~\r\n",
  );
  assert.ok(bold.ok, JSON.stringify(bold));
  assert.equal(bold.technique, "Use simd_sum for the reduction. It removes two barriers.");
  assert.equal(bold.source, GOOD_SOURCE);

  const reasons: [string, string, RegExp][] = [
    ["no block", `Just use float4.\n${technique}`, /no code block/],
    ["two blocks", `${block("metal")}\n${block("metal")}\n${technique}`, /2 ```metal blocks/],
    ["no technique", `${block("metal")}\nThis is faster.`, /no `Technique:` line/],
    [
      "technique only in a comment",
      `${block("metal", "// Technique: hidden here.\n" + GOOD_SOURCE)}`,
      /no `Technique:` line/,
    ],
    ["another language", `${block("cpp")}\n${technique}`, /in ```cpp block, not a ```metal block/],
    ["unlabelled", `${block("")}\n${technique}`, /unlabelled ```/],
    [
      "host code beside it",
      `${block("metal")}\n${block("python", "import mlx\n")}\n${technique}`,
      /besides the ```metal block the reply has ```python/,
    ],
    ["cut off", "```metal\n" + GOOD_SOURCE + "kernel void more(", /never closed/],
    ["empty", "```metal\n\n```\n" + technique, /block is empty/],
    ["no kernel", block("metal", "int x = 1;\n") + "\n" + technique, /defines no `kernel`/],
    ["empty technique", `${block("metal")}\nTechnique:   `, /`Technique:` line is empty/],
    [
      "too long",
      `${block("metal")}\nTechnique: One. Two. Three. Four. Five.`,
      /5 sentences/,
    ],
  ];
  for (const [what, reply, reason] of reasons) {
    const r = parseRewriteReply(reply);
    assert.equal(r.ok, false, what);
    if (!r.ok) {
      assert.match(r.reason, reason, what);
      assert.match(r.reason, /metal|Technique/, `${what}: the reason says what to send`);
    }
  }
  // Numbers and abbreviations are not sentence ends.
  const abbrev = parseRewriteReply(
    `${block("metal")}\nTechnique: Unroll by 2.5x, e.g. four loads in flight. Saves 1.5 µs.`,
  );
  assert.ok(abbrev.ok, JSON.stringify(abbrev));
});

Deno.test("optimizer: a candidate is staged atomically in a folder of its own, never over the kernel", async () => {
  const ws = await Deno.makeTempDir({ prefix: "mb-stage-" });
  try {
    const kernelFile = await writeTemp(ws, "relu.metal", RELU_METAL);
    const staging = join(ws, ".agent-steel", "staging");
    const path = await stageCandidate(staging, "relu", "relu-r1-c0-t0-abcd1234", SLOW_RELU, [
      kernelFile,
    ]);
    assert.equal(path, join(staging, "relu", "relu-r1-c0-t0-abcd1234", "relu.metal"));
    assert.equal(await Deno.readTextFile(path), SLOW_RELU);
    assert.equal(await Deno.readTextFile(kernelFile), RELU_METAL);
    assert.deepEqual(
      [...Deno.readDirSync(join(staging, "relu", "relu-r1-c0-t0-abcd1234"))].map((e) => e.name),
      ["relu.metal"],
      "no temp file left",
    );
    assert.deepEqual(
      [...Deno.readDirSync(join(staging, "relu"))].map((e) => e.name),
      ["relu-r1-c0-t0-abcd1234"],
      "no partial folder left",
    );
    // Staged again under the same id: replaced whole.
    await stageCandidate(staging, "relu", "relu-r1-c0-t0-abcd1234", WRONG_RELU);
    assert.equal(await Deno.readTextFile(path), WRONG_RELU);
    for (
      const [kernel, id] of [["relu", "../x"], ["relu", ".."], ["../relu", "a"], ["relu", "a/b"]]
    ) {
      await assert.rejects(stageCandidate(staging, kernel, id, "x"), Error, `${kernel} ${id}`);
    }
    // A staging folder that aliases the kernel's folder is refused, the kernel left alone.
    await Deno.mkdir(join(ws, "relu"));
    const inner = await writeTemp(join(ws, "relu"), "relu.metal", RELU_METAL);
    await Deno.symlink(join(ws, "relu"), join(staging, "relu", "alias"));
    await assert.rejects(
      stageCandidate(staging, "relu", "alias", WRONG_RELU, [inner]),
      (e) => e instanceof StagingError && /is the kernel file/.test(e.message),
    );
    assert.equal(await Deno.readTextFile(inner), RELU_METAL);
    // Even unguarded, the link is replaced by a real folder, never written through.
    const through = await stageCandidate(staging, "relu", "alias", WRONG_RELU);
    assert.ok(!(await Deno.lstat(join(staging, "relu", "alias"))).isSymlink);
    assert.equal(await Deno.readTextFile(through), WRONG_RELU);
    assert.equal(await Deno.readTextFile(inner), RELU_METAL);
  } finally {
    await Deno.remove(ws, { recursive: true });
  }
});

// ---- the verifier ---------------------------------------------------------

Deno.test("verifier: real kernels on the simulator — faster kept, slower not, wrong, cheating and broken ones named", async (t) => {
  await buildSim();
  const dir = await Deno.makeTempDir({ prefix: "mb-verify-" });
  const h = await openHarness();
  try {
    const fast = join(ROOT, "kernels/common/relu.metal");
    const slow = await writeTemp(dir, "slow.metal", SLOW_RELU);
    const opts = verifyOptions("sim");
    assert.equal(opts.chunkSamples, 4);

    await t.step(
      "a correct faster candidate is kept, with the rule's numbers from both runs",
      async () => {
        const v = await verify(h, relu, fast, slow, opts);
        assert.equal(v.verdict, "kept", v.reason);
        assert.ok(v.deltaPct !== null && v.deltaPct < -50, `Δ ${v.deltaPct}`);
        assert.match(v.reason, /run 1: candidate .* vs best .* median; paired Δ −\d+\.\d %/);
        assert.match(v.reason, /25 of 25 blocks ≥ 1 % faster, one-sided sign test p = .* < 0\.01/);
        assert.match(v.reason, /run 2: /);
        assert.equal(v.runs?.length, 2, "the second run swaps the order");
        assert.equal(v.candidate.correctness.status, "correct");
        assert.equal(v.best?.correctness.status, "correct");
        assert.equal(v.candidate.settings.warmup, 5);
        assert.equal(v.candidate.kernelTiming?.wallNs.length, 100);
      },
    );

    await t.step("the same kernels the other way round: slower, after one run", async () => {
      const v = await verify(h, relu, slow, fast, opts);
      assert.equal(v.verdict, "slower", v.reason);
      assert.ok(v.deltaPct !== null && v.deltaPct > 100, `Δ ${v.deltaPct}`);
      assert.match(v.reason, /not faster beyond the noise: .*paired Δ \+\d+/);
      assert.match(v.reason, /0 of 25 blocks ≥ 1 % faster/);
      assert.equal(v.runs?.length, 1);
    });

    await t.step("the same kernel twice (one comment apart) is not kept", async () => {
      const copy = await writeTemp(dir, "copy.metal", RELU_METAL + "// the same kernel\n");
      const v = await verify(h, relu, copy, fast, opts);
      assert.equal(v.verdict, "slower", v.reason);
      const same = await verify(h, relu, fast, fast, opts);
      assert.equal(same.verdict, "rejected");
      assert.match(same.reason, /byte for byte/);
    });

    await t.step("a wrong kernel is incorrect, naming the output and element", async () => {
      const v = await verify(h, relu, await writeTemp(dir, "wrong.metal", WRONG_RELU), fast, opts);
      assert.equal(v.verdict, "incorrect");
      assert.match(
        v.reason,
        /output 'y': .* within tolerance \(trial seed \d+\).*first at \[\d+\]/,
      );
      assert.equal(v.deltaPct, null);
    });

    await t.step(
      "a kernel that works only where its output is not yet written: the un-poisoned trial",
      async () => {
        const v = await verify(
          h,
          relu,
          await writeTemp(dir, "skip.metal", SKIP_IF_WRITTEN),
          fast,
          opts,
        );
        assert.equal(v.verdict, "incorrect", v.reason);
        assert.match(v.reason, /on outputs left from the previous trial/);
      },
    );

    await t.step("a compile error names the line, with the whole log for the model", async () => {
      const v = await verify(h, relu, await writeTemp(dir, "broken.metal", BROKEN), fast, opts);
      assert.equal(v.verdict, "compile-error");
      assert.match(v.reason, /undeclared_thing/);
      assert.match(v.reason, /:\d+(:\d+)?: error:/);
    });

    await t.step(
      "from a record: partial protocol and implausible times are rejected, never kept",
      async () => {
        const [out] = await h.benchmark(relu, [() => ({
          path: fast,
          variant: "flat",
          text: RELU_METAL,
          metallib: null,
        })], { ...opts, iters: 8 });
        const r = out.record;
        assert.equal(judgeRecord(r), null);
        const implausible = {
          ...r,
          plausibility: { plausible: false, detail: "faster than 2000 GB/s" },
        };
        assert.deepEqual(judgeRecord(implausible), {
          verdict: "rejected",
          reason: "implausible time, beyond the device's limits: faster than 2000 GB/s",
        });
        const partial = {
          ...r,
          settings: {
            ...r.settings,
            protocol: { ...r.settings.protocol!, unpoisonedTrial: false },
          },
        };
        assert.equal(judgeRecord(partial)?.verdict, "rejected");
        assert.match(judgeRecord(partial)!.reason, /did not run in full/);
        const noAfter = {
          ...r,
          correctness: {
            ...r.correctness,
            trials: r.correctness.trials.filter((x) => x.phase !== "after-timing"),
          },
        };
        assert.match(judgeRecord(noAfter)!.reason, /output sets checked after timing: 0 of 2/);
        const unchecked = { ...r, correctness: { ...r.correctness, status: "unchecked" as const } };
        assert.equal(judgeRecord(unchecked)?.verdict, "rejected");
      },
    );
  } finally {
    await h.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- the keep rule ----------------------------------------------------------

/** A seeded generator (mulberry32) and normal samples from it. */
function rng(seed: number) {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
  return { u, normal };
}

const samples = (n: number, f: (i: number) => number) => Array.from({ length: n }, (_, i) => f(i));

Deno.test("keep rule: a clear win is kept, overlap is not, a tiny significant gain under 1 % is not", () => {
  const r = rng(7);
  const best = samples(100, () => 100 + 2 * r.normal());
  const win = samples(100, () => 90 + 2 * r.normal());
  const k = keepRule(win, best);
  assert.equal(k.keep, true, k.detail);
  assert.ok(k.deltaPct < -8 && k.deltaPct > -12, `${k.deltaPct}`);
  assert.equal(k.blocks, 25);
  assert.match(k.detail, /candidate \d+ ns vs best \d+ ns median; paired Δ −\d+\.\d %/);
  assert.match(
    k.detail,
    /25 of 25 blocks ≥ 1 % faster, one-sided sign test p = 3\.0e-8 < 0\.01 — kept/,
  );

  // The same distribution: no gain to keep, whatever the seed.
  for (let seed = 1; seed <= 50; seed++) {
    const g = rng(seed);
    const a = samples(100, () => 100 + 5 * g.normal());
    const b = samples(100, () => 100 + 5 * g.normal());
    assert.equal(keepRule(a, b).keep, false, `seed ${seed}: ${keepRule(a, b).detail}`);
  }

  // 0.5 % faster in every block: significant by any test, but under the 1 % floor.
  const tiny = best.map((v) => v * 0.995);
  const t = keepRule(tiny, best);
  assert.equal(t.keep, false);
  assert.match(t.detail, /0 of 25 blocks ≥ 1 % faster/);
  assert.match(t.detail, /needs 19 of 25/);
  assert.ok(Math.abs(t.deltaPct + 0.5) < 1e-9);
});

Deno.test("keep rule: machine noise that moves whole blocks cancels in the pairing; a few bad blocks do not decide", () => {
  const r = rng(11);
  // Both kernels share a drifting machine: each block pair sits at its own level (×0.6–×1.8).
  const level = samples(25, () => 0.6 + 1.2 * r.u());
  const at = (i: number) => level[Math.floor(i / 4)];
  const best = samples(100, (i) => 100 * at(i) * (1 + 0.01 * r.normal()));
  const faster = samples(100, (i) => 95 * at(i) * (1 + 0.01 * r.normal()));
  const k = keepRule(faster, best);
  assert.equal(k.keep, true, k.detail);
  assert.ok(Math.abs(k.deltaPct + 5) < 1.5, `${k.deltaPct}`);

  // The same kernel under that drift: the unpaired medians differ, the rule does not keep it.
  const same = samples(100, (i) => 100 * at(i) * (1 + 0.01 * r.normal()));
  assert.equal(keepRule(same, best).keep, false, keepRule(same, best).detail);

  // A candidate that won big in 5 blocks (a noisy spell for the best) and lost the rest.
  const spiky = best.map((v, i) => (i < 20 ? v * 0.5 : v * 1.02));
  const s = keepRule(spiky, best);
  assert.equal(s.keep, false, s.detail);
  assert.match(s.detail, /5 of 25 blocks/);

  // Too few blocks to reach p < 0.01 at all; no blocks at all.
  assert.match(
    keepRule(best.slice(0, 20).map((v) => v / 2), best.slice(0, 20)).detail,
    /cannot reach/,
  );
  assert.equal(keepRule([], best).keep, false);
  assert.match(keepRule([], best).detail, /no paired blocks/);
});

Deno.test("keep rule: the sign test's tail", () => {
  assert.equal(binomialTail(25, 0), 1);
  assert.equal(binomialTail(25, 26), 0);
  assert.ok(Math.abs(binomialTail(25, 19) - 0.0073) < 1e-4);
  assert.ok(Math.abs(binomialTail(25, 18) - 0.0216) < 1e-4);
  assert.ok(Math.abs(binomialTail(7, 7) - 1 / 128) < 1e-12);
  assert.ok(Math.abs(binomialTail(2000, 1000) - 0.5089) < 1e-3, "large n stays finite");
});

// Keep chipFactsText and historyOf honest against real inputs too.
Deno.test("optimizer: chip facts from a real simulator backend; history from AttemptDB entries", async () => {
  await buildSim();
  const h = await openHarness();
  try {
    const text = chipFactsText(h.backend);
    assert.match(text, /MSL simulator on the CPU/);
    assert.match(text, /SIMD-group width 32/);
    assert.match(text, /at most \d+ threads per threadgroup/);
    assert.match(text, /at most \d+ bytes of threadgroup memory/);
  } finally {
    await h.close();
  }
  assert.equal(chipFactsText(null), "- no kernel backend: unknown");
  const bench = (medianNs: number) => ({
    medianNs,
    p10Ns: medianNs,
    p90Ns: medianNs,
    n: 100,
    deviceMedianNs: null,
    clock: "batched",
    backend: "sim",
    size: "test",
    simulated: true,
  });
  const entry = (i: number, verdict: string, medianNs: number | null, technique: string) => ({
    version: 1 as const,
    id: `relu-r${i}-c0-t0-0000000${i}`,
    parentId: null,
    kernel: "relu",
    bucket: "sim-x86_64",
    round: i,
    candidate: 0,
    retry: 0,
    time: new Date(0).toISOString(),
    provider: null,
    model: null,
    technique,
    source: "",
    sourceSha256: "0".repeat(64),
    profile: null,
    bench: medianNs === null ? null : bench(medianNs),
    correctness: null,
    verdict: verdict as "kept",
    reason: `why ${i}`,
    deltaPct: medianNs === null ? null : -10,
    plausible: null,
    tokens: { input: 0, output: 0 },
    transcript: null,
  });
  const hist = historyOf([
    entry(0, "baseline", 100, "baseline"),
    entry(1, "kept", 90, "A"),
    entry(2, "incorrect", null, "B"),
    entry(3, "kept", 80, "C"),
  ]);
  assert.deepEqual(hist.top.map((x) => x.technique), ["C", "A"]);
  assert.deepEqual(hist.failed, [{ technique: "B", verdict: "incorrect", reason: "why 2" }]);
});
