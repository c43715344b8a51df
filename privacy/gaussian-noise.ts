// Gaussian noise that survives the floating-point attacks on textbook samplers (Mironov 2012).
//
// A float sampler added to a float value leaves gaps and rounding patterns in the set of reachable
// outputs that depend on the input, so the output can reveal the input exactly. Here nothing about the
// input survives except through the noise law:
//   - every value x is snapped to a grid of step g = 2^k: x' = g * round(x / g) (exact in float64, since
//     g is a power of two);
//   - the noise is g * Z with Z ~ N_Z(0, (stddev/g)^2), the discrete Gaussian (privacy/discrete-gaussian.ts),
//     so x' + g Z is an exact multiple of g: the same output lattice for every input;
//   - the sum is formed in float64 and stored as float32. Both roundings are deterministic functions of
//     the exact lattice value x' + g Z, i.e. post-processing, which cannot weaken the guarantee.
// The discrete Gaussian with scale s = stddev/g has standard deviation stddev to within a relative
// 1e-300 for s >= 32 (see discreteGaussianVariance). Neighbouring snapped inputs differ by a multiple of
// g, and for such integer shifts the discrete Gaussian satisfies the same Rényi/concentrated DP bound
// as the continuous Gaussian of the same scale (Canonne-Kamath-Steinke 2020, Thm 4: rho = D^2/(2 s^2)),
// and by Poisson summation every moment the subsampled-Gaussian accountant uses (integer orders) equals
// the continuous one to within a relative exp(-2 pi^2 s^2), nil at s >= 2^10; so the accountant's
// figures for the Gaussian mechanism apply.
//
// Choice of grid (documented figure): g is the largest power of two with g <= stddev / (2^16 * sqrt(n))
// for a vector of n values, but never finer than stddev / 2^25 (the sampler's Int32 range). Snapping
// moves each coordinate by at most g/2, so it can grow the L2 sensitivity of a vector by at most
// g * sqrt(n) (see snappingSensitivityIncrease): at most stddev * 2^-16 for n <= 2^18 values, and
// stddev * sqrt(n) * 2^-25 above (about 3e-5 * stddev at a million values, 4e-4 * stddev at 1.5e8). With
// stddev = z * C that is a relative growth of C by at most z * 2^-16 (resp. z * sqrt(n) * 2^-25): a
// caller that wants it accounted exactly can pass stddev * (1 + snappingSensitivityIncrease / C).
// The grid always satisfies g <= stddev / 2^10.
//
// The integers Z can come from elsewhere than this thread (IntegerNoiseSource, e.g. noise-pool.ts drawing
// them ahead of time in a worker): they do not depend on the data, only on the scale s = stddev / g, which
// is fixed by (length, stddev). A source must hand out fresh draws, each used once, from node:crypto.
import { MAX_DISCRETE_GAUSSIAN_SIGMA, sampleDiscreteGaussian } from './discrete-gaussian.ts';

/** Where the integers Z ~ N_Z(0, scale^2) come from; by default they are drawn in this thread. */
export interface IntegerNoiseSource {
  /** sigma of the discrete Gaussian, i.e. stddev / grid (see noiseScale). */
  readonly scale: number;
  /** Fills `out` with fresh i.i.d. draws, never handed out before. */
  fill(out: Int32Array): void;
}

const CHUNK = 1 << 16;

function checkStddev(stddev: number): void {
  if (typeof stddev !== 'number' || !Number.isFinite(stddev) || stddev <= 0) {
    throw new Error(`Gaussian noise: stddev must be a positive finite number (a standard deviation), got ${stddev}`);
  }
  if (stddev < 1e-30 || stddev > 1e30) throw new Error(`Gaussian noise: stddev must lie in [1e-30, 1e30], got ${stddev}`);
}

/** The snapping grid g (a power of two) used for a vector of `length` values and noise `stddev`. */
export function noiseGrid(length: number, stddev: number): number {
  checkStddev(stddev);
  if (!Number.isInteger(length) || length < 0) throw new Error(`Gaussian noise: length must be a non-negative integer, got ${length}`);
  let k = Math.floor(Math.log2(stddev / (65536 * Math.sqrt(Math.max(1, length)))));
  // Never finer than the sampler allows: stddev / g <= 2^25.
  const finest = Math.ceil(Math.log2(stddev / MAX_DISCRETE_GAUSSIAN_SIGMA));
  if (k < finest) k = finest;
  // Guard against log2 rounding at exact powers of two.
  while (stddev / 2 ** k > MAX_DISCRETE_GAUSSIAN_SIGMA) k++;
  return 2 ** k;
}

/** The discrete Gaussian's sigma for a vector of `length` values: stddev / noiseGrid(length, stddev). */
export function noiseScale(length: number, stddev: number): number {
  return stddev / noiseGrid(length, stddev);
}

/** Upper bound on how much snapping can grow the L2 distance between two vectors: g * sqrt(length). */
export function snappingSensitivityIncrease(length: number, stddev: number): number {
  return noiseGrid(length, stddev) * Math.sqrt(length);
}

let scratch = new Int32Array(0);

/**
 * Adds Gaussian noise of standard deviation `stddev` (NOT a variance) to every value, in place, after
 * snapping the values to the grid g = noiseGrid(values.length, stddev). Randomness from node:crypto, drawn
 * here or taken from `source` (whose scale must be noiseScale(values.length, stddev)). `multiplier` scales
 * the noisy result (x' + g Z) * multiplier, e.g. DP-SGD's 1 / (q n): post-processing of the lattice value.
 */
export function addGaussianNoise(values: Float32Array, stddev: number, source?: IntegerNoiseSource, multiplier = 1): void {
  if (!(values instanceof Float32Array)) throw new Error('Gaussian noise: values must be a Float32Array');
  checkStddev(stddev);
  if (!(typeof multiplier === 'number' && Number.isFinite(multiplier))) throw new Error(`Gaussian noise: multiplier must be a finite number, got ${multiplier}`);
  const g = noiseGrid(values.length, stddev);
  const scale = stddev / g;
  if (source && source.scale !== scale) {
    throw new Error(`Gaussian noise: the noise source draws at scale ${source.scale}, this vector needs ${scale} (stddev ${stddev}, length ${values.length})`);
  }
  if (scratch.length < Math.min(CHUNK, values.length)) scratch = new Int32Array(Math.min(CHUNK, values.length));
  const inverseGrid = 1 / g; // exact: g is a power of two
  for (let start = 0; start < values.length; start += CHUNK) {
    const n = Math.min(CHUNK, values.length - start);
    const z = scratch.subarray(0, n);
    if (source) source.fill(z);
    else sampleDiscreteGaussian(scale, z);
    for (let i = 0; i < n; i++) {
      // round(x / g) + Z, an exact integer in float64; times g (exact), times the multiplier.
      const snapped = Math.round(values[start + i] * inverseGrid);
      if (snapped - snapped !== 0) {
        // Nothing noisy is returned for a bad vector: wipe it and the noise before saying so.
        const bad = values[start + i];
        values.fill(NaN);
        scratch.fill(0);
        throw new Error(`Gaussian noise: values[${start + i}] is ${bad}, expected a finite number`);
      }
      values[start + i] = (snapped + z[i]) * g * multiplier;
    }
  }
  scratch.fill(0);
}

/** A fresh vector of `length` Gaussian noise values with standard deviation `stddev`. */
export function gaussianNoiseVector(length: number, stddev: number): Float32Array {
  if (!Number.isInteger(length) || length < 0) throw new Error(`Gaussian noise: length must be a non-negative integer, got ${length}`);
  const values = new Float32Array(length);
  addGaussianNoise(values, stddev);
  return values;
}
