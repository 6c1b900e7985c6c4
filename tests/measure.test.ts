import assert from "node:assert/strict";
import { quantile, stability, summarize } from "../src/bench/stats.ts";
import { compare, passes } from "../src/bench/compare.ts";
import { draw, makeTensor } from "../src/bench/inputs.ts";
import { fastP, scores } from "../src/bench/scores.ts";
import type { ResolvedTensor } from "../src/registry/problem.ts";

Deno.test("summary keeps the order statistics of every sample", () => {
  const s = summarize([5, 1, 4, 2, 3]);
  assert.deepEqual([s.n, s.min, s.median, s.mean, s.max], [5, 1, 3, 3, 5]);
  assert.equal(quantile([1, 2, 3, 4, 5], 0.9), 4.6);
  assert.ok(Math.abs(s.stddev - Math.sqrt(2.5)) < 1e-12);
});

Deno.test("stability falls with the spread of samples, even when mean equals median", () => {
  // Symmetric spread: the seed's 1 - |median - mean|/mean would call both 1.0.
  const tight = summarize([10, 10, 10, 10, 10, 10, 10, 10, 10, 10]);
  const wide = summarize([5, 6, 7, 8, 10, 10, 12, 13, 14, 15]);
  assert.equal(stability(tight), 1);
  assert.ok(Math.abs(wide.mean - wide.median) < 1e-9);
  assert.ok(stability(wide) < 0.5, `stability ${stability(wide)}`);
});

Deno.test("comparison: tolerance, NaN poison, non-finite matches", () => {
  const tol = { rtol: 1e-3, stol: 0, atol: 1e-6 };
  const ref = Float64Array.from([1, -2, 0, NaN, Infinity]);
  assert.ok(passes(compare(Float64Array.from([1.0005, -2, 0, NaN, Infinity]), ref, tol)));
  const poisoned = compare(Float64Array.from([1, -2, NaN, NaN, Infinity]), ref, tol);
  assert.equal(poisoned.within, 4);
  assert.equal(poisoned.nonFiniteMismatches, 1);
  assert.equal(poisoned.firstFailure, 2);
  const off = compare(Float64Array.from([1.01, -2, 0, NaN, -Infinity]), ref, tol);
  assert.equal(off.within, 3);
  assert.ok(Math.abs(off.maxAbsError - 0.01) < 1e-12);
});

const tensor = (
  init: ResolvedTensor["init"],
  numel = 10000,
  dtype: ResolvedTensor["dtype"] = "float32",
): ResolvedTensor => ({
  name: "x",
  role: "input",
  shape: [numel],
  dtype,
  init,
  numel,
  bytes: numel * 4,
});

Deno.test("inputs are a function of the seed: same seed same bytes, next seed different", () => {
  const t = tensor({ kind: "normal", mean: 0, std: 1 });
  assert.deepEqual(makeTensor(t, 7), makeTensor(t, 7));
  assert.notDeepEqual(makeTensor(t, 7), makeTensor(t, 8));
});

Deno.test("distributions: moments and ranges", () => {
  const n = 20000;
  const normal = draw({ kind: "normal", mean: 2, std: 3 }, n, 1);
  const mean = normal.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(normal.reduce((a, b) => a + (b - mean) ** 2, 0) / n);
  assert.ok(Math.abs(mean - 2) < 0.1 && Math.abs(sd - 3) < 0.1, `${mean} ${sd}`);
  const ints = draw({ kind: "randint", low: 3, high: 9 }, n, 2);
  assert.ok(ints.every((v) => Number.isInteger(v) && v >= 3 && v < 9));
  assert.equal(new Set(ints).size, 6);
  const mask = draw({ kind: "bernoulli", p: 0.25 }, n, 3);
  const ones = mask.filter((v) => v === 1).length / n;
  assert.ok(Math.abs(ones - 0.25) < 0.02);
  const uni = draw({ kind: "uniform", low: 0.5, high: 2 }, n, 4);
  assert.ok(uni.every((v) => v >= 0.5 && v < 2));
});

Deno.test("scores: balanced composite and fast_p", () => {
  const s = scores({ speedup: 2, gflops: 1000, gbps: 50, stability: 0.5 });
  assert.equal(s.balanced, 0.5 * 2 + 0.3 * 1 + 0.2 * 0.5);
  const runs = [
    { correct: true, speedup: 2.5 },
    { correct: true, speedup: 1.2 },
    { correct: false, speedup: 3 },
    { correct: true, speedup: 0.5 },
  ];
  assert.deepEqual([0, 1, 1.5, 2].map((p) => fastP(runs, p)), [0.75, 0.5, 0.25, 0.25]);
});
