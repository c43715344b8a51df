// t-of-n Shamir secret sharing of 32-byte secrets over the prime field GF(p), p = 2^256 + 297 (the first
// prime above 2^256, so every 32-byte string is a field element and no secret needs rejecting).
// A share is (x, y) with x a small positive integer (the participant's 1-based index) and y a field
// element serialised as 33 big-endian bytes. Coefficients come from node:crypto.
import { randomBytes } from 'node:crypto';

export const FIELD_PRIME = (1n << 256n) + 297n;
export const SECRET_BYTES = 32;
export const SHARE_VALUE_BYTES = 33;
/** Largest x-coordinate accepted (indices are 1-based participant numbers). */
export const MAX_SHARE_X = 0xffffffff;

export interface ShamirShare {
  x: number;
  value: Uint8Array;
}

function mod(a: bigint): bigint {
  const r = a % FIELD_PRIME;
  return r < 0n ? r + FIELD_PRIME : r;
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return hex.length === 0 ? 0n : BigInt('0x' + hex);
}

function bigIntToBytes(value: bigint, length: number): Uint8Array {
  const hex = value.toString(16).padStart(length * 2, '0');
  if (hex.length > length * 2) throw new Error(`value does not fit in ${length} bytes`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Modular inverse by Fermat (p is prime). */
function inverse(a: bigint): bigint {
  if (a === 0n) throw new Error('shamir: no inverse of zero');
  let result = 1n;
  let base = mod(a);
  let e = FIELD_PRIME - 2n;
  while (e > 0n) {
    if (e & 1n) result = (result * base) % FIELD_PRIME;
    base = (base * base) % FIELD_PRIME;
    e >>= 1n;
  }
  return result;
}

/** A uniform field element (40 random bytes reduced mod p: bias below 2^-60). */
function randomFieldElement(): bigint {
  return mod(bytesToBigInt(randomBytes(40)));
}

function checkX(x: number, what: string): void {
  if (!Number.isInteger(x) || x < 1 || x > MAX_SHARE_X) throw new Error(`shamir: ${what} x-coordinate must be an integer in [1, ${MAX_SHARE_X}], got ${x}`);
}

function checkThreshold(t: number, n: number): void {
  if (!Number.isInteger(t) || t < 1) throw new Error(`shamir: threshold must be a positive integer, got ${t}`);
  if (t > n) throw new Error(`shamir: threshold ${t} exceeds the number of shares ${n}`);
}

/** Splits a 32-byte secret into one share per x in `xs`; any `t` of them rebuild it, fewer reveal nothing. */
export function split(secret: Uint8Array, t: number, xs: readonly number[]): ShamirShare[] {
  if (!(secret instanceof Uint8Array) || secret.length !== SECRET_BYTES) throw new Error(`shamir: secret must be ${SECRET_BYTES} bytes, got ${secret?.length}`);
  checkThreshold(t, xs.length);
  const seen = new Set<number>();
  for (const x of xs) {
    checkX(x, 'share');
    if (seen.has(x)) throw new Error(`shamir: duplicate x-coordinate ${x}`);
    seen.add(x);
  }
  const coefficients = [bytesToBigInt(secret)];
  for (let i = 1; i < t; i++) coefficients.push(randomFieldElement());
  return xs.map((x) => {
    const bx = BigInt(x);
    let y = 0n;
    for (let i = coefficients.length - 1; i >= 0; i--) y = (y * bx + coefficients[i]) % FIELD_PRIME;
    return { x, value: bigIntToBytes(y, SHARE_VALUE_BYTES) };
  });
}

/** Lagrange coefficients λ_j for interpolation at 0 from the points xs (reusable across secrets). */
export function lagrangeAtZero(xs: readonly number[]): bigint[] {
  const seen = new Set<number>();
  for (const x of xs) {
    checkX(x, 'share');
    if (seen.has(x)) throw new Error(`shamir: duplicate x-coordinate ${x}`);
    seen.add(x);
  }
  const bxs = xs.map(BigInt);
  const numerators: bigint[] = [];
  const denominators: bigint[] = [];
  for (let j = 0; j < bxs.length; j++) {
    let numerator = 1n;
    let denominator = 1n;
    for (let m = 0; m < bxs.length; m++) {
      if (m === j) continue;
      numerator = (numerator * bxs[m]) % FIELD_PRIME;
      denominator = mod(denominator * (bxs[m] - bxs[j]));
    }
    numerators.push(numerator);
    denominators.push(denominator);
  }
  // One inversion for all denominators (Montgomery's trick).
  const prefix: bigint[] = [];
  let running = 1n;
  for (const d of denominators) {
    prefix.push(running);
    running = (running * d) % FIELD_PRIME;
  }
  let inverseRunning = inverse(running);
  const coefficients = new Array<bigint>(bxs.length);
  for (let j = bxs.length - 1; j >= 0; j--) {
    const inverseDenominator = (inverseRunning * prefix[j]) % FIELD_PRIME;
    inverseRunning = (inverseRunning * denominators[j]) % FIELD_PRIME;
    coefficients[j] = (numerators[j] * inverseDenominator) % FIELD_PRIME;
  }
  return coefficients;
}

/** Parses a share value, refusing wrong lengths and values outside the field. */
export function shareValueToField(value: Uint8Array): bigint {
  if (!(value instanceof Uint8Array) || value.length !== SHARE_VALUE_BYTES) throw new Error(`shamir: share value must be ${SHARE_VALUE_BYTES} bytes, got ${value?.length}`);
  const y = bytesToBigInt(value);
  if (y >= FIELD_PRIME) throw new Error('shamir: share value is not a field element (>= p)');
  return y;
}

/** The secret from share values, given coefficients from lagrangeAtZero over the same x order. */
export function combineWithCoefficients(coefficients: readonly bigint[], values: readonly Uint8Array[]): Uint8Array {
  if (coefficients.length !== values.length) throw new Error(`shamir: ${values.length} share values for ${coefficients.length} coefficients`);
  let secret = 0n;
  for (let j = 0; j < values.length; j++) secret = (secret + coefficients[j] * shareValueToField(values[j])) % FIELD_PRIME;
  if (secret >= 1n << 256n) throw new Error('shamir: reconstructed value is not a 32-byte secret (inconsistent shares)');
  return bigIntToBytes(secret, SECRET_BYTES);
}

/**
 * Rebuilds the secret from at least `t` shares (uses the first t). Too few shares, duplicates, bad
 * x-coordinates or malformed values throw. With `verify`, extra shares beyond t are checked to lie on
 * the same polynomial, and an inconsistency throws.
 */
export function combine(shares: readonly ShamirShare[], t: number, options: { verify?: boolean } = {}): Uint8Array {
  if (!Number.isInteger(t) || t < 1) throw new Error(`shamir: threshold must be a positive integer, got ${t}`);
  if (shares.length < t) throw new Error(`shamir: need at least ${t} shares to rebuild the secret, got ${shares.length}`);
  const base = shares.slice(0, t);
  const secret = combineWithCoefficients(
    lagrangeAtZero(base.map((s) => s.x)),
    base.map((s) => s.value),
  );
  if (options.verify && shares.length > t) {
    const xs = new Set(base.map((s) => s.x));
    for (const extra of shares.slice(t)) {
      if (xs.has(extra.x)) throw new Error(`shamir: duplicate x-coordinate ${extra.x}`);
      checkX(extra.x, 'share');
      if (evaluateAt(base, extra.x) !== shareValueToField(extra.value)) throw new Error(`shamir: share at x=${extra.x} is inconsistent with the others`);
    }
  }
  return secret;
}

/** The polynomial through `points` evaluated at x (Lagrange form). */
function evaluateAt(points: readonly ShamirShare[], x: number): bigint {
  const bx = BigInt(x);
  const bxs = points.map((p) => BigInt(p.x));
  let result = 0n;
  for (let j = 0; j < points.length; j++) {
    let numerator = 1n;
    let denominator = 1n;
    for (let m = 0; m < points.length; m++) {
      if (m === j) continue;
      numerator = mod(numerator * (bx - bxs[m]));
      denominator = mod(denominator * (bxs[j] - bxs[m]));
    }
    result = (result + ((shareValueToField(points[j].value) * numerator) % FIELD_PRIME) * inverse(denominator)) % FIELD_PRIME;
  }
  return result;
}
