import { describe, expect, it } from 'vitest';
import { addDistributedNoise, distributedNoiseAccounting, maxScaleForNoise, noiseActuallyPresent, perClientNoiseSigma, quantisedSensitivity } from '@dpfed/privacy/distributed-noise';
import { checkNoWrap, chooseQuantisation, noiseTailBound } from '@dpfed/privacy/quantise';

function signedStd(sum: Uint32Array): number {
  let s = 0;
  let s2 = 0;
  for (const v of sum) {
    const x = v | 0;
    s += x;
    s2 += x * x;
  }
  const mean = s / sum.length;
  return Math.sqrt(s2 / sum.length - mean * mean);
}

/** The sum of `clients` noisy zero vectors, mod 2^32. */
function noiseSum(clients: number, perClientSigma: number, length: number): Uint32Array {
  const sum = new Uint32Array(length);
  for (let c = 0; c < clients; c++) {
    const v = addDistributedNoise(new Uint32Array(length), perClientSigma);
    for (let i = 0; i < length; i++) sum[i] = (sum[i] + v[i]) >>> 0;
  }
  return sum;
}

describe('distributed discrete Gaussian noise', () => {
  const target = 400;
  const planned = 10;
  const sigmaC = perClientNoiseSigma(target, planned);
  const length = 20_000;

  it("the planned survivors' noises sum to the target standard deviation", () => {
    expect(sigmaC).toBeCloseTo(target / Math.sqrt(10), 10);
    const std = signedStd(noiseSum(planned, sigmaC, length));
    // Relative sd of a sample std over 20,000 draws ≈ 1/sqrt(40,000) = 0.5 %: allow 3 %.
    expect(Math.abs(std / target - 1)).toBeLessThan(0.03);
  });

  it('with dropouts, the noise present is what noiseActuallyPresent reports (less than planned)', () => {
    const survivors = 6;
    const reported = noiseActuallyPresent(sigmaC, survivors);
    expect(reported).toBeLessThan(target);
    expect(reported).toBeCloseTo(target * Math.sqrt(0.6), 8);
    const std = signedStd(noiseSum(survivors, sigmaC, length));
    expect(Math.abs(std / reported - 1)).toBeLessThan(0.03);
    // And it is clearly not the planned figure.
    expect(Math.abs(std / target - 1)).toBeGreaterThan(0.15);
  });

  it('noise wraps mod 2^32 like any signed integer (negative draws)', () => {
    const v = addDistributedNoise(new Uint32Array(5000), 3);
    expect(Array.from(v).some((x) => x > 2 ** 31)).toBe(true);
    for (const x of v) expect(Math.abs(x | 0)).toBeLessThan(3 * 40);
  });

  it('accounts the noise actually present, with the stochastic-rounding sensitivity and τ', () => {
    const scale = 2 ** 16;
    const acct = distributedNoiseAccounting({ l2Clip: 1, scale, dimension: 10_000, perClientSigma: sigmaC * 500, survivors: 6 });
    expect(acct.sensitivity).toBeCloseTo(quantisedSensitivity(1, scale, 10_000), 8);
    expect(acct.sensitivity).toBe(scale + 100);
    expect(acct.totalSigma).toBeCloseTo(noiseActuallyPresent(sigmaC * 500, 6), 6);
    expect(acct.tau).toBeLessThan(1e-100);
    expect(acct.effectiveNoiseMultiplier).toBeCloseTo(acct.totalSigma / acct.sensitivity, 8);
    // Tiny per-client sigma: τ is no longer negligible, and the guarantee is weaker than the Gaussian one.
    const tiny = distributedNoiseAccounting({ l2Clip: 1, scale: 4, dimension: 1000, perClientSigma: 0.5, survivors: 10 });
    expect(tiny.tau).toBeGreaterThan(0.1);
    expect(tiny.effectiveNoiseMultiplier).toBeLessThan(tiny.totalSigma / tiny.sensitivity);
  });

  it("fits the quantisation: the noise tail cannot wrap the sum, and σ_c stays in the sampler's range", () => {
    const clients = 10;
    const perClientStd = 0.05; // update units
    const cfg = chooseQuantisation(1, clients, perClientStd * Math.sqrt(clients), { maxScale: maxScaleForNoise(perClientStd) });
    expect(perClientStd * cfg.scale).toBeLessThanOrEqual(2 ** 25);
    expect(() => checkNoWrap(cfg, clients, noiseTailBound(noiseActuallyPresent(perClientStd * cfg.scale, clients)))).not.toThrow();
  });

  it('refuses bad input with clear errors', () => {
    expect(() => perClientNoiseSigma(-1, 3)).toThrow(/targetSigma must be a positive number/);
    expect(() => perClientNoiseSigma(1, 0)).toThrow(/plannedSurvivors must be a positive number/);
    expect(() => noiseActuallyPresent(1, 2.5)).toThrow(/survivors must be a non-negative integer/);
    expect(() => distributedNoiseAccounting({ l2Clip: 1, scale: 1, dimension: 1, perClientSigma: 1, survivors: 0 })).toThrow(/at least one surviving client/);
  });
});
