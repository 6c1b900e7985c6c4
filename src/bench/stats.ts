/**
 * Sample statistics. Every sample is kept; the summary is min, median,
 * mean, p10, p90 and standard deviation, and stability comes from the
 * spread of the samples (not from mean vs median, which is blind to it).
 */

export interface Summary {
  n: number;
  min: number;
  median: number;
  mean: number;
  p10: number;
  p90: number;
  max: number;
  stddev: number;
}

/** Linear-interpolated quantile of sorted values (q in [0, 1]). */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function summarize(samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  const mean = n ? sorted.reduce((a, b) => a + b, 0) / n : NaN;
  const variance = n > 1 ? sorted.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1) : 0;
  return {
    n,
    min: sorted[0] ?? NaN,
    median: quantile(sorted, 0.5),
    mean,
    p10: quantile(sorted, 0.1),
    p90: quantile(sorted, 0.9),
    max: sorted[n - 1] ?? NaN,
    stddev: Math.sqrt(variance),
  };
}

/**
 * Stability in [0, 1]: 1 - (p90 - p10) / median, clipped. It is 1 when the
 * middle 80% of samples coincide and falls as they spread: a 10% spread
 * gives 0.90. Robust to a few outliers, unlike the standard deviation.
 */
export function stability(s: Summary): number {
  if (!(s.median > 0)) return 0;
  return Math.min(1, Math.max(0, 1 - (s.p90 - s.p10) / s.median));
}

/** Geometric mean of positive values (NaN for none). */
export function geomean(values: number[]): number {
  const v = values.filter((x) => x > 0 && Number.isFinite(x));
  if (!v.length) return NaN;
  return Math.exp(v.reduce((a, b) => a + Math.log(b), 0) / v.length);
}
