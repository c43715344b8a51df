import { describe, expect, it } from 'vitest';
import {
  checkNoWrap,
  chooseQuantisation,
  decodeWeightedSum,
  dequantiseSum,
  encodeWeightedUpdate,
  MAX_SIGNED_SUM,
  noiseTailBound,
  quantisationFromMessage,
  quantise,
  type QuantisationConfig,
} from '@dpfed/privacy/quantise';

function sumMod32(vectors: Uint32Array[]): Uint32Array {
  const out = new Uint32Array(vectors[0].length);
  for (const v of vectors) for (let i = 0; i < out.length; i++) out[i] = (out[i] + v[i]) >>> 0;
  return out;
}

describe('quantisation', () => {
  const cfg: QuantisationConfig = { clipRange: 2, scale: 1000, modulusBits: 32 };

  it('stochastic rounding stays within 1/scale of every clipped coordinate', () => {
    const x = Float32Array.from({ length: 10_000 }, (_, i) => Math.sin(i * 0.37) * 3); // some beyond the clip range
    const q = quantise(x, cfg);
    const back = dequantiseSum(q, cfg, 1);
    for (let i = 0; i < x.length; i++) {
      const clipped = Math.max(-2, Math.min(2, x[i]));
      expect(Math.abs(back[i] - clipped)).toBeLessThanOrEqual(1 / cfg.scale + 1e-7);
    }
  });

  it('is unbiased on average', () => {
    const value = 0.0004; // 0.4 quantisation steps: rounds to 0 or 1 step
    const x = new Float32Array(200_000).fill(value);
    const back = dequantiseSum(quantise(x, cfg), cfg, 1);
    const mean = back.reduce((a, b) => a + b, 0) / back.length;
    // Bernoulli(0.4) steps: sd of the mean = sqrt(0.24 / 2e5) / 1000 ≈ 1.1e-6.
    expect(Math.abs(mean - value)).toBeLessThan(6e-6);
    const ups = back.filter((v) => v > 0.0005).length / back.length;
    expect(ups).toBeGreaterThan(0.38);
    expect(ups).toBeLessThan(0.42);
  });

  it("negative values go through two's complement and sum back exactly", () => {
    const a = quantise(Float32Array.from([-1.5, 0.25, -0.001]), cfg);
    expect(a[0]).toBe(2 ** 32 - 1500);
    const b = quantise(Float32Array.from([1.0, -0.75, -0.001]), cfg);
    expect(Array.from(dequantiseSum(sumMod32([a, b]), cfg, 2))).toEqual([-0.5, -0.5, -0.002].map((v) => Math.fround(v)));
  });

  it('refuses a configuration in which the sum could wrap', () => {
    const wide: QuantisationConfig = { clipRange: 1, scale: 2 ** 28, modulusBits: 32 };
    expect(() => checkNoWrap(wide, 7)).not.toThrow();
    expect(() => checkNoWrap(wide, 8)).toThrow(/sum of 8 clients could wrap mod 2\^32/);
    expect(() => checkNoWrap(wide, 7, 2 ** 28)).toThrow(/could wrap/);
    expect(() => dequantiseSum(new Uint32Array(1), wide, 9)).toThrow(/could wrap/);
    expect(() => checkNoWrap({ ...cfg, weightCap: 2 ** 30 }, 4)).toThrow(/weight coordinate could wrap/);
  });

  it('the wrap check is tight: one more unit of noise wraps', () => {
    const c: QuantisationConfig = { clipRange: 1, scale: 1000, modulusBits: 32 };
    const room = MAX_SIGNED_SUM - 10 * 1000;
    expect(() => checkNoWrap(c, 10, room)).not.toThrow();
    expect(() => checkNoWrap(c, 10, room + 1)).toThrow(/could wrap/);
  });

  it('chooseQuantisation picks the largest safe scale', () => {
    const chosen = chooseQuantisation(1, 10, 0.5);
    expect(() => checkNoWrap(chosen, 10, noiseTailBound(0.5 * chosen.scale))).not.toThrow();
    const bigger = { ...chosen, scale: chosen.scale + 2 };
    expect(() => checkNoWrap(bigger, 10, noiseTailBound(0.5 * bigger.scale))).toThrow(/could wrap/);
    expect(chooseQuantisation(1, 10, 0.5, { maxScale: 1000 }).scale).toBe(1000);
  });

  it('the worst case really does stay inside the signed range', () => {
    const chosen = chooseQuantisation(1, 10, 0);
    const worst = quantise(new Float32Array(8).fill(5), chosen); // clipped to +1 each
    const sum = sumMod32(Array.from({ length: 10 }, () => worst));
    for (const v of dequantiseSum(sum, chosen, 10)) expect(v).toBeCloseTo(10, 4);
  });

  it('carries example-count weights so weighted FedAvg works under a secure sum', () => {
    const wcfg: QuantisationConfig = { clipRange: 1, scale: 2 ** 20, modulusBits: 32, weightCap: 10_000 };
    const updates = [Float32Array.from([0.5, -0.2, 0.9]), Float32Array.from([-0.1, 0.4, 0.3]), Float32Array.from([0.2, 0.2, -0.8])];
    const counts = [1000, 3000, 20_000]; // the last is capped at 10,000
    const encoded = updates.map((u, i) => encodeWeightedUpdate(u, counts[i], wcfg));
    expect(encoded[0]).toHaveLength(4);
    expect(encoded[2][3]).toBe(10_000);
    const decoded = decodeWeightedSum(sumMod32(encoded), wcfg, 3);
    expect(decoded.totalWeight).toBe(14_000);
    const w = [1000, 3000, 10_000];
    for (let j = 0; j < 3; j++) {
      const truth = updates.reduce((s, u, i) => s + u[j] * w[i], 0) / 14_000;
      // Error of Σ w x is at most n · weightCap / scale; divided by Σ w.
      expect(Math.abs(decoded.weightedMean[j] - truth)).toBeLessThanOrEqual((3 * 10_000) / wcfg.scale / 14_000 + 1e-6);
    }
  });

  it('refuses bad input with clear errors', () => {
    expect(() => quantise(Float32Array.from([1, NaN]), cfg)).toThrow(/values\[1\] is not a finite number/);
    expect(() => quantise(new Float32Array(1), { ...cfg, scale: 0 })).toThrow(/scale must be a positive number/);
    expect(() => quantise(new Float32Array(1), { ...cfg, modulusBits: 64 as unknown as 32 })).toThrow(/modulusBits must be 32/);
    expect(() => quantisationFromMessage(undefined)).toThrow(/secagg.quantisation is required/);
    expect(() => quantisationFromMessage({ ...cfg, modulusBits: 0, weightCap: 0 })).toThrow(/modulusBits must be 32/);
    expect(quantisationFromMessage({ ...cfg, weightCap: 0 })).toEqual(cfg);
    expect(() => encodeWeightedUpdate(new Float32Array(1), 5, cfg)).toThrow(/needs cfg.weightCap/);
    expect(() => encodeWeightedUpdate(new Float32Array(1), -1, { ...cfg, weightCap: 10 })).toThrow(/exampleCount must be a non-negative integer/);
    expect(() => chooseQuantisation(1, 0, 1)).toThrow(/maxClients must be a positive integer/);
  });
});
