/**
 * How a weld ends when it does not land: the stage that failed and why, in
 * one line. A failed weld never changes the workspace's problem files.
 */
export type Stage = 0 | 1 | 2;

export const STAGE_NAMES: Record<Stage, string> = {
  0: "the PyTorch reference",
  1: "the MLX reference against PyTorch",
  2: "the Metal kernel against MLX",
};

export class WeldFailure extends Error {
  override name = "WeldFailure";
  constructor(
    readonly stage: Stage,
    readonly reason: string,
    /** degenerate: the problem is not worth a kernel (constant output, an input unused). */
    readonly kind: "failed" | "degenerate" = "failed",
    /** Final: doing it again would fail the same way (not the LLM's or the network's luck). */
    readonly final = true,
  ) {
    super(
      `stage ${stage} (${STAGE_NAMES[stage]}): ${
        kind === "degenerate" ? "degenerate: " : ""
      }${reason}`,
    );
  }
}

/** One line of at most `max` characters: newlines folded, the rest cut with "…". */
export function oneLine(text: string, max = 300): string {
  const line = text.replace(/\s*\n\s*/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
