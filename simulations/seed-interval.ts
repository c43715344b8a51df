// The mean of one figure over a sweep's seeds with its 95 % confidence interval (Student's t, n − 1
// degrees of freedom), for the bands of the simulation plots. Computed here rather than with Vega-Lite's
// `ci0`/`ci1` aggregates, which bootstrap with an unseeded random source and so would draw a different
// band on every render.

export interface SeedInterval {
  mean: number;
  /** Lower and upper end of the 95 % interval; null with a single value (no spread to estimate). */
  low: number | null;
  high: number | null;
  n: number;
}

/** Two-sided 95 % quantiles of Student's t for 1 to 30 degrees of freedom. */
const T95 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045,
  2.042,
];

/**
 * t quantile for `df` degrees of freedom; past the table, the Cornish–Fisher expansion around the normal
 * quantile z = 1.959964 to second order in 1/df (within 1e-4 of the exact quantile from 31 on).
 */
export function t95(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`t95: degrees of freedom must be a positive integer, got ${df}`);
  return df <= T95.length ? T95[df - 1] : 1.959964 + 2.372271 / df + 2.822499 / df ** 2;
}

/** Mean and 95 % interval of `values`; `bounds` clips the interval (e.g. [0, 1] for an AUC). */
export function seedInterval(values: readonly number[], bounds?: readonly [number, number]): SeedInterval {
  const n = values.length;
  if (n === 0) throw new RangeError('seedInterval: no values');
  for (const v of values) if (!Number.isFinite(v)) throw new RangeError(`seedInterval: not a finite number: ${v}`);
  const mean = values.reduce((s, v) => s + v, 0) / n;
  if (n === 1) return { mean, low: null, high: null, n };
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1);
  const half = t95(n - 1) * Math.sqrt(variance / n);
  let low = mean - half;
  let high = mean + half;
  if (bounds) {
    low = Math.max(bounds[0], low);
    high = Math.min(bounds[1], high);
  }
  return { mean, low, high, n };
}
