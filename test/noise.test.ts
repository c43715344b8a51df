import { describe, expect, it } from 'vitest';
import { discreteGaussianSupport, discreteGaussianVariance, sampleDiscreteGaussian, sampleDiscreteGaussianCks } from '@dpfed/privacy/discrete-gaussian';
import { discretisationCost, noiseMultiplierCovering, samplerTailMassPerDraw, tailDelta } from '@dpfed/privacy/discretisation-cost';
import { FlatOptimizer } from '@dpfed/client/flat-optimizer';
import { addGaussianNoise, gaussianNoiseVector, noiseGrid, noiseScale, snappingSensitivityIncrease, type IntegerNoiseSource } from '@dpfed/privacy/gaussian-noise';
import { moments } from './helpers/moments.ts';

describe('discrete Gaussian sampler', () => {
  const n = 200_000;
  for (const sigma of [0.7, 3, 50, 1e4, 5_500_000.5, 2 ** 25]) {
    it(`sigma=${sigma}: mean 0 and standard deviation sigma (not sigma^2)`, () => {
      const out = sampleDiscreteGaussian(sigma, new Int32Array(n));
      const { mean, std } = moments(out);
      const trueStd = Math.sqrt(discreteGaussianVariance(sigma));
      expect(Math.abs(mean)).toBeLessThan((5 * trueStd) / Math.sqrt(n));
      // std of the sample std is about std / sqrt(2n): 6 of those
      expect(Math.abs(std / trueStd - 1)).toBeLessThan(6 / Math.sqrt(2 * n));
      if (sigma >= 3) expect(Math.abs(std / sigma - 1)).toBeLessThan(0.02);
    });
  }

  it('matches the exact probability mass function at small sigma', () => {
    const sigma = 1.3;
    const out = sampleDiscreteGaussian(sigma, new Int32Array(n));
    const weight = (x: number) => Math.exp(-(x * x) / (2 * sigma * sigma));
    let total = 0;
    for (let x = -40; x <= 40; x++) total += weight(x);
    const counts = new Map<number, number>();
    for (const x of out) counts.set(x, (counts.get(x) ?? 0) + 1);
    for (let x = -4; x <= 4; x++) {
      const p = weight(x) / total;
      const observed = (counts.get(x) ?? 0) / n;
      expect(Math.abs(observed - p)).toBeLessThan(6 * Math.sqrt((p * (1 - p)) / n));
    }
  });

  it('the table sampler and the CKS 2020 reference sampler give the same law (moments, pmf, tails)', () => {
    for (const sigma of [1.3, 200]) {
      const a = sampleDiscreteGaussian(sigma, new Int32Array(n));
      const b = sampleDiscreteGaussianCks(sigma, new Int32Array(n));
      const ma = moments(a);
      const mb = moments(b);
      const trueStd = Math.sqrt(discreteGaussianVariance(sigma));
      expect(Math.abs(mb.std / trueStd - 1)).toBeLessThan(6 / Math.sqrt(2 * n));
      expect(Math.abs(ma.std / mb.std - 1)).toBeLessThan(8 / Math.sqrt(2 * n));
      // Two-sample comparison of P(|x| > k sigma) for k = 0.5, 1, 2, 3.
      for (const k of [0.5, 1, 2, 3]) {
        const pa = a.filter((x) => Math.abs(x) > k * sigma).length / n;
        const pb = b.filter((x) => Math.abs(x) > k * sigma).length / n;
        const p = (pa + pb) / 2;
        expect(Math.abs(pa - pb)).toBeLessThan(6 * Math.sqrt((2 * p * (1 - p)) / n) + 1e-9);
      }
    }
  });

  it('the table sampler covers values inside a wide bucket (large sigma: odd and even values, no gaps)', () => {
    const sigma = 5_000_000;
    const out = sampleDiscreteGaussian(sigma, new Int32Array(100_000));
    expect(out.some((x) => x % 2 !== 0) && out.some((x) => x % 2 === 0)).toBe(true);
    // Low bits uniform: within a bucket every residue mod 8 is about equally likely.
    const residues = new Array(8).fill(0);
    for (const x of out) residues[((x % 8) + 8) % 8]++;
    for (const r of residues) expect(Math.abs(r / out.length - 1 / 8)).toBeLessThan(6 * Math.sqrt(((1 / 8) * (7 / 8)) / out.length));
  });

  it('fills and returns the given array with integers of both signs', () => {
    const out = new Int32Array(1000);
    expect(sampleDiscreteGaussian(100, out)).toBe(out);
    expect(out.some((x) => x > 0) && out.some((x) => x < 0)).toBe(true);
  });

  it('is not seeded: two draws differ', () => {
    const a = sampleDiscreteGaussian(1000, new Int32Array(64));
    const b = sampleDiscreteGaussian(1000, new Int32Array(64));
    expect(Array.from(a)).not.toEqual(Array.from(b));
  });

  it('refuses a bad sigma, naming it', () => {
    for (const bad of [0, -1, NaN, Infinity, 2 ** 26]) expect(() => sampleDiscreteGaussian(bad, new Int32Array(1))).toThrow(/sigma/);
  });

  it('gives the exact variance at small sigma and sigma^2 at large', () => {
    const s = 0.3;
    const w1 = Math.exp(-1 / (2 * s * s));
    const w2 = Math.exp(-4 / (2 * s * s));
    expect(discreteGaussianVariance(s)).toBeCloseTo((2 * w1 + 8 * w2) / (1 + 2 * w1 + 2 * w2), 12);
    expect(discreteGaussianVariance(s)).toBeLessThan(0.1 * s * s);
    expect(discreteGaussianVariance(5)).toBeCloseTo(25, 10);
    expect(discreteGaussianVariance(1e4)).toBe(1e8);
  });
});

describe('Gaussian noise on a grid', () => {
  const n = 200_000;
  for (const stddev of [0.01, 1, 4, 25]) {
    it(`stddev=${stddev}: empirical mean and standard deviation`, () => {
      const values = new Float32Array(n).fill(0.5);
      addGaussianNoise(values, stddev);
      const { mean, std } = moments(values);
      expect(Math.abs(mean - 0.5)).toBeLessThan((5 * stddev) / Math.sqrt(n) + noiseGrid(n, stddev));
      expect(Math.abs(std / stddev - 1)).toBeLessThan(0.01);
    });
  }

  it('gaussianNoiseVector has the requested standard deviation (a stddev, not a variance)', () => {
    const v = gaussianNoiseVector(n, 3);
    expect(v.length).toBe(n);
    const { mean, std } = moments(v);
    expect(Math.abs(mean)).toBeLessThan(0.05);
    expect(std).toBeGreaterThan(2.97);
    expect(std).toBeLessThan(3.03);
  });

  it('puts every output on the grid, whatever the input', () => {
    const values = new Float32Array(1000);
    for (let i = 0; i < values.length; i++) values[i] = Math.fround(0.1234567 + i * 1e-3);
    const g = noiseGrid(values.length, 1);
    expect(Math.log2(g)).toBe(Math.round(Math.log2(g)));
    expect(g).toBeLessThanOrEqual(1 / 2 ** 10);
    addGaussianNoise(values, 1);
    for (const v of values) expect(Number.isInteger(v / g)).toBe(true);
  });

  it('chooses the documented grid and bounds the sensitivity growth', () => {
    expect(noiseGrid(1, 1)).toBe(2 ** -16);
    expect(noiseGrid(4, 1)).toBe(2 ** -17);
    expect(snappingSensitivityIncrease(1000, 2)).toBeLessThanOrEqual(2 * 2 ** -16);
    // a huge vector is capped by the sampler's range: stddev/g <= 2^25
    expect(2 / noiseGrid(1e8, 2)).toBeLessThanOrEqual(2 ** 25);
    expect(snappingSensitivityIncrease(1e8, 2)).toBeLessThan(2 * 1e-3);
  });

  it('a multiplier scales the noisy lattice value (mean and standard deviation scale with it, outputs on the scaled grid)', () => {
    const values = new Float32Array(n).fill(0.25);
    addGaussianNoise(values, 2, undefined, 0.5);
    const { mean, std } = moments(values);
    expect(Math.abs(mean - 0.125)).toBeLessThan((5 * 1) / Math.sqrt(n));
    expect(Math.abs(std / 1 - 1)).toBeLessThan(0.01);
    const g = noiseGrid(n, 2) * 0.5;
    for (let i = 0; i < 1000; i++) expect(Number.isInteger(values[i] / g)).toBe(true);
  });

  it('takes the integers from a source of the right scale, and refuses one of another scale', () => {
    const length = 4097;
    const scale = noiseScale(length, 3);
    let calls = 0;
    const source = { scale, fill: (out: Int32Array) => (calls++, sampleDiscreteGaussian(scale, out)) };
    const values = new Float32Array(length);
    addGaussianNoise(values, 3, source);
    expect(calls).toBe(1);
    expect(moments(values).std).toBeGreaterThan(2.7);
    expect(moments(values).std).toBeLessThan(3.3);
    expect(() => addGaussianNoise(values, 3, { scale: scale * 2, fill: source.fill })).toThrow(/scale/);
  });

  it('refuses a bad stddev or a non-finite value, naming it', () => {
    for (const bad of [0, -1, NaN, Infinity]) expect(() => addGaussianNoise(new Float32Array(3), bad)).toThrow(/stddev/);
    expect(() => addGaussianNoise(new Float32Array([1, NaN]), 1)).toThrow(/values\[1\]/);
    expect(() => gaussianNoiseVector(-1, 1)).toThrow(/length/);
    expect(() => addGaussianNoise(new Float32Array([1, Infinity]), 1)).toThrow(/values\[1\]/);
    expect(() => addGaussianNoise(new Float32Array(3), 1, undefined, NaN)).toThrow(/multiplier/);
  });
});

describe('Gaussian noise: the snapping kernel, draws lent in place, noise only', () => {
  /** A source of known integers (a test double: real sources draw from node:crypto). */
  function scripted(scale: number, draws: number[], lendRuns?: number) {
    let next = 0;
    const take = (n: number) => draws.slice(next, (next += n));
    const source = {
      scale,
      lent: [] as Int32Array[],
      fill(out: Int32Array) {
        out.set(take(out.length));
      },
      lend: lendRuns
        ? (count: number, use: (d: Int32Array, start: number, length: number, at: number) => void) => {
            // Runs of at most `lendRuns` values, placed at an offset inside a larger array, as a ring does.
            for (let at = 0; at < count; at += lendRuns) {
              const length = Math.min(lendRuns, count - at);
              const ring = new Int32Array(length + 7);
              ring.set(take(length), 3);
              source.lent.push(ring);
              try {
                use(ring, 3, length, at);
              } finally {
                ring.fill(0);
              }
            }
          }
        : undefined,
    };
    return source;
  }

  it('snaps as g·Math.round(x/g) does, bit for bit, at ties, tiny and huge values, both signs (fill and lend paths)', () => {
    const length = 64;
    const stddev = 1;
    const g = noiseGrid(length, stddev);
    const scale = noiseScale(length, stddev);
    const special = [
      0,
      -0,
      0.5,
      -0.5,
      1.5,
      -1.5,
      2.5,
      -2.5,
      1e-12,
      -1e-12,
      2 ** -40,
      -(2 ** -40),
      0.49999997,
      -0.49999997,
      2 ** 52,
      -(2 ** 52),
      2 ** 53 + 2,
      -(2 ** 53) - 2,
      3 * 2 ** 60,
      12345.5,
      -12345.5,
    ];
    const x = new Float32Array(length);
    special.forEach((v, i) => (x[i] = Math.fround(v * g)));
    for (let i = special.length; i < length; i++) x[i] = Math.fround(((i * 7919) % 1000) / 997 - 0.5) * 3;
    const draws = Array.from({ length }, (_, i) => (i % 3) - 1 + (i % 5 === 0 ? 1000 : 0));
    const multiplier = 1 / 48;
    const expected = Float32Array.from(x, (v, i) => (Math.round(v / g) + draws[i]) * g * multiplier);
    for (const lendRuns of [undefined, 10, 64]) {
      const values = Float32Array.from(x);
      const source = scripted(scale, draws, lendRuns);
      addGaussianNoise(values, stddev, source, multiplier);
      expect(Array.from(values)).toEqual(Array.from(expected));
      for (const ring of source.lent) expect(ring.every((v) => v === 0)).toBe(true); // wiped
    }
  });

  it('adds noise only (the same values whether the draws are lent or filled); an SGD step of the flat optimiser on them is params − rate · noisy', () => {
    const length = 301;
    const stddev = 0.7;
    const scale = noiseScale(length, stddev);
    const draws = Array.from(sampleDiscreteGaussian(scale, new Int32Array(length)));
    const gradient = Float32Array.from({ length }, (_, i) => Math.sin(i) * 0.3);
    const start = Float32Array.from({ length }, (_, i) => Math.cos(i));
    const rate = 0.05;
    const results: Float32Array[] = [];
    for (const lendRuns of [undefined, 100]) {
      const noisy = Float32Array.from(gradient);
      addGaussianNoise(noisy, stddev, scripted(scale, draws, lendRuns), 1 / 20);
      results.push(noisy);
      const expected = Float32Array.from(start);
      for (let i = 0; i < length; i++) expected[i] -= rate * noisy[i];
      const params = Float32Array.from(start);
      new FlatOptimizer('sgd', rate, length).apply(params, noisy);
      expect(Array.from(params)).toEqual(Array.from(expected));
    }
    expect(Array.from(results[1])).toEqual(Array.from(results[0]));
  });

  it('names a non-finite value by its index in the whole vector when it lies in a later lent run, and wipes the values', () => {
    const length = 50;
    const scale = noiseScale(length, 1);
    const values = new Float32Array(length).fill(0.25);
    values[37] = NaN;
    const source = scripted(scale, new Array(length).fill(5), 16);
    expect(() => addGaussianNoise(values, 1, source, 1)).toThrow(/values\[37\] is NaN/);
    expect(values.every((v) => Number.isNaN(v))).toBe(true);
    for (const ring of source.lent) expect(ring.every((v) => v === 0)).toBe(true);
  });
});

describe('discretisation cost: snapping growth and the sampler tail, charged', () => {
  /** A source that hands out zeros at the right scale: addGaussianNoise then returns the snapped values. */
  const zeros = (scale: number): IntegerNoiseSource => ({ scale, fill: (out) => out.fill(0) });

  it('the charged noise multiplier is sigma C / (C + g sqrt(d)) with the grid the noise code uses', () => {
    for (const [sigma, clipNorm, dimension] of [
      [1.1, 1, 3000],
      [0.6, 2.5, 1],
      [4, 0.1, 200_000],
      [1, 1, 100_000_000],
    ] as const) {
      const cost = discretisationCost({ noiseMultiplier: sigma, clipNorm, dimension, steps: 10 });
      const g = noiseGrid(dimension, sigma * clipNorm);
      expect(cost.grid).toBe(g);
      expect(cost.sensitivityGrowth).toBe(g * Math.sqrt(dimension));
      expect(cost.sensitivityGrowth).toBe(snappingSensitivityIncrease(dimension, sigma * clipNorm));
      expect(cost.chargedNoiseMultiplier).toBeCloseTo((sigma * clipNorm) / (clipNorm + g * Math.sqrt(dimension)), 15);
      expect(cost.chargedNoiseMultiplier).toBeLessThan(sigma);
      if (dimension <= 2 ** 18) expect(cost.chargedNoiseMultiplier).toBeGreaterThanOrEqual(sigma / (1 + sigma * 2 ** -15));
      expect(cost.chargedNoiseMultiplier).toBeGreaterThanOrEqual(sigma / (1 + sigma * Math.max(2 ** -15, 2 * Math.sqrt(dimension) * 2 ** -25)));
    }
    // a million times more values: a grid that can no longer shrink, so more growth
    const small = discretisationCost({ noiseMultiplier: 1, clipNorm: 1, dimension: 100, steps: 1 });
    const huge = discretisationCost({ noiseMultiplier: 1, clipNorm: 1, dimension: 100_000_000, steps: 1 });
    expect(huge.chargedNoiseMultiplier).toBeLessThan(small.chargedNoiseMultiplier);
  });

  it('snapping really can grow the distance of two neighbouring sums by almost g sqrt(d), and never by more', () => {
    const dimension = 1000;
    const stddev = 3;
    const g = noiseGrid(dimension, stddev);
    const eta = 0.01;
    // every coordinate just below the rounding boundary in one sum and just above it in the other
    const a = new Float32Array(dimension).fill((g / 2) * (1 - eta));
    const b = new Float32Array(dimension).fill((g / 2) * (1 + eta));
    const distance = (x: Float32Array, y: Float32Array) => Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]) ** 2, 0));
    const clipNorm = distance(a, b); // the neighbours' distance before snapping
    const cost = discretisationCost({ noiseMultiplier: stddev / clipNorm, clipNorm, dimension, steps: 1 });
    expect(cost.grid).toBe(g);
    const scale = noiseScale(dimension, stddev);
    addGaussianNoise(a, stddev, zeros(scale));
    addGaussianNoise(b, stddev, zeros(scale));
    const snapped = distance(a, b);
    expect(snapped).toBeLessThanOrEqual(clipNorm + cost.sensitivityGrowth);
    expect(snapped).toBeGreaterThan(clipNorm + 0.95 * cost.sensitivityGrowth);
    // random neighbours stay within the bound too
    for (let trial = 0; trial < 20; trial++) {
      const x = Float32Array.from({ length: dimension }, () => (Math.random() - 0.5) * 40 * g);
      const y = Float32Array.from(x, (v) => v + (Math.random() - 0.5) * 2 * g);
      const before = distance(x, y);
      addGaussianNoise(x, stddev, zeros(scale));
      addGaussianNoise(y, stddev, zeros(scale));
      expect(distance(x, y)).toBeLessThanOrEqual(before + cost.sensitivityGrowth);
    }
  });

  it('the sampler tail bound is at least the exact mass outside the sampler support, and not far above it', () => {
    for (const scale of [0.5, 1, 3, 20, 100]) {
      const { low, high } = discreteGaussianSupport(scale);
      expect(high + 1).toBeGreaterThanOrEqual(9.5 * scale + 1);
      expect(-low).toBeGreaterThanOrEqual(9.5 * scale + 1);
      // exact: sum of the pmf outside [low, high], by direct summation (terms far out are below 1e-300)
      const weight = (x: number) => Math.exp(-(x * x) / (2 * scale * scale));
      let total = 0;
      for (let x = -Math.ceil(60 * scale) - 5; x <= Math.ceil(60 * scale) + 5; x++) total += weight(x);
      let outside = 0;
      for (let x = high + 1; x <= Math.ceil(60 * scale) + 5; x++) outside += weight(x);
      for (let x = low - 1; x >= -Math.ceil(60 * scale) - 5; x--) outside += weight(x);
      const exact = outside / total;
      const bound = samplerTailMassPerDraw(scale);
      expect(bound).toBeGreaterThanOrEqual(exact);
      expect(bound).toBeLessThan(exact * 200 + 1e-300);
      expect(bound).toBeLessThan(2.2e-21);
    }
    // the sampler never leaves its support
    const draws = sampleDiscreteGaussian(0.8, new Int32Array(100_000));
    const { low, high } = discreteGaussianSupport(0.8);
    expect(Math.min(...draws)).toBeGreaterThanOrEqual(low);
    expect(Math.max(...draws)).toBeLessThanOrEqual(high);
  });

  it('the run tail mass is steps x d x the per-draw mass, charged to delta as (1 + e^epsilon) times it', () => {
    const cost = discretisationCost({ noiseMultiplier: 1.2, clipNorm: 1, dimension: 5000, steps: 300 });
    expect(cost.tailMassPerDraw).toBe(samplerTailMassPerDraw((1.2 * 1) / cost.grid));
    expect(cost.samplerTailMass).toBeCloseTo(300 * 5000 * cost.tailMassPerDraw, 30);
    expect(tailDelta(cost.samplerTailMass, 3)).toBeCloseTo((1 + Math.exp(3)) * cost.samplerTailMass, 30);
    expect(tailDelta(0, 3)).toBe(0);
    const twice = discretisationCost({ noiseMultiplier: 1.2, clipNorm: 1, dimension: 5000, steps: 600 });
    expect(twice.samplerTailMass).toBeCloseTo(2 * cost.samplerTailMass, 30);
  });

  it('noiseMultiplierCovering adds just enough noise for the charged multiplier to reach the target', () => {
    for (const [target, clipNorm, dimension] of [
      [1.1, 1, 3000],
      [0.9, 2, 100_000_000],
      [3, 0.5, 1],
    ] as const) {
      const sigma = noiseMultiplierCovering(target, clipNorm, dimension);
      const charged = discretisationCost({ noiseMultiplier: sigma, clipNorm, dimension, steps: 1 }).chargedNoiseMultiplier;
      expect(charged).toBeGreaterThanOrEqual(target);
      expect(sigma).toBeGreaterThan(target);
      expect(sigma / target - 1).toBeLessThan(4 * (target * (1 + Math.sqrt(dimension) * 2 ** -9)) * 2 ** -16);
    }
  });

  it('refuses bad input, naming the field', () => {
    expect(() => discretisationCost({ noiseMultiplier: 0, clipNorm: 1, dimension: 1, steps: 1 })).toThrow(/noiseMultiplier/);
    expect(() => discretisationCost({ noiseMultiplier: 1, clipNorm: NaN, dimension: 1, steps: 1 })).toThrow(/clipNorm/);
    expect(() => discretisationCost({ noiseMultiplier: 1, clipNorm: 1, dimension: 1.5, steps: 1 })).toThrow(/dimension/);
    expect(() => discretisationCost({ noiseMultiplier: 1, clipNorm: 1, dimension: 1, steps: 0 })).toThrow(/steps/);
    expect(() => tailDelta(-1, 1)).toThrow(/samplerTailMass/);
    expect(() => tailDelta(0, -1)).toThrow(/epsilon/);
  });
});
