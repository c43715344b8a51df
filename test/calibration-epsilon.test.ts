// ε as a function of σ for the calibration bisections (privacy/calibration-epsilon.ts): between two values of σ
// known exactly, ε is minimised over a window of orders only. It is never below the exact ε (so a σ it accepts is
// safe), and over random mechanisms it equals the exact ε, i.e. the window held the minimising order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { epsilonOfSigma } from '@dpfed/privacy/calibration-epsilon';

describe('epsilonOfSigma', () => {
  it('between exactly known values reads at least the exact ε, and in practice the same', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.001, max: 1, noNaN: true }),
        fc.integer({ min: 1, max: 5000 }),
        fc.constantFrom(1e-5, 1e-8),
        fc.double({ min: 0.3, max: 30, noNaN: true }),
        fc.double({ min: 0.05, max: 0.95, noNaN: true }),
        (sampleRate, steps, delta, sigmaLow, at) => {
          const search = epsilonOfSigma('rdp', (sigma) => [{ sampleRate, noiseMultiplier: sigma, steps }], delta);
          const high = sigmaLow * 2;
          search.exact(sigmaLow);
          search.exact(high);
          const sigma = sigmaLow + at * (high - sigmaLow);
          const windowed = search.at(sigma);
          const exact = epsilonOfSigma('rdp', (s) => [{ sampleRate, noiseMultiplier: s, steps }], delta, false).exact(sigma);
          expect(windowed).toBeGreaterThanOrEqual(exact);
          expect(windowed).toBe(exact);
        },
      ),
      { numRuns: 60, seed: 7 },
    );
  });

  it('outside the known range, and for the PLD accountant, is the exact ε', () => {
    const events = (sigma: number) => [{ sampleRate: 0.02, noiseMultiplier: sigma, steps: 300 }];
    const search = epsilonOfSigma('rdp', events, 1e-5);
    const full = epsilonOfSigma('rdp', events, 1e-5, false);
    expect(search.at(1.3)).toBe(full.exact(1.3));
    expect(search.at(4)).toBe(full.exact(4));
    expect(search.at(0.7)).toBe(full.exact(0.7));
    const pld = epsilonOfSigma('pld', events, 1e-5);
    expect(pld.at(1.3)).toBe(pld.exact(1.3));
  });
});
