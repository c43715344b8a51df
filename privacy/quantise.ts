// Quantisation of float updates for the secure sum mod 2^32, and its inverse.
//
// quantise: clip each coordinate to [-clipRange, clipRange], multiply by `scale`, round stochastically
// (up with probability equal to the fractional part, from node:crypto randomness, so the rounding is
// unbiased and |q/scale - x| < 1/scale), and store the integer in two's complement mod 2^32.
// dequantiseSum reads a sum of such vectors back as signed 32-bit integers and divides by the scale.
// That inverse is exact only while the true integer sum stays inside [-(2^31 - 1), 2^31 - 1]; checkNoWrap
// proves this for a number of clients plus a noise tail bound and refuses any configuration that could wrap.
//
// Weighted FedAvg under secure aggregation (weightCap set): a client with example count w sends
// [quantise(x · w / weightCap), w], i.e. its update pre-multiplied by its (capped) weight and one extra
// coordinate holding the weight as an exact integer. The secure sum then gives Σ w_i x_i / weightCap and
// Σ w_i, and the weighted mean is their ratio; nobody sees an individual w_i. Bounds: counts above the
// public weightCap are capped (w = min(count, weightCap)), and maxClients · weightCap must stay <= 2^31 - 1.
// The error of Σ w_i x_i is at most maxClients · weightCap / scale per coordinate.
import { randomFillSync } from 'node:crypto';

export interface QuantisationConfig {
  /** Each coordinate is clipped to [-clipRange, clipRange] before scaling. */
  clipRange: number;
  /** Quantisation step is 1/scale. */
  scale: number;
  modulusBits: 32;
  /** When set, vectors carry one extra coordinate with the example count, capped at weightCap (see above). */
  weightCap?: number;
}

/** Largest magnitude of a signed sum that still reads back unambiguously mod 2^32. */
export const MAX_SIGNED_SUM = 2 ** 31 - 1;
/** Noise tail bound in standard deviations: P(|sub-Gaussian sum| > 12σ) <= 2e^{-72} per coordinate. */
export const NOISE_TAIL_SIGMAS = 12;

export function validateQuantisationConfig(cfg: QuantisationConfig): QuantisationConfig {
  if (!cfg || typeof cfg !== 'object') throw new Error('quantisation: config must be an object');
  if (typeof cfg.clipRange !== 'number' || !Number.isFinite(cfg.clipRange) || cfg.clipRange <= 0) throw new Error(`quantisation: clipRange must be a positive number, got ${cfg.clipRange}`);
  if (typeof cfg.scale !== 'number' || !Number.isFinite(cfg.scale) || cfg.scale <= 0) throw new Error(`quantisation: scale must be a positive number, got ${cfg.scale}`);
  if (cfg.modulusBits !== 32) throw new Error(`quantisation: modulusBits must be 32, got ${cfg.modulusBits}`);
  if (cfg.weightCap !== undefined && (!Number.isInteger(cfg.weightCap) || cfg.weightCap < 1)) throw new Error(`quantisation: weightCap must be a positive integer, got ${cfg.weightCap}`);
  if (Math.ceil(cfg.clipRange * cfg.scale) > MAX_SIGNED_SUM) throw new Error(`quantisation: clipRange · scale = ${cfg.clipRange * cfg.scale} does not fit in a signed 32-bit integer`);
  return cfg;
}

/** Parses SecAggTask.quantisation_json. */
export function parseQuantisationConfig(json: string): QuantisationConfig {
  let value: QuantisationConfig;
  try {
    value = JSON.parse(json) as QuantisationConfig;
  } catch (error) {
    throw new Error(`quantisation: config is not JSON (${(error as Error).message})`);
  }
  return validateQuantisationConfig(value);
}

/** Largest |integer| one client's coordinate can take after clipping, scaling and rounding. */
export function maxQuantisedMagnitude(cfg: QuantisationConfig): number {
  return Math.ceil(cfg.clipRange * cfg.scale);
}

/** A tail bound, in quantised units, for noise of total standard deviation `sigma` (quantised units). */
export function noiseTailBound(sigma: number): number {
  if (!Number.isFinite(sigma) || sigma < 0) throw new Error(`quantisation: noise sigma must be a non-negative number, got ${sigma}`);
  return Math.ceil(NOISE_TAIL_SIGMAS * sigma);
}

/**
 * Throws unless the signed sum of `maxClients` quantised vectors plus noise bounded by `extraNoiseBound`
 * (quantised units, e.g. noiseTailBound(total sigma)) stays within ±(2^31 - 1) in every coordinate,
 * and, with weightCap, unless maxClients · weightCap fits too.
 */
export function checkNoWrap(cfg: QuantisationConfig, maxClients: number, extraNoiseBound = 0): void {
  validateQuantisationConfig(cfg);
  if (!Number.isInteger(maxClients) || maxClients < 1) throw new Error(`quantisation: maxClients must be a positive integer, got ${maxClients}`);
  if (!Number.isFinite(extraNoiseBound) || extraNoiseBound < 0) throw new Error(`quantisation: extraNoiseBound must be a non-negative number, got ${extraNoiseBound}`);
  const worst = maxClients * maxQuantisedMagnitude(cfg) + Math.ceil(extraNoiseBound);
  if (worst > MAX_SIGNED_SUM) {
    throw new Error(
      `quantisation: the sum of ${maxClients} clients could wrap mod 2^32 (worst case ${maxClients} × ${maxQuantisedMagnitude(cfg)} + noise ${Math.ceil(extraNoiseBound)} = ${worst} > 2^31 - 1); lower the scale or the clip range`,
    );
  }
  if (cfg.weightCap !== undefined && maxClients * cfg.weightCap > MAX_SIGNED_SUM) {
    throw new Error(`quantisation: the weight coordinate could wrap mod 2^32 (${maxClients} clients × weightCap ${cfg.weightCap} > 2^31 - 1); lower weightCap`);
  }
}

/**
 * The largest scale for which `maxClients` clipped vectors plus noise of total standard deviation
 * `noiseStd` (float units, the most noise that can be present, i.e. with every client surviving) cannot wrap.
 * `maxScale` caps the result (e.g. distributed-noise.ts maxScaleForNoise, to keep σ_c within the sampler's range).
 */
export function chooseQuantisation(clipRange: number, maxClients: number, noiseStd: number, options: { weightCap?: number; maxScale?: number } = {}): QuantisationConfig {
  if (!Number.isFinite(clipRange) || clipRange <= 0) throw new Error(`quantisation: clipRange must be a positive number, got ${clipRange}`);
  if (!Number.isInteger(maxClients) || maxClients < 1) throw new Error(`quantisation: maxClients must be a positive integer, got ${maxClients}`);
  if (!Number.isFinite(noiseStd) || noiseStd < 0) throw new Error(`quantisation: noiseStd must be a non-negative number, got ${noiseStd}`);
  // n·ceil(c·s) + ceil(12·σ·s) <= n·(c·s + 1) + 12·σ·s + 1 <= 2^31 - 1.
  let scale = (MAX_SIGNED_SUM - maxClients - 1) / (maxClients * clipRange + NOISE_TAIL_SIGMAS * noiseStd);
  if (!(scale > 0)) throw new Error(`quantisation: no scale keeps ${maxClients} clients from wrapping mod 2^32`);
  if (options.maxScale !== undefined) {
    if (!(options.maxScale > 0)) throw new Error(`quantisation: maxScale must be positive, got ${options.maxScale}`);
    scale = Math.min(scale, options.maxScale);
  }
  if (scale >= 1) scale = Math.floor(scale);
  const cfg: QuantisationConfig = { clipRange, scale, modulusBits: 32, ...(options.weightCap !== undefined ? { weightCap: options.weightCap } : {}) };
  // Guard against floating-point edge cases in the closed form.
  for (let attempt = 0; attempt < 8; attempt++) {
    try {
      checkNoWrap(cfg, maxClients, noiseTailBound(noiseStd * cfg.scale));
      return cfg;
    } catch (error) {
      if (cfg.weightCap !== undefined && maxClients * cfg.weightCap > MAX_SIGNED_SUM) throw error;
      cfg.scale = cfg.scale >= 2 ? cfg.scale - 1 : cfg.scale * 0.999;
    }
  }
  throw new Error(`quantisation: could not find a safe scale for ${maxClients} clients`);
}

/**
 * Where the rounding's uniform draws come from: node:crypto by default. A run with privacy off may pass a
 * seeded source (its rounding protects nothing then), so that a seeded federation is reproducible.
 */
export type RoundingSource = (uniforms: Uint32Array) => void;

/** Clip, scale and stochastically round each coordinate; two's complement mod 2^32. */
export function quantise(values: Float32Array | Float64Array, cfg: QuantisationConfig, rounding: RoundingSource = randomFillSync): Uint32Array {
  validateQuantisationConfig(cfg);
  const { clipRange, scale } = cfg;
  const out = new Uint32Array(values.length);
  const uniforms = new Uint32Array(values.length);
  rounding(uniforms);
  for (let i = 0; i < values.length; i++) {
    const x = values[i];
    if (!Number.isFinite(x)) throw new Error(`quantisation: values[${i}] is not a finite number (${x})`);
    const clipped = x > clipRange ? clipRange : x < -clipRange ? -clipRange : x;
    const y = clipped * scale;
    const floor = Math.floor(y);
    // Round up with probability y - floor; uniforms[i] / 2^32 is uniform on [0, 1).
    const q = uniforms[i] * 2.3283064365386963e-10 < y - floor ? floor + 1 : floor;
    out[i] = q >>> 0;
  }
  return out;
}

/** The signed sum of `count` quantised vectors, divided by the scale. Refuses a configuration that could have wrapped. */
export function dequantiseSum(sum: Uint32Array, cfg: QuantisationConfig, count: number, extraNoiseBound = 0): Float32Array {
  checkNoWrap(cfg, count, extraNoiseBound);
  const out = new Float32Array(sum.length);
  const inverse = 1 / cfg.scale;
  for (let i = 0; i < sum.length; i++) out[i] = (sum[i] | 0) * inverse;
  return out;
}

/** [quantise(update · w / weightCap), w] with w = min(count, weightCap): see the header comment. */
export function encodeWeightedUpdate(update: Float32Array, exampleCount: number, cfg: QuantisationConfig, rounding?: RoundingSource): Uint32Array {
  validateQuantisationConfig(cfg);
  if (cfg.weightCap === undefined) throw new Error('quantisation: encodeWeightedUpdate needs cfg.weightCap');
  if (!Number.isInteger(exampleCount) || exampleCount < 0) throw new Error(`quantisation: exampleCount must be a non-negative integer, got ${exampleCount}`);
  const weight = Math.min(exampleCount, cfg.weightCap);
  const factor = weight / cfg.weightCap;
  const scaled = new Float64Array(update.length);
  for (let i = 0; i < update.length; i++) scaled[i] = update[i] * factor;
  const out = new Uint32Array(update.length + 1);
  out.set(quantise(scaled, cfg, rounding));
  out[update.length] = weight;
  return out;
}

export interface WeightedSum {
  /** Σ w_i x_i (float units). */
  weightedSum: Float32Array;
  /** Σ w_i, exact. */
  totalWeight: number;
  /** Σ w_i x_i / Σ w_i. */
  weightedMean: Float32Array;
}

/** The inverse of encodeWeightedUpdate summed over `count` clients. */
export function decodeWeightedSum(sum: Uint32Array, cfg: QuantisationConfig, count: number, extraNoiseBound = 0): WeightedSum {
  if (cfg.weightCap === undefined) throw new Error('quantisation: decodeWeightedSum needs cfg.weightCap');
  if (sum.length < 1) throw new Error('quantisation: a weighted sum needs at least the weight coordinate');
  const d = sum.length - 1;
  const scaled = dequantiseSum(sum.subarray(0, d), cfg, count, extraNoiseBound);
  const totalWeight = sum[d];
  if (totalWeight > count * cfg.weightCap) throw new Error(`quantisation: total weight ${totalWeight} exceeds ${count} clients × weightCap ${cfg.weightCap}`);
  if (totalWeight === 0) throw new Error('quantisation: total weight is zero, no weighted mean');
  const weightedSum = new Float32Array(d);
  const weightedMean = new Float32Array(d);
  for (let i = 0; i < d; i++) {
    weightedSum[i] = scaled[i] * cfg.weightCap;
    weightedMean[i] = weightedSum[i] / totalWeight;
  }
  return { weightedSum, totalWeight, weightedMean };
}
