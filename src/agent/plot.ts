/**
 * `metalbench agent plot`: best-so-far gain over the baseline per round, one
 * line per kernel, from AttemptDB entries alone. Gain is speed gain,
 * (baseline time / best time so far − 1) × 100 %, counting only the baseline
 * and kept attempts measured like the baseline (same clock, backend, size).
 * Hand-written SVG (no dependency); PNG through whatever converter exists.
 */
import { join } from "node:path";
import { baselineOf } from "./attempts/queries.ts";
import type { AttemptEntry } from "./attempts/schema.ts";

export interface PlotLineage {
  kernel: string;
  entries: AttemptEntry[];
}

export interface GainCurve {
  kernel: string;
  /** Best-so-far gain (%) at each round 0..last. */
  points: { round: number; gainPct: number }[];
  finalPct: number;
  simulated: boolean;
}

export const PLOT_SIMULATED_NOTE = "simulated CPU times (MSL simulator), not GPU results";

/** The curve of one lineage, or undefined when it has no timed baseline. */
export function gainCurve(kernel: string, entries: AttemptEntry[]): GainCurve | undefined {
  const base = baselineOf(entries)?.bench;
  if (!base || !(base.medianNs > 0)) return undefined;
  const timed = entries.filter((e) =>
    (e.verdict === "kept" || e.verdict === "baseline") && e.bench !== null &&
    e.bench.medianNs > 0 && e.bench.clock === base.clock && e.bench.backend === base.backend &&
    e.bench.size === base.size && e.bench.simulated === base.simulated
  );
  const last = entries.reduce((m, e) => Math.max(m, e.round), 0);
  const points: GainCurve["points"] = [];
  let best = base.medianNs;
  for (let round = 0; round <= last; round++) {
    for (const e of timed) if (e.round === round) best = Math.min(best, e.bench!.medianNs);
    points.push({ round, gainPct: (base.medianNs / best - 1) * 100 });
  }
  return { kernel, points, finalPct: points.at(-1)!.gainPct, simulated: base.simulated };
}

const COLORS = [
  "#1f77b4",
  "#d62728",
  "#2ca02c",
  "#ff7f0e",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
];
const W = 760;
const H = 440;
const M = { left: 70, right: 200, top: 66, bottom: 70 };

/** A legend name that fits the right margin. */
function cut(name: string, width = 22): string {
  const chars = [...name];
  return chars.length <= width ? name : chars.slice(0, width - 1).join("") + "…";
}

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** 1, 2, 2.5 or 5 × 10^k: a tick step near `raw`. */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
}

const num = (v: number) => String(Math.round(v * 10) / 10);

export function formatGain(pct: number): string {
  return `${pct < 0 ? "−" : "+"}${Math.abs(pct).toFixed(1)}%`;
}

/** An SVG of best-so-far gain over the baseline per round, one path per kernel. */
export function plotCurves(lineages: PlotLineage[]): string {
  const curves = lineages.map((l) => ({ kernel: l.kernel, curve: gainCurve(l.kernel, l.entries) }));
  const drawn = curves.flatMap((c) => (c.curve ? [c.curve] : []));
  const lastRound = Math.max(1, ...drawn.map((c) => c.points.length - 1));
  const gains = drawn.flatMap((c) => c.points.map((p) => p.gainPct));
  const yStep = niceStep(Math.max(1, ...gains) / 5);
  const yMax = Math.ceil(Math.max(1, ...gains) / yStep) * yStep;
  const yMin = Math.min(0, Math.floor(Math.min(0, ...gains) / yStep) * yStep);
  const xStep = Math.max(1, Math.ceil(niceStep(lastRound / 10)));

  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (r: number) => M.left + (r / lastRound) * pw;
  const y = (g: number) => M.top + ph - ((g - yMin) / (yMax - yMin)) * ph;

  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${M.left}" y="26" font-size="15" font-weight="bold">Agent Steel: best-so-far gain over the baseline</text>`,
    `<text x="${M.left}" y="${
      M.top - 22
    }" fill="#555555">gain = baseline time / best time so far − 1 (kept attempts, same clock and size)</text>`,
  ];
  // Grid and y axis.
  for (let g = yMin; g <= yMax + 1e-9; g += yStep) {
    out.push(
      `<line x1="${M.left}" y1="${num(y(g))}" x2="${M.left + pw}" y2="${num(y(g))}" stroke="${
        g === 0 ? "#888888" : "#e4e4e4"
      }"/>`,
      `<text x="${M.left - 8}" y="${num(y(g) + 4)}" text-anchor="end">${num(g)}%</text>`,
    );
  }
  // X axis ticks.
  for (let r = 0; r <= lastRound; r += xStep) {
    out.push(
      `<line x1="${num(x(r))}" y1="${M.top + ph}" x2="${num(x(r))}" y2="${
        M.top + ph + 5
      }" stroke="#444444"/>`,
      `<text x="${num(x(r))}" y="${M.top + ph + 19}" text-anchor="middle">${r}</text>`,
    );
  }
  out.push(
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="#444444"/>`,
    `<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${
      M.top + ph
    }" stroke="#444444"/>`,
    `<text x="${M.left + pw / 2}" y="${M.top + ph + 40}" text-anchor="middle">round</text>`,
    `<text transform="translate(18 ${
      M.top + ph / 2
    }) rotate(-90)" text-anchor="middle">gain over baseline (%)</text>`,
  );
  // Curves and legend.
  const lx = M.left + pw + 20;
  curves.forEach((c, i) => {
    const color = COLORS[i % COLORS.length];
    const ly = M.top + 10 + i * 22;
    if (!c.curve) {
      out.push(
        `<text x="${lx}" y="${ly + 4}" fill="#888888">${esc(cut(c.kernel))}: no baseline</text>`,
      );
      return;
    }
    const d = c.curve.points.map((p, j) =>
      `${j === 0 ? "M" : "L"}${num(x(p.round))} ${num(y(p.gainPct))}`
    ).join(" ");
    out.push(
      `<path class="curve" data-kernel="${
        esc(c.kernel)
      }" d="${d}" fill="none" stroke="${color}" stroke-width="2.2"/>`,
      ...c.curve.points.map((p) =>
        `<circle cx="${num(x(p.round))}" cy="${num(y(p.gainPct))}" r="2.8" fill="${color}"/>`
      ),
      `<line x1="${lx}" y1="${ly}" x2="${lx + 22}" y2="${ly}" stroke="${color}" stroke-width="3"/>`,
      `<text class="legend" x="${lx + 28}" y="${ly + 4}">${esc(cut(c.kernel))} ${
        formatGain(c.curve.finalPct)
      }</text>`,
    );
  });
  if (drawn.some((c) => c.simulated)) {
    out.push(
      `<text x="${M.left}" y="${
        H - 12
      }" fill="#a03000" font-style="italic">${PLOT_SIMULATED_NOTE}</text>`,
    );
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}

export class PlotError extends Error {
  override name = "PlotError";
}

/** Converters tried in order: the program and its arguments (svg in, png out). */
const CONVERTERS: { name: string; args: (svg: string, png: string) => string[] }[] = [
  { name: "rsvg-convert", args: (svg, png) => ["-f", "png", "-o", png, svg] },
  { name: "magick", args: (svg, png) => [svg, png] },
  { name: "convert", args: (svg, png) => [svg, png] },
  ...["chromium", "chromium-browser", "google-chrome"].map((name) => ({
    name,
    args: (svg: string, png: string) => [
      "--headless",
      "--disable-gpu",
      "--no-sandbox", // our own SVG, a local file, no network
      `--screenshot=${png}`,
      `--window-size=${W},${H}`,
      `file://${svg}`,
    ],
  })),
];

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

/** The first executable `name` on `searchPath`, or undefined. */
async function which(name: string, searchPath: string): Promise<string | undefined> {
  for (const dir of searchPath.split(":").filter(Boolean)) {
    const candidate = join(dir, name);
    try {
      const st = await Deno.stat(candidate);
      if (st.isFile && st.mode !== null && (st.mode & 0o111) !== 0) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Write `svg` as a PNG at `path` with the first converter that works
 * (rsvg-convert, ImageMagick, headless chromium); a one-line PlotError when
 * none is installed or all failed. `searchPath` defaults to $PATH.
 */
export async function svgToPng(
  svg: string,
  path: string,
  opts: { searchPath?: string; timeoutMs?: number } = {},
): Promise<{ converter: string }> {
  const searchPath = opts.searchPath ?? Deno.env.get("PATH") ?? "";
  const dir = await Deno.makeTempDir({ prefix: "metalbench-plot-" });
  const failures: string[] = [];
  try {
    const svgPath = join(dir, "curves.svg");
    const pngPath = join(dir, "curves.png");
    await Deno.writeTextFile(svgPath, svg);
    for (const c of CONVERTERS) {
      const exe = await which(c.name, searchPath);
      if (!exe) continue;
      const out = await new Deno.Command(exe, {
        args: c.args(svgPath, pngPath),
        stdin: "null",
        stdout: "null",
        stderr: "piped",
        signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000),
      }).output().catch((e: Error) => ({
        success: false,
        stderr: new TextEncoder().encode(e.message),
      }));
      const png = await Deno.readFile(pngPath).catch(() => new Uint8Array());
      if (out.success && PNG_MAGIC.every((b, i) => png[i] === b)) {
        await Deno.writeFile(path, png);
        return { converter: c.name };
      }
      const why = new TextDecoder().decode(out.stderr).trim().split("\n")[0] || "no PNG written";
      failures.push(`${c.name}: ${why.slice(0, 120)}`);
      await Deno.remove(pngPath).catch(() => {});
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  if (failures.length === 0) {
    throw new PlotError(
      `cannot write ${path}: no SVG-to-PNG converter found (rsvg-convert, ImageMagick, chromium) — fix: install one (macOS: brew install librsvg; Debian: apt-get install librsvg2-bin) or write an .svg`,
    );
  }
  throw new PlotError(
    `cannot write ${path}: every converter failed (${
      failures.join("; ")
    }) — fix: install librsvg (rsvg-convert) or write an .svg`,
  );
}
