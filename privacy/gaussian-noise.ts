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
// for a vector of n values, but never finer than the power of two at or just above stddev / 2^25 (the
// sampler's Int32 range). Snapping moves each coordinate by at most g/2, so it can grow the L2 sensitivity
// of a vector by at most g * sqrt(n) (see snappingSensitivityIncrease): at most stddev * 2^-16 while the
// sampler's range does not hold the grid up (n up to about 2^16), at most stddev * 2^-15 up to n = 2^18,
// and below 2 * stddev * sqrt(n) * 2^-25 above (about 6e-5 * stddev at a million values, 8e-4 * stddev
// at 1.5e8). With stddev = z * C that is a relative growth of C by at most z * 2^-15 (resp.
// 2 z sqrt(n) 2^-25). It is
// charged explicitly (privacy/discretisation-cost.ts): the recorded noise multiplier is z * C / (C + g sqrt(n)),
// and the sampler's tail cut is charged to delta there too.
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
  /**
   * Optional copy-free path: hands the next `count` fresh draws to `use` where they lie, in order, as runs
   * draws[start .. start + length) of an array the source owns (`at`: how many of the count came before the
   * run). Each draw is lent once; the source wipes a run when `use` returns, so `use` reads it then or never.
   */
  lend?(count: number, use: NoiseRunConsumer): void;
}

/** Receives one run of lent draws: draws[start .. start + length), the at-th to (at + length - 1)-th. */
export type NoiseRunConsumer = (draws: Int32Array, start: number, length: number, at: number) => void;

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
 * Noise only: the optimiser step on the result is the caller's (client-sdk/flat-optimizer.ts).
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
  const inverseGrid = 1 / g; // exact: g is a power of two
  let bad = -1;
  if (source?.lend) {
    // The draws are read where the source keeps them (no copy); it wipes them afterwards.
    source.lend(values.length, (draws, start, length, at) => {
      if (bad >= 0) return;
      const i = snapAndAdd(run(values, at, length), run(draws, start, length), inverseGrid, g, multiplier);
      if (i >= 0) bad = at + i;
    });
  } else {
    if (scratch.length < Math.min(CHUNK, values.length)) scratch = new Int32Array(Math.min(CHUNK, values.length));
    for (let from = 0; from < values.length && bad < 0; from += CHUNK) {
      const n = Math.min(CHUNK, values.length - from);
      const z = scratch.subarray(0, n);
      if (source) source.fill(z);
      else sampleDiscreteGaussian(scale, z);
      const i = snapAndAdd(run(values, from, n), z, inverseGrid, g, multiplier);
      if (i >= 0) bad = from + i;
    }
    scratch.fill(0);
  }
  if (bad >= 0) {
    // Nothing noisy is returned for a bad vector: wipe it (the noise is wiped already) before saying so.
    const value = values[bad];
    values.fill(NaN);
    throw new Error(`Gaussian noise: values[${bad}] is ${value}, expected a finite number`);
  }
}

/** array[from .. from + n) as a view (the array itself when that is all of it). */
function run<T extends Float32Array | Int32Array>(array: T, from: number, n: number): T {
  return from === 0 && n === array.length ? array : (array.subarray(from, from + n) as T);
}

// The hot loops, small and monomorphic, on views of one length: values[i] <- (round(values[i] / g) + z[i])
// * g * multiplier (the caller wipes the draws once the loop is done). round(x / g) + z is an integer, and
// (round(x / g) + z) * g is formed as round(x / g) * g + z * g: both products are exact (g is a power of
// two), so the sum is the single float64 rounding of the exact lattice value (none at all below 2^53 g),
// exactly as (round(x / g) + z) * g; then only the multiplier and the float32 store round. They return the
// index of the first non-finite value (the values and draws from there on are left as they were), or -1
// (so a caller adds the run's offset to a non-negative result only).
//
// round() is Math.round (nearest, ties up), computed as floor(y + 0.5): y = x / g is a float32 times a power
// of two, so y + 0.5 is exact for 2^-30 <= |y| < 2^52; below 2^-30 floor(y + 0.5) is 0 as Math.round(y) is
// (up to the sign of zero, which + z g erases), and from 2^52 on y is already an integer, kept as it is. So
// the output is bit for bit that of Math.round, which V8 compiles with a data-dependent branch that
// mispredicts on about half of the values of a real gradient (in bench/training-bench.ts: ~3x slower on a training
// step's sum). The loop-invariant numbers are unboxed once before the loop (V8 does not hoist that), the
// lattice value is formed in float64 (an integer addition would be speculated as int32 and checked), and the
// loop is unrolled by four (in the same bench: ~1/3 less time per value than one at a time).

function snapAndAdd(values: Float32Array, z: Int32Array, inverseGrid: number, g: number, multiplier: number): number {
  const inverse = inverseGrid * 1;
  const grid = g * 1;
  const scale = multiplier * 1;
  const n = values.length;
  let i = 0;
  // Four at a time while all four are below 2^52 (the loop overhead costs as much as the arithmetic here).
  for (; i + 3 < n; i += 4) {
    const y0 = values[i] * inverse;
    const y1 = values[i + 1] * inverse;
    const y2 = values[i + 2] * inverse;
    const y3 = values[i + 3] * inverse;
    if (!(Math.abs(y0) < 4503599627370496 && Math.abs(y1) < 4503599627370496 && Math.abs(y2) < 4503599627370496 && Math.abs(y3) < 4503599627370496)) break;
    values[i] = (Math.floor(y0 + 0.5) * grid + z[i] * grid) * scale;
    values[i + 1] = (Math.floor(y1 + 0.5) * grid + z[i + 1] * grid) * scale;
    values[i + 2] = (Math.floor(y2 + 0.5) * grid + z[i + 2] * grid) * scale;
    values[i + 3] = (Math.floor(y3 + 0.5) * grid + z[i + 3] * grid) * scale;
  }
  // The rest, one at a time, and any value from 2^52 on or not finite.
  for (; i < n; i++) {
    const snapped = snapOne(values[i] * inverse);
    if (Number.isNaN(snapped)) return i;
    values[i] = (snapped * grid + z[i] * grid) * scale;
  }
  return -1;
}

/** round(y) as in the unrolled loops (floor(y + 0.5) below 2^52, y itself from there on); NaN if y is not finite. */
function snapOne(y: number): number {
  if (Math.abs(y) < 4503599627370496) return Math.floor(y + 0.5);
  return y - y === 0 ? y : Number.NaN;
}

/** A fresh vector of `length` Gaussian noise values with standard deviation `stddev`. */
export function gaussianNoiseVector(length: number, stddev: number): Float32Array {
  if (!Number.isInteger(length) || length < 0) throw new Error(`Gaussian noise: length must be a non-negative integer, got ${length}`);
  const values = new Float32Array(length);
  addGaussianNoise(values, stddev);
  return values;
}
