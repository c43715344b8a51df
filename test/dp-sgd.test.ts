import type { Tensor } from '@dpfed/client/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectBackend } from '@dpfed/client/tf-backend';
import { FlatOptimizer } from '@dpfed/client/flat-optimizer';
import { DpSgd } from '@dpfed/privacy/dp-sgd';
import type { LayerTrace } from './reference/ghost-clipping-tensors.ts';
import { TensorDpSgd } from './reference/tensor-dp-sgd.ts';
import { poissonSample } from '@dpfed/privacy/poisson-sampling';
import { sampleDiscreteGaussian } from '@dpfed/privacy/discrete-gaussian';
import { noiseGrid, noiseScale } from '@dpfed/privacy/gaussian-noise';

type Tf = typeof import('@dpfed/client/tfjs');
let tf: Tf;

beforeAll(async () => {
  tf = (await selectBackend('wasm')).tf;
});

function moments(values: Float64Array | number[]): { mean: number; sd: number } {
  let mean = 0;
  for (const v of values) mean += v;
  mean /= values.length;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  return { mean, sd: Math.sqrt(ss / (values.length - 1)) };
}

/**
 * A dense layer trace in which every one of `rows` examples has the same gradient: input a = (3, 4) (|a| = 5),
 * output gradient g = (1) → weight gradient (3, 4), bias gradient 1: norm √26 per example.
 */
function constantTraces(rows: number): LayerTrace[] {
  const a = tf.tensor2d(Array.from({ length: rows }, () => [3, 4]));
  const g = tf.ones([rows, 1]);
  return [{ kind: 'dense', input: a, outputGrad: g, batchGradient: (x, y) => [tf.matMul(x as never, y as never, true, false), tf.sum(y, 0)] }];
}

describe('Poisson sampling', () => {
  it('includes each example with probability q, indices sorted, unique, in range', () => {
    const n = 100_000;
    const q = 0.01;
    const draws = 60;
    const sizes: number[] = [];
    let firstHalf = 0;
    let total = 0;
    for (let d = 0; d < draws; d++) {
      const s = poissonSample(n, q);
      sizes.push(s.length);
      for (let i = 0; i < s.length; i++) {
        if (!(s[i] >= 0 && s[i] < n)) throw new Error(`index ${s[i]} out of range`);
        if (i > 0 && s[i] <= s[i - 1]) throw new Error(`indices not strictly increasing at ${i}`);
        if (s[i] < n / 2) firstHalf++;
      }
      total += s.length;
    }
    const { mean, sd } = moments(sizes);
    const expectedSd = Math.sqrt(n * q * (1 - q));
    // Mean within 5 standard errors; spread of sizes as a binomial's (chi-square-ish bound).
    expect(Math.abs(mean - n * q)).toBeLessThan((5 * expectedSd) / Math.sqrt(draws));
    expect(sd).toBeGreaterThan(expectedSd * 0.6);
    expect(sd).toBeLessThan(expectedSd * 1.4);
    // No positional bias.
    expect(Math.abs(firstHalf / total - 0.5)).toBeLessThan(0.02);
  });

  it('gives different batches each time (CSPRNG, not a fixed seed)', () => {
    const a = poissonSample(10_000, 0.05);
    const b = poissonSample(10_000, 0.05);
    expect(Array.from(a)).not.toEqual(Array.from(b));
  });

  it('takes everything at q = 1 and refuses bad rates', () => {
    expect(Array.from(poissonSample(5, 1))).toEqual([0, 1, 2, 3, 4]);
    expect(poissonSample(0, 0.5).length).toBe(0);
    expect(() => poissonSample(10, 0)).toThrow(/sampleRate/);
    expect(() => poissonSample(10, 1.5)).toThrow(/sampleRate/);
    expect(() => poissonSample(10, NaN)).toThrow(/sampleRate/);
    expect(() => poissonSample(-1, 0.5)).toThrow(/n must/);
  });
});

describe('DP-SGD step', () => {
  it('adds noise of standard deviation σC / (q·n) to the clipped sum (constant gradients)', () => {
    const clipNorm = 2;
    const noiseMultiplier = 1.3;
    const sampleRate = 0.05;
    const datasetSize = 400; // expected batch 20
    const rows = 16; // a fixed batch, so the clipped sum is known exactly
    const dp = new TensorDpSgd(tf, { clipNorm, noiseMultiplier, sampleRate, datasetSize }, [[2, 1], [1]]);
    // Each example's gradient (3, 4, 1) has norm √26 > C: clipped to C·(3, 4, 1)/√26, summed over 16 rows.
    const direction = [3, 4, 1].map((v) => v / Math.sqrt(26));
    const expectedMean = direction.map((d) => (rows * clipNorm * d) / (sampleRate * datasetSize));
    const expectedSd = (noiseMultiplier * clipNorm) / (sampleRate * datasetSize);
    const steps = 4000;
    const samples = [new Float64Array(steps), new Float64Array(steps), new Float64Array(steps)];
    const before = tf.memory().numTensors;
    for (let s = 0; s < steps; s++) {
      const values = tf.tidy(() => {
        const grads = dp.noisyGradient(constantTraces(rows));
        return grads.flatMap((g: Tensor) => Array.from(g.dataSync()));
      });
      values.forEach((v, k) => (samples[k][s] = v));
    }
    expect(tf.memory().numTensors).toBe(before);
    for (let k = 0; k < 3; k++) {
      const { mean, sd } = moments(samples[k]);
      expect(Math.abs(mean - expectedMean[k])).toBeLessThan((5 * expectedSd) / Math.sqrt(steps));
      // sd of a sample sd is about sd/√(2·steps) ≈ 1.1 %: allow 5 %.
      expect(Math.abs(sd / expectedSd - 1)).toBeLessThan(0.05);
    }
    expect(dp.steps).toBe(0); // noisyGradient alone does not count a step
  });

  it('noise is present on an empty draw and has the same scale (zero gradient)', () => {
    const dp = new TensorDpSgd(tf, { clipNorm: 0.5, noiseMultiplier: 2, sampleRate: 0.1, datasetSize: 50 }, [[10, 10], [10]]);
    const all: number[] = [];
    for (let s = 0; s < 200; s++) {
      const grads = dp.noisyGradient(null);
      for (const g of grads) all.push(...g.dataSync());
      tf.dispose(grads);
    }
    const { mean, sd } = moments(all);
    const expectedSd = (2 * 0.5) / (0.1 * 50);
    expect(Math.abs(mean)).toBeLessThan((5 * expectedSd) / Math.sqrt(all.length));
    expect(Math.abs(sd / expectedSd - 1)).toBeLessThan(0.03);
  });

  it('step() samples, clips, noises, applies, and records (q, σ, steps)', () => {
    const datasetSize = 200;
    const dp = new TensorDpSgd(tf, { clipNorm: 1, noiseMultiplier: 0.8, sampleRate: 0.1, datasetSize }, [[2, 1], [1]]);
    const batchSizes: number[] = [];
    let applied = 0;
    for (let s = 0; s < 50; s++) {
      const { batchSize } = dp.step(
        (indices) => {
          expect(indices.every((i) => i >= 0 && i < datasetSize)).toBe(true);
          batchSizes.push(indices.length);
          return constantTraces(indices.length);
        },
        (gradients) => {
          expect(gradients.map((g) => g.shape)).toEqual([[2, 1], [1]]);
          applied++;
        },
      );
      expect(batchSize).toBeGreaterThanOrEqual(0);
    }
    expect(applied).toBe(50);
    expect(dp.steps).toBe(50);
    expect(dp.record()).toEqual({ sampleRate: 0.1, noiseMultiplier: 0.8, clipNorm: 1, steps: 50 });
    expect(moments(batchSizes).mean).toBeGreaterThan(10);
    expect(moments(batchSizes).mean).toBeLessThan(30);
  });

  it('an empty Poisson draw still takes a (noise-only) step', () => {
    const dp = new TensorDpSgd(tf, { clipNorm: 1, noiseMultiplier: 1, sampleRate: 1e-12, datasetSize: 1 }, [[3]]);
    let backwardCalls = 0;
    let nonZero = false;
    dp.step(
      () => {
        backwardCalls++;
        return [];
      },
      (gradients) => {
        nonZero = Array.from(gradients[0].dataSync()).some((v) => v !== 0);
      },
    );
    expect(backwardCalls).toBe(0);
    expect(nonZero).toBe(true);
    expect(dp.steps).toBe(1);
  });

  it('finishStep: clipped sum + N(0, (σC)²), ÷ q·n, on the grid, counts the step; takes its integers from the given source', () => {
    const settings = { clipNorm: 1.5, noiseMultiplier: 0.9, sampleRate: 0.02, datasetSize: 1000 }; // q·n = 20
    const shapes = [[50, 40], [40]];
    let drawn = 0;
    const dp = new DpSgd(settings, shapes, {
      noise: (scale) => ({ scale, fill: (out: Int32Array) => ((drawn += out.length), sampleDiscreteGaussian(scale, out)) }),
    });
    expect(dp.parameterCount).toBe(2040);
    const sd = (0.9 * 1.5) / 20;
    const all: number[] = [];
    for (let s = 0; s < 50; s++) {
      const sum = new Float32Array(2040).fill(3); // a known clipped sum
      const out = dp.finishStep(sum);
      expect(out).toBe(sum);
      for (const v of out) all.push(v - 3 / 20);
    }
    expect(dp.steps).toBe(50);
    expect(drawn).toBe(50 * 2040);
    const { mean, sd: measured } = moments(all);
    expect(Math.abs(mean)).toBeLessThan((5 * sd) / Math.sqrt(all.length));
    expect(Math.abs(measured / sd - 1)).toBeLessThan(0.02);
    // A lattice value k·g scaled by 1/(q·n), then rounded to float32 (post-processing): within float32
    // rounding of the scaled grid.
    const g = noiseGrid(2040, 0.9 * 1.5) / 20;
    for (let i = 0; i < 200; i++) {
      const k = (all[i] + 3 / 20) / g;
      expect(Math.abs(k - Math.round(k))).toBeLessThanOrEqual(Math.abs(k) * 2 ** -23 + 1e-9);
    }
    expect(() => dp.finishStep(new Float32Array(7))).toThrow(/2040 values/);
    expect(() => new DpSgd(settings, shapes, { noise: (scale) => ({ scale: scale * 2, fill: () => undefined }) })).toThrow(/scale/);
  });

  it('finishStep adds noise only; the flat optimiser then takes the SGD step: params − rate · noisy gradient', () => {
    const settings = { clipNorm: 1.2, noiseMultiplier: 1.1, sampleRate: 0.05, datasetSize: 400 }; // q·n = 20
    const shapes = [[30, 8], [8]];
    const size = 248;
    // The same integers for both runs (a scripted source; the real ones draw fresh from node:crypto).
    const draws = sampleDiscreteGaussian(noiseScale(size, 1.1 * 1.2), new Int32Array(size));
    const make = () => new DpSgd(settings, shapes, { noise: (scale) => ({ scale, fill: (out: Int32Array) => out.set(draws.subarray(0, out.length)) }) });
    const sum = Float32Array.from({ length: size }, (_, i) => Math.sin(i) * 2);
    const start = Float32Array.from({ length: size }, (_, i) => Math.cos(i));
    const first = make().finishStep(Float32Array.from(sum));
    const expected = Float32Array.from(start);
    for (let i = 0; i < size; i++) expected[i] -= 0.1 * first[i];
    const dp = make();
    const params = Float32Array.from(start);
    const noisy = dp.finishStep(Float32Array.from(sum));
    expect(Array.from(params)).toEqual(Array.from(start)); // the noise pass leaves the parameters alone
    expect(Array.from(noisy)).toEqual(Array.from(first));
    new FlatOptimizer('sgd', 0.1, size).apply(params, noisy);
    expect(Array.from(params)).toEqual(Array.from(expected));
    expect(dp.steps).toBe(1);
  });

  it('sample() draws a Poisson batch of the dataset and does not count a step', () => {
    const dp = new DpSgd({ clipNorm: 1, noiseMultiplier: 1, sampleRate: 0.1, datasetSize: 1000 }, [[3]]);
    const sizes = Array.from({ length: 40 }, () => dp.sample().length);
    expect(moments(sizes).mean).toBeGreaterThan(85);
    expect(moments(sizes).mean).toBeLessThan(115);
    expect(dp.steps).toBe(0);
  });

  it('refuses bad settings', () => {
    const base = { clipNorm: 1, noiseMultiplier: 1, sampleRate: 0.1, datasetSize: 10 };
    expect(() => new DpSgd({ ...base, clipNorm: 0 }, [[1]])).toThrow(/clipNorm/);
    expect(() => new DpSgd({ ...base, noiseMultiplier: -1 }, [[1]])).toThrow(/noiseMultiplier/);
    expect(() => new DpSgd({ ...base, sampleRate: 2 }, [[1]])).toThrow(/sampleRate/);
    expect(() => new DpSgd({ ...base, datasetSize: 0.5 }, [[1]])).toThrow(/datasetSize/);
  });
});
