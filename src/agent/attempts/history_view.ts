/**
 * `metalbench agent history <kernel>`: a lineage as a table, or as JSON
 * lines. Techniques and reasons are LLM-written, so they are printed with
 * control and bidi characters removed (no escape sequence reaches a terminal).
 */
import { baselineOf, bestOf } from "./queries.ts";
import type { AttemptEntry } from "./schema.ts";

const TECHNIQUE_WIDTH = 60;

export const SIMULATED_NOTE = "times are simulated CPU times (the MSL simulator), not GPU results";

/** Controls (C0/C1), format characters (bidi marks and overrides, zero-width), line separators. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\u2028\u2029]/gu;

/** One line of untrusted text, safe for a terminal, cut to `width` characters. */
export function plainText(text: string, width: number): string {
  const flat = text.replace(UNPRINTABLE, " ").replace(/\s+/g, " ").trim();
  const chars = [...flat];
  return chars.length <= width ? flat : chars.slice(0, width - 1).join("") + "…";
}

/** Milliseconds from nanoseconds, with about four significant digits. */
export function formatMs(ns: number): string {
  const ms = ns / 1e6;
  if (ms >= 100) return ms.toFixed(1);
  if (ms >= 1) return ms.toFixed(3);
  return ms.toPrecision(3);
}

export function formatPct(pct: number): string {
  return `${pct > 0 ? "+" : pct < 0 ? "−" : "±"}${Math.abs(pct).toFixed(1)}%`;
}

/** The lineage as a table: one row per attempt, a summary line, the notes that apply. */
export function renderHistory(entries: AttemptEntry[]): string {
  if (entries.length === 0) return "no attempts recorded\n";
  const first = entries[0];
  const rows = entries.map((e) => [
    String(e.round),
    e.retry === 0 ? String(e.candidate) : `${e.candidate}.${e.retry}`,
    e.verdict + (e.plausible === false ? " !" : ""),
    e.bench ? formatMs(e.bench.medianNs) : "—",
    e.deltaPct === null ? "—" : formatPct(e.deltaPct),
    `${e.tokens.input}+${e.tokens.output}`,
    plainText(e.technique, TECHNIQUE_WIDTH),
  ]);
  const head = [
    "round",
    "cand",
    "verdict",
    "median ms",
    "Δ% vs best",
    "tokens in+out",
    "technique",
  ];
  const right = [true, true, false, true, true, true, false];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) =>
      i === cells.length - 1 ? c : right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])
    ).join("  ").trimEnd();

  const out = [
    summary(entries, plainText(first.kernel, 40), plainText(first.bucket, 40)),
    "",
    line(head),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ];
  const notes: string[] = [];
  notes.push("Δ% is against the best at the time (negative = faster); cand n.r = retry r");
  if (entries.some((e) => e.plausible === false)) {
    notes.push("! flagged: faster than the chip's limits allow (a finding, not a record)");
  }
  if (entries.some((e) => e.bench?.simulated)) notes.push(SIMULATED_NOTE);
  return [...out, "", ...notes].join("\n") + "\n";
}

function summary(entries: AttemptEntry[], kernel: string, bucket: string): string {
  const rounds = entries.reduce((m, e) => Math.max(m, e.round), 0);
  const head = `${kernel} (${bucket}): ${entries.length} attempt${
    entries.length === 1 ? "" : "s"
  } over ${rounds} round${rounds === 1 ? "" : "s"}`;
  const best = bestOf(entries);
  const base = baselineOf(entries);
  if (!best?.bench) return head;
  let text = `${head} — best ${formatMs(best.bench.medianNs)} ms`;
  const b = base?.bench;
  if (
    b && base !== best && b.clock === best.bench.clock && b.backend === best.bench.backend &&
    b.size === best.bench.size && b.simulated === best.bench.simulated
  ) {
    const pct = (best.bench.medianNs / b.medianNs - 1) * 100;
    text += ` (${formatPct(pct)} vs baseline ${formatMs(b.medianNs)} ms)`;
  }
  return text;
}

/** `--json`: one entry per line. */
export function historyJsonLines(entries: AttemptEntry[]): string {
  return entries.map((e) => JSON.stringify(e) + "\n").join("");
}
