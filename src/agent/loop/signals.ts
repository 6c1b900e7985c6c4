/**
 * Stop signals (Deno-only API, kept here alone): SIGINT (Ctrl-C), SIGTERM
 * and SIGHUP (the SSH session went away) abort the run's signal, so every
 * step stops at its next check and the locks are released on the way out;
 * the process then exits 128 + the signal's number (130, 143, 129). A
 * second signal exits at once. kill -9 cannot be caught and needs nothing:
 * the kernel file never holds an unverified candidate, and the OS drops the
 * locks of a dead process.
 */

export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

export interface StopHandle extends Disposable {
  readonly signal: AbortSignal;
  /** The signal that stopped the run, if one did. */
  readonly received: StopSignal | null;
}

/**
 * Listen for the stop signals until disposed. `onFirst` runs once, on the
 * first one (a progress line, say).
 */
export function listenForStop(onFirst: (sig: StopSignal) => void): StopHandle {
  const controller = new AbortController();
  let received: StopSignal | null = null;
  const listeners: [StopSignal, () => void][] = [];
  for (const sig of Object.keys(STOP_SIGNALS) as StopSignal[]) {
    const listener = () => {
      if (received !== null) Deno.exit(STOP_SIGNALS[received]);
      received = sig;
      onFirst(sig);
      controller.abort(new DOMException(`stopped by ${sig}`, "AbortError"));
    };
    try {
      Deno.addSignalListener(sig, listener);
      listeners.push([sig, listener]);
    } catch {
      // Not every platform has every signal (Windows has SIGINT only).
    }
  }
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    [Symbol.dispose]() {
      for (const [sig, listener] of listeners) Deno.removeSignalListener(sig, listener);
    },
  };
}
