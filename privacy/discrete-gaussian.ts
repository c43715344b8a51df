// The discrete Gaussian N_Z(0, sigma^2) on the integers: P(x) proportional to exp(-x^2 / (2 sigma^2)).
//
// Sampler: the rejection scheme of Canonne, Kamath and Steinke 2020 ("The Discrete Gaussian for
// Differential Privacy", algorithms 2 and 3), written for speed:
//   1. a discrete Laplace draw Y with scale t = floor(sigma) + 1, built as X = U + t*V with U uniform on
//      {0..t-1} kept with probability exp(-U/t), V geometric with P(V = v) = (1 - e^-1) e^-v, and a sign
//      (the pair "negative, 0" is rejected so 0 is not counted twice);
//   2. Y is kept with probability exp(-(|Y| - sigma^2/t)^2 / (2 sigma^2)), which turns the Laplace shape
//      into the Gaussian one exactly.
// U is drawn exactly (32-bit words with rejection of the incomplete top range). The Bernoulli trials
// compare a 53-bit uniform with a float64 probability, and V is floor(-ln u) of a 53-bit uniform, so the
// only departures from the exact law are float64 rounding of exp/ln (relative 2^-52) and the 2^-53
// resolution of the uniforms: each trial is off by at most ~2^-51 in probability, and a sample uses a
// few trials on average, so the statistical distance of one sample from N_Z(0, sigma^2) is below ~1e-14
// (independent of sigma). V is bounded by 36 (-ln 2^-53 < 37), so |x| <= 37 t: the mass cut off beyond
// 36 sigma is below exp(-648). All randomness comes from node:crypto, read in 256 KiB blocks.
import { randomFillSync } from 'node:crypto';

/** Largest sigma accepted: 37 * (2^25 + 1) still fits in an Int32. */
export const MAX_DISCRETE_GAUSSIAN_SIGMA = 2 ** 25;

const WORDS = 1 << 16;
const words = new Uint32Array(WORDS);
let position = WORDS;

function nextWord(): number {
  if (position === WORDS) {
    randomFillSync(words);
    position = 0;
  }
  return words[position++];
}

/** A uniform double in [0, 1) with 53 random bits. */
function uniform53(): number {
  return ((nextWord() >>> 5) * 67108864 + (nextWord() >>> 6)) / 9007199254740992;
}

/** Exactly uniform on {0, …, n-1}, for 1 <= n <= 2^32. */
function uniformBelow(n: number): number {
  const limit = 4294967296 - (4294967296 % n);
  for (;;) {
    const w = nextWord();
    if (w < limit) return w % n;
  }
}

function checkSigma(sigma: number): void {
  if (typeof sigma !== 'number' || !Number.isFinite(sigma) || sigma <= 0) {
    throw new Error(`discrete Gaussian: sigma must be a positive finite number, got ${sigma}`);
  }
  if (sigma > MAX_DISCRETE_GAUSSIAN_SIGMA) {
    throw new Error(`discrete Gaussian: sigma must be <= 2^25 (${MAX_DISCRETE_GAUSSIAN_SIGMA}) so samples fit in an Int32, got ${sigma}`);
  }
}

/** Fills `out` with i.i.d. draws from N_Z(0, sigma^2) (sigma is a standard deviation) and returns it. */
export function sampleDiscreteGaussian(sigma: number, out: Int32Array): Int32Array {
  checkSigma(sigma);
  if (!(out instanceof Int32Array)) throw new Error('discrete Gaussian: out must be an Int32Array');
  const t = Math.floor(sigma) + 1;
  const shift = (sigma * sigma) / t;
  const inverseTwoVariance = 1 / (2 * sigma * sigma);
  for (let k = 0; k < out.length; k++) {
    for (;;) {
      // Discrete Laplace with scale t.
      const u = uniformBelow(t);
      if (uniform53() >= Math.exp(-u / t)) continue;
      const v = Math.floor(-Math.log(1 - uniform53()));
      const x = u + t * v;
      const negative = (nextWord() & 1) === 1;
      if (negative && x === 0) continue;
      // Laplace → Gaussian.
      const d = x - shift;
      if (uniform53() < Math.exp(-d * d * inverseTwoVariance)) {
        out[k] = negative ? -x : x;
        break;
      }
    }
  }
  return out;
}

/**
 * Variance of N_Z(0, sigma^2). For sigma < 32 it is summed directly (terms beyond 40 sigma are below
 * e^-800); above, it equals sigma^2 to within sigma^2 * 8 pi^2 sigma^2 exp(-2 pi^2 sigma^2) (Poisson
 * summation), far below float64 resolution, so sigma^2 is returned.
 */
export function discreteGaussianVariance(sigma: number): number {
  checkSigma(sigma);
  if (sigma >= 32) return sigma * sigma;
  const limit = Math.ceil(40 * sigma) + 2;
  const inverseTwoVariance = 1 / (2 * sigma * sigma);
  let mass = 1; // x = 0
  let second = 0;
  for (let x = 1; x <= limit; x++) {
    const w = Math.exp(-x * x * inverseTwoVariance);
    mass += 2 * w;
    second += 2 * x * x * w;
  }
  return second / mass;
}
