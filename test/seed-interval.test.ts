// The mean over seeds and its 95 % interval (Student's t) that the sim plots draw as bands.
import { describe, expect, it } from 'vitest';
import { seedInterval, t95 } from '@dpfed/simulations/seed-interval';

describe('seedInterval', () => {
  it('mean ± t(0.975, n−1)·s/√n', () => {
    const i = seedInterval([1, 2, 3]); // s = 1, t(0.975, 2) = 4.303
    expect(i.mean).toBe(2);
    expect(i.n).toBe(3);
    expect(i.low).toBeCloseTo(2 - 4.303 / Math.sqrt(3), 10);
    expect(i.high).toBeCloseTo(2 + 4.303 / Math.sqrt(3), 10);
    const ten = seedInterval([0.81, 0.83, 0.8, 0.84, 0.82, 0.85, 0.79, 0.83, 0.82, 0.81]);
    const s = Math.sqrt([0.81, 0.83, 0.8, 0.84, 0.82, 0.85, 0.79, 0.83, 0.82, 0.81].reduce((a, v) => a + (v - 0.82) ** 2, 0) / 9);
    expect(ten.high! - ten.mean).toBeCloseTo((2.262 * s) / Math.sqrt(10), 10);
  });

  it('no interval from one seed; bounds clip it; bad input is refused', () => {
    expect(seedInterval([0.9])).toEqual({ mean: 0.9, low: null, high: null, n: 1 });
    const clipped = seedInterval([0.98, 1, 0.99], [0, 1]);
    expect(clipped.high).toBe(1);
    expect(clipped.low).toBeLessThan(0.99);
    expect(() => seedInterval([])).toThrow(/no values/);
    expect(() => seedInterval([1, Number.NaN])).toThrow(/not a finite number/);
  });

  it('t quantiles: the table, then close to the normal quantile for many seeds', () => {
    expect(t95(1)).toBe(12.706);
    expect(t95(30)).toBe(2.042);
    expect(t95(31)).toBeCloseTo(2.0395, 3);
    expect(t95(60)).toBeCloseTo(2.0003, 3);
    expect(t95(120)).toBeCloseTo(1.9799, 3);
    expect(() => t95(0)).toThrow(/positive integer/);
  });
});
