/**
 * Rotating buffers for the timed launches. The kernel gets two input sets
 * (different values) and two output sets, and the launches pair them so
 * that each output set receives the two input sets in turn:
 *
 *   launch 0: in0 → out0   launch 1: in1 → out1
 *   launch 2: in1 → out0   launch 3: in0 → out1
 *
 * After the timed runs each output set is checked against the reference of
 * the input it last received. An output left over from an earlier launch,
 * or a result cached under any key, is then wrong: the same output buffer
 * last saw other inputs. Every timed call runs a whole number of rotations,
 * so the last writer of out0 is in1 and of out1 is in0 — never the pairing
 * a kernel that skips work after its first launch would have left.
 */

export const ROTATION_SETS = 2;

export interface Pairing {
  input: number;
  output: number;
}

export const PAIRINGS: readonly Pairing[] = [
  { input: 0, output: 0 },
  { input: 1, output: 1 },
  { input: 1, output: 0 },
  { input: 0, output: 1 },
];

/** Samples per timed call must be a multiple of this, so calls end on whole rotations. */
export function sampleQuantum(batch: number): number {
  const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
  return PAIRINGS.length / gcd(PAIRINGS.length, batch);
}

/** `samples` rounded up to whole rotations. */
export const wholeRotations = (samples: number, batch: number) => {
  const q = sampleQuantum(batch);
  return Math.ceil(samples / q) * q;
};

/**
 * Which input set each output set last received. A run of the command
 * restarts at launch 0, so each call is applied from the first pairing.
 */
export class RotationState {
  readonly lastInput: (number | null)[] = Array(ROTATION_SETS).fill(null);

  /** Record a run of `launches` launches (samples × batch). */
  ran(launches: number) {
    const seen = new Set<number>();
    for (let j = launches - 1; j >= 0 && seen.size < ROTATION_SETS; j--) {
      const p = PAIRINGS[j % PAIRINGS.length];
      if (seen.has(p.output)) continue;
      seen.add(p.output);
      this.lastInput[p.output] = p.input;
    }
  }
}
