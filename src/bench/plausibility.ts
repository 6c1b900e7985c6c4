/**
 * A roofline floor: no kernel moves its compulsory bytes faster than the
 * device's memory allows, nor does its FLOPs faster than its peak. A run
 * beyond that is a finding (a timing hack, a harness bug, wrong counts in
 * the registry), never a record: it is flagged and kept off the leaderboard.
 *
 * Ceilings leave room for what is real: caches (an Apple GPU's system-level
 * cache can serve a small problem faster than DRAM), and half-precision or
 * matrix-unit rates above the FP32 peak.
 */
import type { ChipInfo } from "../backend/chip.ts";

export interface Ceilings {
  gbps: number;
  gflops: number;
  /** Where the figures come from, for the report. */
  basis: string;
}

/** Cache and low-precision headroom over the chip table's DRAM and FP32 figures. */
const CACHE_FACTOR = 3;
const LOW_PRECISION_FACTOR = 4;

/** No CPU running the simulator comes near these. */
const SIMULATOR: Ceilings = {
  gbps: 2000,
  gflops: 20000,
  basis: "simulator ceilings: 2000 GB/s, 20000 GFLOPS",
};

export function ceilingsFor(chip: ChipInfo | null, lowPrecision: boolean): Ceilings {
  if (!chip) return SIMULATOR;
  const gbps = chip.peakGBps * CACHE_FACTOR;
  const gflops = chip.peakGflops * (lowPrecision ? LOW_PRECISION_FACTOR : 1.25);
  return {
    gbps,
    gflops,
    basis: `${chip.name}: ${gbps.toFixed(0)} GB/s (${CACHE_FACTOR}× DRAM peak), ${
      gflops.toFixed(0)
    } GFLOPS`,
  };
}

export interface Plausibility {
  plausible: boolean;
  detail: string;
}

/** Judge a per-launch time (ns) against the problem's bytes and FLOPs. */
export function judgePlausibility(
  timesNs: { label: string; ns: number }[],
  bytes: number,
  flops: number,
  ceilings: Ceilings,
): Plausibility {
  const floorNs = Math.max(bytes / ceilings.gbps, flops / ceilings.gflops);
  for (const t of timesNs) {
    if (t.ns < floorNs) {
      return {
        plausible: false,
        detail: `${t.label} ${(t.ns / 1e6).toPrecision(3)} ms is faster than the ${
          (floorNs / 1e6).toPrecision(3)
        } ms that ${bytes} bytes and ${flops} FLOPs need at most (${ceilings.basis})`,
      };
    }
  }
  return { plausible: true, detail: `within ${ceilings.basis}` };
}
