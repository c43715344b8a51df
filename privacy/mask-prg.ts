// Mask expansion for secure aggregation: a 32-byte seed becomes a pseudorandom Uint32Array by running
// AES-256-CTR (node:crypto, native) over zeros, keyed by the seed, with an all-zero IV. Every seed is used
// for exactly one mask: self-mask seeds are fresh per (round, collection) and pairwise seeds are derived
// with the run, round and collection in the KDF (see secagg-keys.ts), so a fixed IV is safe.
// Words are read little-endian on every platform, so clients and coordinator expand identical masks.
import { createCipheriv } from 'node:crypto';
import { endianness } from 'node:os';

const LITTLE_ENDIAN = endianness() === 'LE';
const ZERO_IV = Buffer.alloc(16);

export type MaskSign = 1 | -1;

function checkSeed(seed: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) throw new Error(`mask seed must be 32 bytes, got ${seed?.length}`);
}

/** The mask of `length` uint32 words expanded from `seed`. */
export function expandMask(seed: Uint8Array, length: number): Uint32Array {
  checkSeed(seed);
  if (!Number.isInteger(length) || length < 0) throw new Error(`mask length must be a non-negative integer, got ${length}`);
  const cipher = createCipheriv('aes-256-ctr', seed, ZERO_IV);
  const bytes = cipher.update(Buffer.alloc(length * 4));
  if (LITTLE_ENDIAN) {
    // Copy into a fresh, aligned buffer (Buffer pools may be unaligned).
    const out = new Uint32Array(length);
    new Uint8Array(out.buffer).set(bytes);
    return out;
  }
  const out = new Uint32Array(length);
  for (let i = 0; i < length; i++) out[i] = bytes.readUInt32LE(i * 4);
  return out;
}

/** target += sign · mask(seed), coordinate-wise mod 2^32, in place. Returns target. */
export function addMask(target: Uint32Array, seed: Uint8Array, sign: MaskSign): Uint32Array {
  if (sign !== 1 && sign !== -1) throw new Error(`mask sign must be 1 or -1, got ${sign}`);
  const mask = expandMask(seed, target.length);
  if (sign === 1) for (let i = 0; i < target.length; i++) target[i] = (target[i] + mask[i]) >>> 0;
  else for (let i = 0; i < target.length; i++) target[i] = (target[i] - mask[i]) >>> 0;
  return target;
}

/** target -= sign · mask(seed): the inverse of addMask. */
export function removeMask(target: Uint32Array, seed: Uint8Array, sign: MaskSign): Uint32Array {
  return addMask(target, seed, sign === 1 ? -1 : 1);
}

/** acc += vector mod 2^32, in place (the secure sum's plain accumulation step). */
export function addVectorMod32(acc: Uint32Array, vector: Uint32Array): Uint32Array {
  if (acc.length !== vector.length) throw new Error(`vector length ${vector.length} does not match accumulator length ${acc.length}`);
  for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] + vector[i]) >>> 0;
  return acc;
}
