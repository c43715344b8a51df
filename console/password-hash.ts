// Password hashing for console users: scrypt from node:crypto with a fresh 16-byte salt per password,
// stored as one self-describing string, and compared in constant time.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/** scrypt cost parameters (N = 2^15, r = 8, p = 1: about 32 MiB and a few tens of ms per hash). */
const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_BYTES = 32;
const MAX_MEMORY = 64 * 1024 * 1024;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password.normalize('NFC'), salt, KEY_BYTES, { N: n, r, p, maxmem: MAX_MEMORY }, (error, key) => (error ? reject(error) : resolve(key))));
}

/** "scrypt$N$r$p$salt-hex$key-hex" for a password of at least 8 characters. */
export async function hashPassword(password: string): Promise<string> {
  if (typeof password !== 'string' || password.length < 8) throw new Error('password: must be at least 8 characters');
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return ['scrypt', N, R, P, salt.toString('hex'), key.toString('hex')].join('$');
}

/** True iff `password` hashes to `stored`; a malformed stored hash is never a match. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (![n, r, p].every((x) => Number.isSafeInteger(x) && x > 0) || n > 1 << 20) return false;
  const salt = Buffer.from(parts[4], 'hex');
  const expected = Buffer.from(parts[5], 'hex');
  if (expected.length !== KEY_BYTES || salt.length < 16) return false;
  const actual = await derive(typeof password === 'string' ? password : '', salt, n, r, p);
  return timingSafeEqual(actual, expected);
}

/** A hash of a random password: checked against when a login names an unknown user, so that the answer
 * takes as long as for a known one. */
let decoy: Promise<string> | undefined;
export function decoyHash(): Promise<string> {
  decoy ??= hashPassword(randomBytes(24).toString('hex'));
  return decoy;
}
