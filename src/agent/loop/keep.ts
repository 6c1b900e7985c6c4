/**
 * The end of a round: of the candidates that beat the best, keep one. Its
 * AttemptDB line is appended first, then the kernel file is replaced
 * atomically (kernel_file.ts), then the run goes to results/ and is offered
 * to session.json. Nothing else in the loop writes the kernel file.
 */
import { relative } from "node:path";
import type { AttemptEntry } from "../attempts/schema.ts";
import type { RunRecord } from "../../store/schema.ts";
import { describeUpdate, offerRun } from "../../store/session.ts";
import { appendRun } from "../../store/results.ts";
import { writeSessionDocs } from "../../store/markdown.ts";
import type { CandidateResult } from "./candidate.ts";
import { replaceKernelFile } from "./kernel_file.ts";
import type { Lineage, LineageInit } from "./lineage.ts";
import { Stop } from "./policy.ts";

/**
 * Of the candidates that beat the best, keep the one that beat it by the
 * most (each was measured against the best in its own run); the others are
 * recorded as slower than it. Returns the kept run's record, or null.
 */
export async function keepBest(
  l: Lineage,
  best: AttemptEntry,
  results: CandidateResult[],
): Promise<RunRecord | null> {
  const fast = results.flatMap((r) => (r.fast ? [r.fast] : []))
    .sort((a, b) => (a.verdict.deltaPct ?? 0) - (b.verdict.deltaPct ?? 0));
  if (fast.length === 0) return null;
  const [winner, ...others] = fast;
  for (const o of others) {
    await l.record({
      ...o.entry,
      verdict: "slower",
      reason: `beat the best (${
        fmt(o.verdict.deltaPct)
      }) but candidate ${winner.entry.candidate} of this round beat it by more (${
        fmt(winner.verdict.deltaPct)
      }); not kept`,
    });
  }
  const { init } = l;
  // The user (or anyone) may have edited the file during the round: never overwrite that.
  if ((await Deno.readTextFile(init.kernelPath)) !== best.source) {
    await l.record({
      ...winner.entry,
      verdict: "rejected",
      reason: `${init.kernelPath} changed during the round; not kept`,
    });
    throw new Stop(
      "kernel-file-changed",
      `${init.kernelPath} changed while the agent ran; it was left as it is — fix: pass --rebaseline to continue from it`,
    );
  }
  await l.record(winner.entry);
  await replaceKernelFile(init.kernelPath, winner.entry.source);
  const session = winner.verdict.record
    ? await offerKept(init, winner.verdict.record, winner.entry.source)
    : "no run record to offer to session.json";
  init.sink.emit({
    event: "kept",
    kernel: l.kernel,
    round: winner.entry.round,
    id: winner.entry.id,
    medianNs: winner.entry.bench?.medianNs ?? null,
    deltaPct: winner.entry.deltaPct,
    gainPct: l.gainPct(),
    kernelPath: init.kernelPath,
    session,
  });
  return winner.verdict.record;
}

/** The kept kernel's run, as the kernel file's: into results/ and offered to session.json. */
async function offerKept(init: LineageInit, run: RunRecord, source: string): Promise<string> {
  const ws = init.workspace;
  const record: RunRecord = {
    ...run,
    source: run.source ? { ...run.source, path: init.kernelPath, variant: init.variant } : null,
  };
  try {
    await appendRun(ws.resultsDir, record);
    const update = await offerRun(ws.sessionPath, record, source, (s) => writeSessionDocs(s, ws));
    return describeUpdate(record.bucket, record.kernel, update);
  } catch (e) {
    // The kernel is kept either way; the leaderboard can be refreshed with `metalbench <kernel>`.
    return `session.json not updated: ${(e as Error).message} (${
      relative(ws.outputRoot, ws.sessionPath)
    })`;
  }
}

const fmt = (p: number | null) => p === null ? "?" : `${p > 0 ? "+" : ""}${p.toFixed(1)}%`;
