/**
 * The loop's policy as data: how many rounds, candidates and retries, when
 * to stop. The orchestrator reads it and never hard-codes a number; the CLI
 * fills it from flags.
 */

export interface LoopPolicy {
  /** Rounds this invocation runs at most (a resumed lineage counts from where it is). */
  maxRounds: number;
  /** Stop after this many rounds in a row without a kept candidate (this invocation). */
  patience: number;
  /** Candidates written in parallel each round, from the current best (best-of-K). */
  candidates: number;
  /** Retries of one candidate fed back after a rejected reply, a compile error, a fault or a wrong result. */
  retries: number;
  /** Kernels optimized at once, each its own lineage. */
  parallel: number;
  /** One LLM call turns the profile facts into a diagnosis (off: the facts alone). */
  diagnosis: boolean;
  /** Largest reply, per call. */
  maxTokens: number;
  /** Tokens (input + output) for the whole run; a clean stop when spent. Undefined: no budget. */
  maxTokensTotal?: number;
}

export const DEFAULT_POLICY: LoopPolicy = {
  maxRounds: 5,
  patience: 3,
  candidates: 2,
  retries: 4,
  parallel: 1,
  diagnosis: true,
  maxTokens: 8192,
};

/**
 * Why a lineage stopped. The first two are the policy's ends; the others
 * stop early (each maps to an exit code in the CLI).
 */
export type StopReason =
  | "max-rounds"
  | "patience"
  /** --max-tokens-total spent: a clean stop, --resume continues. */
  | "budget"
  | "interrupted"
  /** The lineage has entries and neither --resume nor --rebaseline was given. */
  | "usage"
  /** The kernel file is not the lineage's current source. */
  | "kernel-file-changed"
  /** The kernel is not correct as it is: nothing to improve from. */
  | "incorrect-baseline"
  /** The LLM could not be reached (after the provider's own retries). */
  | "provider"
  /** Anything else that went wrong (the MLX worker, the backend, a bug). */
  | "error";

/** Whether another round may start, or why not (the budget and signals are checked elsewhere). */
export function nextRoundAllowed(
  policy: LoopPolicy,
  roundsRun: number,
  roundsWithoutGain: number,
): StopReason | null {
  if (roundsRun >= policy.maxRounds) return "max-rounds";
  if (roundsWithoutGain >= policy.patience) return "patience";
  return null;
}

/** A lineage's stop, thrown or returned, with its one-line reason. */
export class Stop {
  constructor(readonly reason: StopReason, readonly message: string, readonly error?: unknown) {}
}
