/**
 * The measurement protocol a run used, and whether that is strict enough
 * for the leaderboard. A record is only as good as the checks behind it:
 * a seed known in advance lets a kernel carry the answers, one trial or no
 * edge values lets a kernel be right by luck, and a run that skipped the
 * rotating buffers could have timed a no-op. Such runs are kept in
 * results/ but never enter session.json, and the report says why.
 */
import { EDGE_CLASSES } from "../registry/schema.ts";
import type { Protocol, RunRecord } from "./schema.ts";

export const PROTOCOL_VERSION = 2;
export const DEFAULT_TRIALS = 3;
/** Input and output sets the timed launches must rotate over. */
export const REQUIRED_ROTATION_SETS = 2;

/** Why `run` may not enter the leaderboard; empty when it may. */
export function leaderboardBlockers(run: RunRecord): string[] {
  const p: Protocol | undefined = run.settings.protocol;
  if (!p || p.version < PROTOCOL_VERSION) {
    return [
      `measured under protocol ${p?.version ?? 1}; the leaderboard needs ${PROTOCOL_VERSION}`,
    ];
  }
  const why: string[] = [];
  if (p.seedSource === "user") why.push("the seed was chosen with --seed (known in advance)");
  if (p.seedSource === "cached") why.push("--metal reuses the seeds of cached reference outputs");
  if (run.settings.trials < DEFAULT_TRIALS) {
    why.push(`${run.settings.trials} trial(s); the leaderboard needs at least ${DEFAULT_TRIALS}`);
  }
  if (p.rotationSets < REQUIRED_ROTATION_SETS) {
    why.push("the timed launches did not rotate buffers");
  }
  if (!p.unpoisonedTrial) why.push("no trial on un-poisoned outputs");
  const expected = EDGE_CLASSES.filter((c) => !run.correctness.skipped.some((s) => s.edge === c));
  const missing = expected.filter((c) => !p.edgeClasses.includes(c));
  if (missing.length) why.push(`edge-value trials not run: ${missing.join(", ")}`);
  if (run.plausibility && !run.plausibility.plausible) {
    why.push(`implausible: ${run.plausibility.detail}`);
  }
  return why;
}
