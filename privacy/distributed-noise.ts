// Distributed DP noise for client-level DP under secure aggregation.
//
// Each client adds discrete Gaussian noise N_Z(0, σ_c²) (privacy/discrete-gaussian.ts, CSPRNG) to its
// quantised update before masking. The coordinator only ever sees the sum, which carries the noise of
// every client whose masked vector made it in: total standard deviation σ_c · √(survivors).
// The plan fixes σ_c = σ_target / √(plannedSurvivors); pass the expected number of survivors (n(1-δ)) to
// hit the target on average, or the threshold t to guarantee at least the target in every round that
// completes. When fewer clients survive than planned, the noise actually present is smaller:
// noiseActuallyPresent() gives it, and that (never the planned σ) is what the ledger must record.
//
// Accounting (Kairouz, Liu & Steinke 2021, "The Distributed Discrete Gaussian Mechanism", Thm 1): the sum
// of n independent N_Z(0, σ²) in d dimensions is not exactly a discrete Gaussian, but the mechanism
// satisfies ½ε²-concentrated DP with
//   ε = min{ √(Δ²/(nσ²) + ½ τ d),  Δ/(√n σ) + τ √d },   τ = 10 Σ_{k=1}^{n-1} exp(-2π² σ² k/(k+1)),
// where Δ bounds the L2 norm of one client's quantised contribution. Stochastic rounding can add up to
// 1 per coordinate, so with L2 clip S and scale s we use the deterministic bound Δ = S·s + √d (sound
// without the conditional rounding of the paper). For σ of a few quantised units or more, τ is
// negligible and ε ≈ Δ/(√n σ), i.e. the continuous Gaussian with noise multiplier √n σ / Δ.
// effectiveNoiseMultiplier = 1/ε is the multiplier of the Gaussian mechanism with the same zCDP
// guarantee, which a Gaussian/RDP accountant can compose.
// The sampler draws from N_Z(0, σ_c²) cut to a bounded support (privacy/discretisation-cost.ts): the
// round's survivors · d draws are at total variation samplerTailMass from exact ones, which the ledger
// charges to δ as (1 + e^ε) · samplerTailMass (tailDelta) at the ε the guarantee is stated at.
import { MAX_DISCRETE_GAUSSIAN_SIGMA, sampleDiscreteGaussian } from './discrete-gaussian.ts';
import { samplerTailMassPerDraw } from './discretisation-cost.ts';

function positive(x: number, name: string): void {
  if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw new Error(`distributed noise: ${name} must be a positive number, got ${x}`);
}

function count(x: number, name: string): void {
  if (!Number.isInteger(x) || x < 0) throw new Error(`distributed noise: ${name} must be a non-negative integer, got ${x}`);
}

/** σ_c so that `plannedSurvivors` clients' noises sum to standard deviation `targetSigma` (quantised units). */
export function perClientNoiseSigma(targetSigma: number, plannedSurvivors: number): number {
  positive(targetSigma, 'targetSigma');
  positive(plannedSurvivors, 'plannedSurvivors');
  return targetSigma / Math.sqrt(plannedSurvivors);
}

/** The total noise standard deviation in a sum of `survivors` clients' vectors, each with σ_c. */
export function noiseActuallyPresent(perClientSigma: number, survivors: number): number {
  if (!(perClientSigma >= 0) || !Number.isFinite(perClientSigma)) throw new Error(`distributed noise: perClientSigma must be a non-negative number, got ${perClientSigma}`);
  count(survivors, 'survivors');
  return perClientSigma * Math.sqrt(survivors);
}

/**
 * The largest quantisation scale at which a per-client noise of `perClientNoiseStd` (update units) is
 * still within the sampler's range (σ_c · scale <= 2^25); pass it as chooseQuantisation's maxScale.
 */
export function maxScaleForNoise(perClientNoiseStd: number): number {
  positive(perClientNoiseStd, 'perClientNoiseStd');
  return MAX_DISCRETE_GAUSSIAN_SIGMA / perClientNoiseStd;
}

/** Adds N_Z(0, σ_c²) to each coordinate of a quantised vector, mod 2^32, in place. Returns the vector. */
export function addDistributedNoise(vector: Uint32Array, perClientSigma: number): Uint32Array {
  positive(perClientSigma, 'perClientSigma');
  const noise = sampleDiscreteGaussian(perClientSigma, new Int32Array(vector.length));
  for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] + noise[i]) >>> 0;
  return vector;
}

/** The L2 sensitivity of one client's quantised contribution: S·s + √d (see the header). */
export function quantisedSensitivity(l2Clip: number, scale: number, dimension: number): number {
  positive(l2Clip, 'l2Clip');
  positive(scale, 'scale');
  count(dimension, 'dimension');
  return l2Clip * scale + Math.sqrt(dimension);
}

export interface DistributedNoiseAccount {
  /** σ_c · √survivors, quantised units. */
  totalSigma: number;
  /** totalSigma / scale, in the units of the update. */
  totalSigmaUnscaled: number;
  /** Δ in quantised units. */
  sensitivity: number;
  /** The τ of Kairouz et al. (how far the sum is from one discrete Gaussian). */
  tau: number;
  /** ε of ½ε²-concentrated DP for one round. */
  cdpEpsilon: number;
  /** Gaussian noise multiplier with the same zCDP guarantee: 1/ε. What the ledger should record. */
  effectiveNoiseMultiplier: number;
  /** Total-variation distance of the round's survivors · d draws from exact N_Z draws (the sampler's cut tail). */
  samplerTailMass: number;
}

/** Per-round accounting of the noise that is actually in a sum of `survivors` clients. */
export function distributedNoiseAccounting(args: { l2Clip: number; scale: number; dimension: number; perClientSigma: number; survivors: number }): DistributedNoiseAccount {
  const { l2Clip, scale, dimension, perClientSigma, survivors } = args;
  positive(perClientSigma, 'perClientSigma');
  count(survivors, 'survivors');
  if (survivors < 1) throw new Error('distributed noise: accounting needs at least one surviving client');
  const sensitivity = quantisedSensitivity(l2Clip, scale, dimension);
  const variance = perClientSigma * perClientSigma;
  let tau = 0;
  for (let k = 1; k < survivors; k++) tau += Math.exp((-2 * Math.PI * Math.PI * variance * k) / (k + 1));
  tau *= 10;
  const nVar = survivors * variance;
  const cdpEpsilon = Math.min(Math.sqrt((sensitivity * sensitivity) / nVar + 0.5 * tau * dimension), sensitivity / Math.sqrt(nVar) + tau * Math.sqrt(dimension));
  const totalSigma = noiseActuallyPresent(perClientSigma, survivors);
  const samplerTailMass = survivors * dimension * samplerTailMassPerDraw(perClientSigma);
  return { totalSigma, totalSigmaUnscaled: totalSigma / scale, sensitivity, tau, cdpEpsilon, effectiveNoiseMultiplier: 1 / cdpEpsilon, samplerTailMass };
}
