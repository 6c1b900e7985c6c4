import assert from "node:assert/strict";
import { join } from "node:path";
import { gainCurve, plotCurves, PlotError, svgToPng } from "../src/agent/plot.ts";
import { attempt } from "./_attempts.ts";

async function reluLineage() {
  return [
    await attempt({ ms: 10 }),
    await attempt({ round: 1, candidate: 0, verdict: "slower", ms: 11 }),
    await attempt({ round: 1, candidate: 1, ms: 9 }),
    await attempt({ round: 2, verdict: "compile-error", ms: null }),
    // Faster, but at another size: not comparable with the baseline.
    await attempt({ round: 3, candidate: 0, ms: 1, size: "bench" }),
    await attempt({ round: 3, candidate: 1, ms: 8 }),
    await attempt({ round: 4, verdict: "incorrect", ms: 2 }),
  ];
}

async function softmaxLineage() {
  return [
    await attempt({ kernel: "softmax", ms: 4 }),
    await attempt({ kernel: "softmax", round: 1, ms: 2 }),
  ];
}

Deno.test("the gain curve is best-so-far gain over the baseline, per round, from entries alone", async () => {
  const c = gainCurve("relu", await reluLineage())!;
  assert.deepEqual(
    c.points.map((p) => [p.round, Number(p.gainPct.toFixed(3))]),
    [[0, 0], [1, 11.111], [2, 11.111], [3, 25], [4, 25]],
  );
  assert.equal(c.finalPct, 25);
  assert.equal(c.simulated, true);
  assert.equal(gainCurve("x", [await attempt({ round: 1, ms: 3 })]), undefined, "no baseline");
});

Deno.test("the plot has one path per kernel and the final % in the legend", async () => {
  const svg = plotCurves([
    { kernel: "relu", entries: await reluLineage() },
    { kernel: "softmax", entries: await softmaxLineage() },
  ]);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  const paths = [...svg.matchAll(/<path class="curve" data-kernel="([^"]+)" d="([^"]+)"/g)];
  assert.deepEqual(paths.map((m) => m[1]), ["relu", "softmax"]);
  assert.equal(paths[0][2].split(/[ML]/).filter((s) => s.trim()).length, 5, "relu: rounds 0..4");
  assert.equal(paths[1][2].split(/[ML]/).filter((s) => s.trim()).length, 2);
  const legend = [...svg.matchAll(/<text class="legend"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  assert.deepEqual(legend, ["relu +25.0%", "softmax +100.0%"]);
  assert.match(svg, />round<\/text>/);
  assert.match(svg, />gain over baseline \(%\)/);
  assert.match(svg, /simulated CPU times/);

  const gpu = plotCurves([{
    kernel: "relu",
    entries: [await attempt({ ms: 5, simulated: false })],
  }]);
  assert.doesNotMatch(gpu, /simulated/);
  assert.match(gpu, /relu \+0\.0%/);
});

Deno.test("a lineage without a baseline is named, not drawn; names are escaped", async () => {
  const svg = plotCurves([
    { kernel: "relu", entries: [] },
    { kernel: `a<b&"c"`, entries: await softmaxLineage() },
  ]);
  assert.match(svg, />relu: no baseline</);
  assert.equal([...svg.matchAll(/<path /g)].length, 1);
  assert.match(svg, /a&#60;b&#38;&#34;c&#34; \+100\.0%/);
  assert.doesNotMatch(svg, /a<b/);
});

const hasRsvg = new Deno.Command("sh", { args: ["-c", "command -v rsvg-convert"] }).outputSync()
  .success;

Deno.test({
  name: "svgToPng renders the plot with rsvg-convert",
  ignore: !hasRsvg,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const out = join(dir, "curves.png");
    const svg = plotCurves([{ kernel: "relu", entries: await reluLineage() }]);
    assert.deepEqual(await svgToPng(svg, out), { converter: "rsvg-convert" });
    const png = await Deno.readFile(out);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    // IHDR: width and height of the SVG.
    const view = new DataView(png.buffer, png.byteOffset);
    assert.deepEqual([view.getUint32(16), view.getUint32(20)], [760, 440]);
  },
});

Deno.test("svgToPng without a working converter fails in one line saying what to install", async () => {
  const dir = await Deno.makeTempDir();
  const out = join(dir, "curves.png");
  const svg = plotCurves([]);
  await assert.rejects(() => svgToPng(svg, out, { searchPath: dir }), (e) => {
    assert.ok(e instanceof PlotError);
    assert.match(
      e.message,
      /^cannot write .*curves\.png: no SVG-to-PNG converter found .* — fix: install /,
    );
    assert.ok(!e.message.includes("\n"));
    return true;
  });
  // A converter that is there but fails (as a stand-in `convert` would).
  const bin = join(dir, "bin");
  await Deno.mkdir(bin);
  await Deno.writeTextFile(
    join(bin, "convert"),
    "#!/bin/sh\necho 'convert: cannot read SVG' >&2\nexit 1\n",
    {
      mode: 0o755,
    },
  );
  await assert.rejects(
    () => svgToPng(svg, out, { searchPath: bin }),
    /^PlotError: cannot write .*: every converter failed \(convert: convert: cannot read SVG\) — fix: /,
  );
  await assert.rejects(() => Deno.stat(out), Deno.errors.NotFound, "no PNG left behind");
});
