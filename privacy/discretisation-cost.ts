// What the discretisation of the noise costs in privacy, charged explicitly.
//
// The noise on a clipped sum is not the textbook continuous Gaussian: the sum is snapped to a grid of
// step g = 2^k and a discrete Gaussian on that grid is added (privacy/gaussian-noise.ts), drawn by a table
// sampler with a bounded support (privacy/discrete-gaussian.ts). Two things follow, and both are charged:
//   1. Snapping grows the sensitivity. Rounding moves each of the d coordinates by at most g/2, so two
//      neighbouring sums at L2 distance <= C can be at distance up to C + g*sqrt(d) once snapped (each
//      snapped vector is within (g/2)*sqrt(d) of its sum; the bound is approached when every coordinate of
//      the two sums sits just on opposite sides of a rounding boundary). The noise of standard deviation
//      sigma*C is therefore charged against the grown sensitivity: the recorded noise multiplier is
//        sigma_charged = sigma * C / (C + g*sqrt(d)),
//      with g = noiseGrid(d, sigma*C) exactly as the noise code picks it (g*sqrt(d) <= sigma*C*2^-16 while
//      the grid is not held up by the sampler's range, i.e. for d up to about 2^16, and at most twice that
//      up to d = 2^18; so sigma_charged >= sigma / (1 + sigma * 2^-15) there). A caller that wants the calibrated
//      multiplier to survive the charge adds noise at noiseMultiplierCovering(sigma, C, d) instead.
//   2. The sampler's table cuts the tail. It outputs N_Z(0, s^2) conditioned on [-a, a - 1] with
//      a = half*M >= 9.5 s + 1 (discreteGaussianSupport), so each draw is at total-variation distance tau
//      (the mass outside) from the exact law, with tau <= 2 T(a) / max(1, s sqrt(2 pi)), T(a) the smaller
//      of s sqrt(2 pi) Phibar((a - 1)/s) and exp(-a^2/(2s^2)) / (1 - exp(-(2a + 1)/(2s^2))) (bounds on
//      the sum of exp(-x^2/(2s^2)) over x >= a; the normaliser is at least max(1, s sqrt(2 pi)) by Poisson
//      summation): about 2e-21 at most. A run of n draws is at total variation at most n*tau from the
//      run with exact draws, so an (epsilon, delta) guarantee of the exact mechanism becomes
//      (epsilon, delta + (1 + e^epsilon) * n * tau) for the real one: the tail is charged to delta at the
//      epsilon the guarantee is stated at (an institution states it at its budget's epsilon).
// Not charged here: the float64 rounding inside the sampler's acceptance test, a relative error of order
// 2^-52 in each output probability (an epsilon-like change of about 2^-51 per draw, 4e-6 over 1e10 draws),
// and float32 rounding of the clipped sum before it is snapped. This file bounds neither.
//
// Where it applies: record-level DP-SGD, whose events are made with these figures (client-sdk/local-trainer.ts:
// d = the model's parameter count, one noisy vector per step; client-sdk/institution-privacy.ts records
// them); the coordinator's central noise in client-level DP with plain aggregation (snapped the same way,
// d = the update's length, one vector per round); and the clients' integer noise under secure aggregation
// (privacy/distributed-noise.ts: no snapping there, the quantisation's rounding is already in its
// sensitivity; distributedNoiseAccounting reports the tail mass of the round's survivors * d draws).
import { discreteGaussianSupport } from './discrete-gaussian.ts';
import { noiseGrid } from './gaussian-noise.ts';
import { logErfc } from './rdp-accountant.ts';

export interface DiscretisationCostInput {
  /** sigma: the noise standard deviation on the clipped sum is sigma * clipNorm. */
  noiseMultiplier: number;
  /** C: the L2 sensitivity of the clipped sum before snapping. */
  clipNorm: number;
  /** d: the values in each noisy vector (the snapping grid depends on it). */
  dimension: number;
  /** Noisy vectors released (DP-SGD steps, or rounds). */
  steps: number;
}

export interface DiscretisationCost {
  /** The snapping grid g = noiseGrid(d, sigma * C). */
  grid: number;
  /** How much snapping can grow the sensitivity: g * sqrt(d). */
  sensitivityGrowth: number;
  /** sigma * C / (C + g * sqrt(d)): the noise multiplier against the grown sensitivity. Record this one. */
  chargedNoiseMultiplier: number;
  /** The sampler's cut mass per draw at this vector's integer scale (sigma * C / g). */
  tailMassPerDraw: number;
  /** steps * d * tailMassPerDraw: the run's total-variation distance from exact draws. */
  samplerTailMass: number;
}

function positive(value: number, name: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new Error(`discretisation cost: ${name} must be a positive finite number, got ${value}`);
}

function count(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value < 1) throw new Error(`discretisation cost: ${name} must be a positive integer, got ${value}`);
}

/** Upper bound on the probability N_Z(0, scale^2) puts outside the table sampler's support (see the header). */
export function samplerTailMassPerDraw(scale: number): number {
  positive(scale, 'scale');
  const { low, high } = discreteGaussianSupport(scale);
  const a = Math.min(-low, high + 1); // both sides' first missing |x| are >= a
  const root = scale * Math.sqrt(2 * Math.PI);
  // One side's sum of exp(-x^2 / (2 s^2)) over x >= a, bounded two ways: by the integral from a - 1
  // (s sqrt(2 pi) Phibar((a - 1)/s), Phibar(t) = erfc(t / sqrt 2) / 2), and by a geometric series (each term
  // is at most exp(-(2a + 1)/(2 s^2)) times the one before), the tighter one at small s.
  const integral = root * 0.5 * Math.exp(logErfc((a - 1) / scale / Math.SQRT2));
  const geometric = Math.exp(-(a * a) / (2 * scale * scale)) / -Math.expm1(-(2 * a + 1) / (2 * scale * scale));
  return (2 * Math.min(integral, geometric)) / Math.max(1, root);
}

/** The charged noise multiplier and the sampler's tail mass of `steps` noisy vectors of `dimension` values. */
export function discretisationCost(input: DiscretisationCostInput): DiscretisationCost {
  const { noiseMultiplier, clipNorm, dimension, steps } = input;
  positive(noiseMultiplier, 'noiseMultiplier');
  positive(clipNorm, 'clipNorm');
  count(dimension, 'dimension');
  count(steps, 'steps');
  const stddev = noiseMultiplier * clipNorm; // the same product DpSgd forms
  const grid = noiseGrid(dimension, stddev);
  const sensitivityGrowth = grid * Math.sqrt(dimension);
  const tailMassPerDraw = samplerTailMassPerDraw(stddev / grid);
  return {
    grid,
    sensitivityGrowth,
    chargedNoiseMultiplier: stddev / (clipNorm + sensitivityGrowth),
    tailMassPerDraw,
    samplerTailMass: steps * dimension * tailMassPerDraw,
  };
}

/** The delta a sampler tail of total-variation `samplerTailMass` adds to a guarantee stated at `epsilon`. */
export function tailDelta(samplerTailMass: number, epsilon: number): number {
  if (typeof samplerTailMass !== 'number' || !(samplerTailMass >= 0) || !Number.isFinite(samplerTailMass)) {
    throw new Error(`discretisation cost: samplerTailMass must be a finite number >= 0, got ${samplerTailMass}`);
  }
  if (typeof epsilon !== 'number' || !(epsilon >= 0) || !Number.isFinite(epsilon)) throw new Error(`discretisation cost: epsilon must be a finite number >= 0, got ${epsilon}`);
  return (1 + Math.exp(epsilon)) * samplerTailMass;
}

/**
 * The noise multiplier to add noise at so that the charged multiplier is at least `target`: the smallest
 * found by a few fixed-point steps (the grid is a power of two that moves only at octaves of sigma * C).
 */
export function noiseMultiplierCovering(target: number, clipNorm: number, dimension: number): number {
  positive(target, 'target');
  positive(clipNorm, 'clipNorm');
  count(dimension, 'dimension');
  let sigma = target;
  for (let i = 0; i < 16; i++) {
    const charged = discretisationCost({ noiseMultiplier: sigma, clipNorm, dimension, steps: 1 }).chargedNoiseMultiplier;
    if (charged >= target) return sigma;
    // sigma * C / (C + growth) >= target  <=>  sigma >= target * (1 + growth / C), growth at this sigma.
    sigma = Math.max(sigma * (1 + 2 ** -52), (target * sigma) / charged);
  }
  throw new Error(`discretisation cost: no noise multiplier covering ${target} found (clip norm ${clipNorm}, dimension ${dimension})`);
}
