/**
 * --max-tokens-total: every call's tokens (input + output) are charged after
 * it returns; the budget is exhausted once spent ≥ max. Calls already in
 * flight when it runs out still finish and are charged, so a run may end a
 * little over its budget (by at most its parallel calls).
 */
import { ProviderError } from "./errors.ts";
import type { ChatProvider, ChatReply, ChatRequest, Usage } from "./types.ts";

export class TokenBudget {
  #spent = 0;
  /** The most tokens to spend; Infinity when there is no budget. */
  readonly max: number;

  constructor(maxTotal?: number) {
    if (maxTotal !== undefined && !(Number.isSafeInteger(maxTotal) && maxTotal > 0)) {
      throw new ProviderError(
        "config",
        `the token budget must be a whole number above 0, not ${maxTotal} — fix: pass --max-tokens-total N`,
      );
    }
    this.max = maxTotal ?? Infinity;
  }

  charge(u: Usage): void {
    const n = u.inputTokens + u.outputTokens;
    // A server's count is data: never let a bad one lower what was spent.
    if (Number.isFinite(n) && n > 0) this.#spent += n;
  }

  get spent(): number {
    return this.#spent;
  }

  get exhausted(): boolean {
    return this.#spent >= this.max;
  }

  remaining(): number {
    return Math.max(0, this.max - this.#spent);
  }

  /** Throws a ProviderError of kind "budget" once the budget is spent. */
  check(): void {
    if (!this.exhausted) return;
    throw new ProviderError(
      "budget",
      `the token budget is spent: ${this.#spent} of ${this.max} tokens — fix: raise --max-tokens-total, or continue later with --resume`,
    );
  }
}

/**
 * A provider that refuses calls once the budget is spent, and charges every
 * call's tokens to it — a failed call's too, when it reports what it spent.
 */
export function withBudget(provider: ChatProvider, budget: TokenBudget): ChatProvider {
  return {
    name: provider.name,
    model: provider.model,
    async complete(req: ChatRequest): Promise<ChatReply> {
      budget.check();
      try {
        const reply = await provider.complete(req);
        budget.charge(reply.usage);
        return reply;
      } catch (e) {
        if (e instanceof ProviderError && e.usage) budget.charge(e.usage);
        throw e;
      }
    },
  };
}
