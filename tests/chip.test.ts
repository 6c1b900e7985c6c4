import assert from "node:assert/strict";
import { chipFromBrand, parseBrandString } from "../src/backend/chip.ts";

Deno.test("brand strings of every M-series chip parse to generation and tier", () => {
  const table: [string, number, string, string][] = [
    ["Apple M1", 1, "base", "apple-m1"],
    ["Apple M1 Pro", 1, "pro", "apple-m1-pro"],
    ["Apple M1 Max", 1, "max", "apple-m1-max"],
    ["Apple M1 Ultra", 1, "ultra", "apple-m1-ultra"],
    ["Apple M2", 2, "base", "apple-m2"],
    ["Apple M2 Pro", 2, "pro", "apple-m2-pro"],
    ["Apple M2 Max", 2, "max", "apple-m2-max"],
    ["Apple M2 Ultra", 2, "ultra", "apple-m2-ultra"],
    ["Apple M3", 3, "base", "apple-m3"],
    ["Apple M3 Pro", 3, "pro", "apple-m3-pro"],
    ["Apple M3 Max", 3, "max", "apple-m3-max"],
    ["Apple M3 Ultra", 3, "ultra", "apple-m3-ultra"],
    ["Apple M4", 4, "base", "apple-m4"],
    ["Apple M4 Pro", 4, "pro", "apple-m4-pro"],
    ["Apple M4 Max", 4, "max", "apple-m4-max"],
    ["Apple M5", 5, "base", "apple-m5"],
  ];
  for (const [brand, gen, tier, bucket] of table) {
    assert.deepEqual(parseBrandString(brand), { generation: gen, tier }, brand);
    assert.equal(chipFromBrand(brand, 0)?.bucket, bucket, brand);
    assert.equal(chipFromBrand(brand, 0)?.variant, `m${gen}`);
  }
  for (
    const other of ["Intel(R) Core(TM) i9-9880H CPU @ 2.30GHz", "Apple A17 Pro", "", "Apple M9"]
  ) {
    assert.equal(parseBrandString(other), undefined, other);
  }
});

Deno.test("peak FP32 scales with the detected GPU cores; bandwidth follows the configuration", () => {
  const m2full = chipFromBrand("Apple M2", 10)!;
  const m2small = chipFromBrand("Apple M2", 8)!;
  assert.equal(m2full.peakGflops, 3600);
  assert.equal(m2small.peakGflops, 3600 * 0.8);
  assert.equal(m2full.peakGBps, 100);
  assert.equal(chipFromBrand("Apple M3 Max", 30)!.peakGBps, 300);
  assert.equal(chipFromBrand("Apple M3 Max", 40)!.peakGBps, 400);
  assert.equal(chipFromBrand("Apple M1", 7)!.peakGBps, 68.25);
});
