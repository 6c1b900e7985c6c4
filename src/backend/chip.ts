/**
 * Apple Silicon chip detection and the chip table (peak bandwidth and FP32
 * throughput per variant, from ../shared/spec/CHIPS.md). FP32 peak scales
 * with the GPU core count, so it is computed from the detected cores.
 */
import type { DeviceInfo } from "./bridge.ts";

export type Generation = 1 | 2 | 3 | 4 | 5;
export type Tier = "base" | "pro" | "max" | "ultra";

export interface ChipInfo {
  /** "Apple M2 Pro" */
  name: string;
  generation: Generation;
  tier: Tier;
  /** apple-m2-pro: results/<bucket>/ and session.json's key. */
  bucket: string;
  /** m2: the per-chip kernel variant name (kernels/<set>/<name>/m2.metal). */
  variant: string;
  gpuCores: number;
  /** Peak memory bandwidth, GB/s. */
  peakGBps: number;
  /** FP32 peak for the detected core count, GFLOPS. */
  peakGflops: number;
}

/** "Apple M2 Pro" -> generation 2, tier pro; undefined for anything else. */
export function parseBrandString(
  brand: string,
): { generation: Generation; tier: Tier } | undefined {
  const m = /\bApple M([1-9])(?:\s+(Pro|Max|Ultra))?\b/i.exec(brand.trim());
  if (!m) return undefined;
  const generation = Number(m[1]);
  if (generation < 1 || generation > 5) return undefined;
  return {
    generation: generation as Generation,
    tier: (m[2]?.toLowerCase() ?? "base") as Tier,
  };
}

interface TableRow {
  /** Memory bandwidth (GB/s); where a tier has two figures, the lower core count's first. */
  gbps: number | [number, number];
  /** GPU core counts of the tier's configurations (low..high). */
  cores: [number, number];
  /** FP32 TFLOPS at the high core count. */
  tflopsAtMax: number;
}

/** ../shared/spec/CHIPS.md: public figures, "≈" estimates for M3–M5. */
const TABLE: Record<Generation, Partial<Record<Tier, TableRow>>> = {
  1: {
    base: { gbps: 68.25, cores: [7, 8], tflopsAtMax: 2.6 },
    pro: { gbps: 200, cores: [14, 16], tflopsAtMax: 5.3 },
    max: { gbps: 400, cores: [24, 32], tflopsAtMax: 10.6 },
    ultra: { gbps: 800, cores: [48, 64], tflopsAtMax: 21.2 },
  },
  2: {
    base: { gbps: 100, cores: [8, 10], tflopsAtMax: 3.6 },
    pro: { gbps: 200, cores: [16, 19], tflopsAtMax: 6.8 },
    max: { gbps: 400, cores: [30, 38], tflopsAtMax: 13.6 },
    ultra: { gbps: 800, cores: [60, 76], tflopsAtMax: 27.2 },
  },
  3: {
    base: { gbps: 100, cores: [8, 10], tflopsAtMax: 4.1 },
    pro: { gbps: 150, cores: [14, 18], tflopsAtMax: 7.4 },
    max: { gbps: [300, 400], cores: [30, 40], tflopsAtMax: 14.2 },
    ultra: { gbps: 819, cores: [60, 80], tflopsAtMax: 28.4 },
  },
  4: {
    base: { gbps: 120, cores: [8, 10], tflopsAtMax: 4.6 },
    pro: { gbps: 273, cores: [16, 20], tflopsAtMax: 9.2 },
    max: { gbps: [410, 546], cores: [32, 40], tflopsAtMax: 18.4 },
  },
  5: {
    base: { gbps: 153, cores: [10, 10], tflopsAtMax: 5.7 },
    pro: { gbps: 307, cores: [20, 20], tflopsAtMax: 11.4 },
    max: { gbps: 614, cores: [40, 40], tflopsAtMax: 22.8 },
  },
};

/** Peak figures for a chip with `gpuCores` cores (0: unknown, assume the largest). */
export function peaks(generation: Generation, tier: Tier, gpuCores: number) {
  const row = TABLE[generation][tier] ?? TABLE[generation].base!;
  const cores = gpuCores > 0 ? gpuCores : row.cores[1];
  const gbps = Array.isArray(row.gbps)
    ? (cores <= row.cores[0] ? row.gbps[0] : row.gbps[1])
    : row.gbps;
  // FP32 peak scales with cores: the table's figure is for the top configuration.
  const gflops = (row.tflopsAtMax * 1000 * cores) / row.cores[1];
  return { gbps, gflops, cores };
}

export function chipFromBrand(brand: string, gpuCores: number): ChipInfo | undefined {
  const parsed = parseBrandString(brand);
  if (!parsed) return undefined;
  const { generation, tier } = parsed;
  const p = peaks(generation, tier, gpuCores);
  return {
    name: brand.trim(),
    generation,
    tier,
    bucket: `apple-m${generation}${tier === "base" ? "" : `-${tier}`}`,
    variant: `m${generation}`,
    gpuCores: p.cores,
    peakGBps: p.gbps,
    peakGflops: p.gflops,
  };
}

async function sysctl(name: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("sysctl", {
      args: ["-n", name],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
  } catch {
    return undefined;
  }
}

/** The chip of this Mac, from sysctl and the Metal device's core count. */
export async function detectChip(info: DeviceInfo): Promise<ChipInfo | null> {
  const brand = (await sysctl("machdep.cpu.brand_string")) ?? info.name;
  return chipFromBrand(brand, info.gpu_cores) ?? chipFromBrand(info.name, info.gpu_cores) ?? null;
}
