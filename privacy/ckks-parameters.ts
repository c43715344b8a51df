// The federation's CKKS parameters, value limits and error bounds (node-seal 6.0.3, Microsoft SEAL in wasm).
// Plain arithmetic with no encryption library: the client and the coordinator use it without loading the
// optional CKKS plugin (@dpfed/ckks, whose ckks.ts holds the encryption).
//
// Parameters, chosen by measurement (100k floats, 10 clients, 2-core x86-64 server; bench/ckks-bench.ts):
//   N = 8192 (4096 slots per ciphertext), coefficient modulus two 60-bit primes [60, 60], scale 2^40,
//   128-bit classical security (SEAL's HE-standard table allows up to 218 bits of modulus at N = 8192).
//   Summation needs no multiplicative depth, so the smallest chain suffices: ciphertexts live at one 60-bit
//   prime (the second is the special prime, which also shrinks public-key encryption noise by mod-switching).
//   N = 16384 measured the same bytes per float and the same speed, but pads small models to 8192 slots;
//   a single prime [60] encrypted ~40% faster but with ~17x the error. Deeper chains ([60,40,40,60]) cost
//   about 3x the time and 2-3x the bytes for depth we never use.
// Value range: scale 2^40 in a 60-bit prime leaves about 2^19 of headroom (q/2 ÷ scale) before wrap-around;
// we stay a factor 4 below it: at most CKKS_LIMITS.maxSummands inputs of |x| <= CKKS_LIMITS.maxAbsInput
// (|sum| <= 2^17), and refuse anything else.

export const CKKS_PARAMETERS = Object.freeze({
  polyModulusDegree: 8192,
  coeffModulusBits: Object.freeze([60, 60]) as readonly number[],
  scaleBits: 40,
  slotsPerCiphertext: 4096,
  securityLevel: 'tc128' as const,
});

export const CKKS_LIMITS = Object.freeze({
  /** Largest |value| an institution may encrypt. */
  maxAbsInput: 1024,
  /** Most ciphertext lists one aggregate may contain. maxAbsInput · maxSummands = 2^17, 4x below the ~2^19 headroom. */
  maxSummands: 128,
  /** Decrypted |values| above this mean wrap-around or a wrong key: refused, never released. */
  maxAbsSum: 2 ** 17,
});

/** The released sum is rounded to multiples of 2^-releasePrecisionBits (default 20, i.e. ~9.5e-7). */
export const DEFAULT_RELEASE_PRECISION_BITS = 20;

/**
 * Worst-case CKKS error of one fresh public-key ciphertext per slot, with margin: the largest error
 * measured over 400k slots here was 1.1e-8 (public-key; symmetric 0.9e-9); errors of independent ciphertexts
 * add, and we bound their sum linearly (the true growth is closer to √n).
 */
export const CKKS_ERROR_PER_SUMMAND = 5e-8;

export const SCALE = 2 ** CKKS_PARAMETERS.scaleBits;
/** maxAbsSum plus room for CKKS noise; wrap-around or a wrong key gives values far beyond it. */
export const RANGE_CHECK = CKKS_LIMITS.maxAbsSum * (1 + 2 ** -10);
export const SLOTS = CKKS_PARAMETERS.slotsPerCiphertext;

/** Bound on |released − exact sum| for a sum of `summands` ciphertexts, including release rounding. */
export function ckksSumErrorBound(summands: number, releasePrecisionBits = DEFAULT_RELEASE_PRECISION_BITS): number {
  if (!Number.isInteger(summands) || summands < 1) throw new Error(`ckks: summands must be a positive integer, got ${summands}`);
  return summands * CKKS_ERROR_PER_SUMMAND + 2 ** -(releasePrecisionBits + 1);
}

/** How many ciphertexts carry a vector of `length` values. */
export function ckksCiphertextCount(length: number): number {
  if (!Number.isInteger(length) || length < 1) throw new Error(`ckks: vector length must be a positive integer, got ${length}`);
  return Math.ceil(length / SLOTS);
}

/** Rounds every value to a multiple of 2^-bits, in place; returns the array. */
export function roundForRelease(values: Float64Array, bits: number = DEFAULT_RELEASE_PRECISION_BITS): Float64Array {
  if (!Number.isInteger(bits) || bits < 0 || bits > 40) throw new Error(`ckks: releasePrecisionBits must be an integer in [0, 40], got ${bits}`);
  const unit = 2 ** bits;
  for (let i = 0; i < values.length; i++) values[i] = Math.round(values[i] * unit) / unit;
  return values;
}
