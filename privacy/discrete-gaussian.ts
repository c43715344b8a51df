// The discrete Gaussian N_Z(0, sigma^2) on the integers: P(x) proportional to exp(-x^2 / (2 sigma^2)).
//
// Two exact-by-construction samplers, both fed by node:crypto (read in 256 KiB blocks):
//
// sampleDiscreteGaussian (the one used everywhere): bucketed table + rejection, built for speed at the
// large sigma that snapped DP noise uses (sigma >= 2^16 there). The integers are cut into buckets of
// M = 2^m consecutive values (M = 1 for sigma < 128, else the power of two with sigma/M in [64, 128)),
// covering |x| <= 9.5 sigma + M. A step:
//   1. pick a bucket q from a table of integer weights w_q (proportional to the largest value e_q of the
//      Gaussian shape on that bucket, rounded to integers summing to < 2^64, at least 1), with a 64-bit
//      uniform from two CSPRNG words compared against the cumulative weights held as exact 32+32-bit
//      pairs (a guide table on the top 12 bits makes the search O(1));
//   2. take x uniform in the bucket (m more random bits; exact, M is a power of two);
//   3. keep x with probability a(x) = exp(-x^2/(2 sigma^2)) * k / w_q, where k = min_q w_q / e_q makes
//      a <= 1. Then P(x is output) is proportional to (w_q / M) * a(x), i.e. to exp(-x^2 / (2 sigma^2)):
//      the rounding of the table weights is cancelled exactly, whatever it is. Most draws are decided by
//      one 32-bit word against a precomputed lower bound of a on the bucket, without computing exp; the
//      others compare a lazily drawn 53-bit uniform with a(x) in float64.
// Departures from the exact law: float64 rounding of exp, of x^2 and of k / w_q (relative 2^-52 in a
// trial's acceptance probability), the 53-bit resolution of that comparison, and the cut outside
// [-half*M, half*M - 1] with half*M >= 9.5 sigma + 1 (discreteGaussianSupport): the output is N_Z(0, sigma^2)
// conditioned on that support, at total-variation distance equal to the mass outside, below
// 2 Phi-bar(9.5) = 2.1e-21 per draw; privacy/discretisation-cost.ts charges it to delta. With acceptance
// above 97 % per trial, the statistical distance of one sample from N_Z(0, sigma^2) from the float64
// roundings is below ~1e-15, independent of sigma. Tables are built once per
// sigma (about 2,400 buckets at most, < 1 ms) and cached.
//
// sampleDiscreteGaussianCks: the rejection scheme of Canonne, Kamath and Steinke 2020 ("The Discrete
// Gaussian for Differential Privacy", algorithms 2 and 3); slower (~150-250 ns a value here against
// ~30 ns), kept as an independent reference that the tests compare the table sampler with:
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
// 36 sigma is below exp(-648).
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

/** The CKS 2020 rejection sampler (reference): fills `out` with i.i.d. draws from N_Z(0, sigma^2). */
export function sampleDiscreteGaussianCks(sigma: number, out: Int32Array): Int32Array {
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

interface BucketTable {
  /** Bucket width M = 2^m. */
  width: number;
  /** Buckets cover [-half * M, half * M). */
  half: number;
  /** Cumulative integer weights C_0 = 0 … C_Q (< 2^64) as high and low 32-bit halves. */
  cumHigh: Uint32Array;
  cumLow: Uint32Array;
  /** k / w_q per bucket: the acceptance probability is exp(-x^2/(2 sigma^2)) times this (<= 1/e_q). */
  ratio: Float64Array;
  /** A 32-bit word below this accepts at once (a lower bound of 2^32 * a on the bucket, minus 1). */
  quickAccept: Float64Array;
  /** guide[c]: first bucket whose upper cumulative weight exceeds c * 2^52. */
  guide: Int32Array;
  inverseTwoVariance: number;
}

const TAIL_SIGMAS = 9.5;
const GUIDE_BITS = 12;
const tables = new Map<number, BucketTable>();

/** The bucket geometry of the table sampler at sigma: bucket width M and the half-count of buckets. */
function tableGeometry(sigma: number): { width: number; half: number } {
  const width = sigma < 128 ? 1 : 2 ** Math.floor(Math.log2(sigma / 64));
  return { width, half: Math.ceil((TAIL_SIGMAS * sigma + 1) / width) };
}

/**
 * The integers sampleDiscreteGaussian can output at sigma: [low, high] = [-half*M, half*M - 1] (see the
 * file header). Every value outside has probability 0 here instead of its N_Z(0, sigma^2) probability;
 * privacy/discretisation-cost.ts charges that missing mass.
 */
export function discreteGaussianSupport(sigma: number): { low: number; high: number } {
  checkSigma(sigma);
  const { width, half } = tableGeometry(sigma);
  return { low: -half * width, high: half * width - 1 };
}

function buildTable(sigma: number): BucketTable {
  const { width, half } = tableGeometry(sigma);
  const count = 2 * half;
  const inverseTwoVariance = 1 / (2 * sigma * sigma);
  const shape = (x: number) => Math.exp(-x * x * inverseTwoVariance);
  const top = new Float64Array(count);
  const bottom = new Float64Array(count);
  let total = 0;
  for (let q = 0; q < count; q++) {
    const lo = (q - half) * width;
    const hi = lo + width - 1;
    const near = lo <= 0 && hi >= 0 ? 0 : Math.min(Math.abs(lo), Math.abs(hi));
    const far = Math.max(Math.abs(lo), Math.abs(hi));
    top[q] = shape(near);
    bottom[q] = shape(far);
    total += top[q];
  }
  // Integer weights summing to less than 2^64 (room for the rounding of every bucket), none zero.
  const scale = 2 ** 64 - 2 ** 44;
  const weights: bigint[] = new Array(count);
  let k = Infinity;
  for (let q = 0; q < count; q++) {
    const w = Math.max(1, Math.round((top[q] / total) * scale));
    weights[q] = BigInt(w);
    k = Math.min(k, w / top[q]);
  }
  const cumHigh = new Uint32Array(count + 1);
  const cumLow = new Uint32Array(count + 1);
  const ratio = new Float64Array(count);
  const quickAccept = new Float64Array(count);
  let cumulative = 0n;
  for (let q = 0; q < count; q++) {
    cumulative += weights[q];
    cumHigh[q + 1] = Number(cumulative >> 32n);
    cumLow[q + 1] = Number(cumulative & 0xffffffffn);
    ratio[q] = k / Number(weights[q]);
    quickAccept[q] = Math.max(0, Math.floor(bottom[q] * ratio[q] * 4294967296) - 1);
  }
  if (cumulative >= 1n << 64n) throw new Error('discrete Gaussian: internal table overflow');
  const guide = new Int32Array(1 << GUIDE_BITS);
  let q = 0;
  for (let c = 0; c < guide.length; c++) {
    const point = BigInt(c) << BigInt(64 - GUIDE_BITS);
    while (q < count - 1 && ((BigInt(cumHigh[q + 1]) << 32n) | BigInt(cumLow[q + 1])) <= point) q++;
    guide[c] = q;
  }
  return { width, half, cumHigh, cumLow, ratio, quickAccept, guide, inverseTwoVariance };
}

function tableFor(sigma: number): BucketTable {
  let table = tables.get(sigma);
  if (!table) {
    table = buildTable(sigma);
    if (tables.size >= 16) tables.delete(tables.keys().next().value as number);
    tables.set(sigma, table);
  }
  return table;
}

/**
 * Fills `out` with i.i.d. draws from N_Z(0, sigma^2) (sigma is a standard deviation) and returns it: the
 * bucketed table sampler described at the top of this file.
 */
export function sampleDiscreteGaussian(sigma: number, out: Int32Array): Int32Array {
  checkSigma(sigma);
  if (!(out instanceof Int32Array)) throw new Error('discrete Gaussian: out must be an Int32Array');
  const { width, half, cumHigh, cumLow, ratio, quickAccept, guide, inverseTwoVariance } = tableFor(sigma);
  const last = cumHigh.length - 1;
  const totalHigh = cumHigh[last];
  const totalLow = cumLow[last];
  const mask = width - 1;
  const guideShift = 32 - GUIDE_BITS;
  for (let k = 0; k < out.length; k++) {
    for (;;) {
      // 1. A bucket, from a 64-bit uniform below the total weight.
      const high = nextWord();
      const low = nextWord();
      if (high > totalHigh || (high === totalHigh && low >= totalLow)) continue;
      let q = guide[high >>> guideShift];
      while (cumHigh[q + 1] < high || (cumHigh[q + 1] === high && cumLow[q + 1] <= low)) q++;
      // 2. A value in it.
      const x = (q - half) * width + (width === 1 ? 0 : nextWord() & mask);
      // 3. Keep it with probability a(x): the top 32 bits of a 53-bit uniform first, the rest only on a tie.
      const w = nextWord();
      if (w < quickAccept[q]) {
        out[k] = x;
        break;
      }
      const scaled = Math.exp(-x * x * inverseTwoVariance) * ratio[q] * 4294967296;
      const top = Math.floor(scaled);
      if (w < top || (w === top && nextWord() >>> 11 < (scaled - top) * 2097152)) {
        out[k] = x;
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
