import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { calibrateNoiseMultiplier } from '@dpfed/privacy/calibrate';
import { RdpAccountant } from '@dpfed/privacy/rdp-accountant';

const vectors = JSON.parse(readFileSync('/work/shared/reference/dp_vectors.json', 'utf8')) as {
  noiseMultiplier: { epsilon: number; delta: number; sampleRate: number; steps: number; noiseMultiplier: number; tolerance: number }[];
};

describe('calibrateNoiseMultiplier', () => {
  for (const v of vectors.noiseMultiplier) {
    it(`Opacus vector: eps=${v.epsilon} delta=${v.delta} q=${v.sampleRate} T=${v.steps} → sigma ≈ ${v.noiseMultiplier}`, () => {
      const result = calibrateNoiseMultiplier({ targetEpsilon: v.epsilon, delta: v.delta, sampleRate: v.sampleRate, steps: v.steps });
      expect(Math.abs(result.noiseMultiplier - v.noiseMultiplier)).toBeLessThanOrEqual(v.tolerance);
      expect(result.epsilon).toBeLessThanOrEqual(v.epsilon);
      expect(result.epsilon).toBeGreaterThanOrEqual(v.epsilon - 0.01);
      // the reported epsilon is the accountant's for the returned sigma
      const check = new RdpAccountant().epsilon([{ sampleRate: v.sampleRate, noiseMultiplier: result.noiseMultiplier, steps: v.steps }], v.delta);
      expect(check.epsilon).toBe(result.epsilon);
    });
  }

  it('meets the bounds across a range of targets, and a tighter tolerance narrows it', () => {
    for (const [targetEpsilon, sampleRate, steps] of [
      [0.5, 0.01, 1000],
      [3, 0.004, 20_000],
      [10, 1, 5],
      [1, 0.5, 1],
    ] as const) {
      const r = calibrateNoiseMultiplier({ targetEpsilon, delta: 1e-5, sampleRate, steps });
      expect(r.epsilon).toBeLessThanOrEqual(targetEpsilon);
      expect(r.epsilon).toBeGreaterThanOrEqual(targetEpsilon - 0.01);
      const tight = calibrateNoiseMultiplier({ targetEpsilon, delta: 1e-5, sampleRate, steps, tolerance: 1e-5 });
      expect(tight.epsilon).toBeGreaterThanOrEqual(targetEpsilon - 1e-5);
      expect(tight.noiseMultiplier).toBeLessThanOrEqual(r.noiseMultiplier);
    }
  });

  it('calibrates with the PLD accountant too (less noise for the same target)', () => {
    const rdp = calibrateNoiseMultiplier({ targetEpsilon: 2, delta: 1e-5, sampleRate: 0.01, steps: 1000 });
    const pld = calibrateNoiseMultiplier({ targetEpsilon: 2, delta: 1e-5, sampleRate: 0.01, steps: 1000, accountant: 'pld' });
    expect(pld.epsilon).toBeLessThanOrEqual(2);
    expect(pld.epsilon).toBeGreaterThanOrEqual(1.99);
    expect(pld.noiseMultiplier).toBeLessThan(rdp.noiseMultiplier);
  });

  it('answers a repeated request from its memo with the first answer, which a caller cannot alter', () => {
    const request = { targetEpsilon: 2.5, delta: 1e-5, sampleRate: 0.013, steps: 777 };
    const first = calibrateNoiseMultiplier(request);
    const copy = { ...first };
    first.noiseMultiplier = 0;
    // the same request with its keys in another order
    expect(calibrateNoiseMultiplier({ steps: 777, sampleRate: 0.013, delta: 1e-5, targetEpsilon: 2.5 })).toEqual(copy);
    expect(new RdpAccountant().epsilon([{ sampleRate: 0.013, noiseMultiplier: copy.noiseMultiplier, steps: 777 }], 1e-5).epsilon).toBeCloseTo(copy.epsilon, 12);
    // another tolerance is another request
    expect(calibrateNoiseMultiplier({ ...request, tolerance: 1e-4 }).epsilon).toBeGreaterThanOrEqual(2.5 - 1e-4);
  });

  it('throws a clear error when the target is unreachable', () => {
    // twice: a request that throws is not remembered
    for (let i = 0; i < 2; i++) expect(() => calibrateNoiseMultiplier({ targetEpsilon: 1e-4, delta: 1e-5, sampleRate: 0.04, steps: 2250 })).toThrow(/unreachable/);
  });

  it('refuses bad input, naming the field', () => {
    const base = { targetEpsilon: 1, delta: 1e-5, sampleRate: 0.01, steps: 100 };
    expect(() => calibrateNoiseMultiplier({ ...base, targetEpsilon: 0 })).toThrow(/targetEpsilon/);
    expect(() => calibrateNoiseMultiplier({ ...base, targetEpsilon: NaN })).toThrow(/targetEpsilon/);
    expect(() => calibrateNoiseMultiplier({ ...base, delta: 0 })).toThrow(/delta/);
    expect(() => calibrateNoiseMultiplier({ ...base, sampleRate: 1.2 })).toThrow(/sampleRate/);
    expect(() => calibrateNoiseMultiplier({ ...base, steps: 0.5 })).toThrow(/steps/);
    expect(() => calibrateNoiseMultiplier({ ...base, tolerance: -1 })).toThrow(/tolerance/);
  });
});
