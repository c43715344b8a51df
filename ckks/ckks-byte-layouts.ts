// Byte layouts of SEAL objects: nothing reaches SEAL's deserialiser unchecked.
//
// SEAL's loaders trust their input: truncated or altered bytes made the wasm module trap ("memory access
// out of bounds"), after which it is unusable for the whole process. A coordinator must not be one bad
// upload away from that, so every ciphertext and key is checked here first against the exact layout of
// a reference object made at start-up (uncompressed SEAL serialisation): same length, byte-identical
// metadata (SEAL header, parms_id, which pins N and the moduli, NTT flag, size, scale), every
// coefficient below its prime. For a seeded (symmetric) ciphertext the second polynomial is replaced by
// a fixed-format trailer holding a 64-byte PRNG seed, which may be any bytes.
import type { CkksRuntime } from './ckks-runtime.ts';
import { CKKS_PARAMETERS, SCALE, SLOTS } from '@dpfed/privacy/ckks-parameters';
import type { CipherText, CKKSEncoder, Context, SEALLibrary } from './node-seal-types.ts';

export interface Layout {
  kind: string;
  length: number;
  /** Bytes before the coefficients, which must match exactly. */
  prefix: Uint8Array;
  /** Primes of the coefficient blocks; block b (N coefficients) uses moduli[b % moduli.length]. */
  moduli: { hi: number; lo: number }[];
  blocks: number;
  /** Fixed bytes after the coefficients (seeded ciphertexts), then `seedBytes` free bytes. */
  trailer: Uint8Array;
  seedBytes: number;
}

export interface Layouts {
  ciphertext: Layout;
  seededCiphertext: Layout;
  publicKey: Layout;
  secretKey: Layout;
}

const N = CKKS_PARAMETERS.polyModulusDegree;
const SEED_BYTES = 64;

function splitModuli(values: BigUint64Array): { hi: number; lo: number }[] {
  return Array.from(values, (q) => ({ hi: Number(q >> 32n), lo: Number(q & 0xffffffffn) }));
}

function layoutOf(kind: string, sample: Uint8Array, moduli: BigUint64Array, blocks: number, seedBytes = 0, trailerBytes = 0): Layout {
  const dataBytes = blocks * N * 8;
  const prefixLength = sample.length - dataBytes - trailerBytes - seedBytes;
  if (prefixLength < 16) throw new Error(`ckks: unexpected SEAL layout for ${kind} (${sample.length} bytes)`);
  return {
    kind,
    length: sample.length,
    prefix: sample.slice(0, prefixLength),
    moduli: splitModuli(moduli),
    blocks,
    trailer: sample.slice(prefixLength + dataBytes, prefixLength + dataBytes + trailerBytes),
    seedBytes,
  };
}

/** Serialises a throwaway key pair and ciphertexts of each kind to learn the exact layouts. */
export function referenceLayouts(seal: SEALLibrary, context: Context, encoder: CKKSEncoder): Layouts {
  const none = seal.ComprModeType.none;
  const generator = seal.KeyGenerator(context);
  const secret = generator.secretKey();
  const pub = generator.createPublicKey();
  const encryptor = seal.Encryptor(context, pub, secret);
  const plain = seal.PlainText();
  encoder.encode(new Float64Array(SLOTS), SCALE, plain);
  const full = encryptor.encryptSerializable(plain);
  const seeded = encryptor.encryptSymmetricSerializable(plain);
  const data = context.firstContextData.parms.coeffModulus;
  const key = context.keyContextData.parms.coeffModulus;
  try {
    const fullBytes = full.saveArray(none);
    const seededBytes = seeded.saveArray(none);
    const ciphertext = layoutOf('ciphertext', fullBytes, data, 2);
    // seeded: the same metadata, one polynomial, then a SEAL header + PRNG type byte + the seed
    const trailerBytes = seededBytes.length - ciphertext.prefix.length - N * 8 - SEED_BYTES;
    const seededCiphertext = layoutOf('seeded ciphertext', seededBytes, data, 1, SEED_BYTES, trailerBytes);
    return {
      ciphertext,
      seededCiphertext,
      publicKey: layoutOf('public key', pub.saveArray(none), key, 2 * key.length),
      secretKey: layoutOf('secret key', secret.saveArray(none), key, key.length),
    };
  } finally {
    for (const o of [seeded, full, plain, encryptor, pub, secret, generator]) o.delete();
  }
}

/** Throws unless `bytes` has exactly the layout (see above). */
function checkLayout(bytes: Uint8Array, layout: Layout, what: string): void {
  if (bytes.length !== layout.length) throw new Error(`${what}: ${bytes.length} bytes, expected ${layout.length} for a ${layout.kind}`);
  const { prefix } = layout;
  for (let i = 0; i < prefix.length; i++) {
    if (bytes[i] !== prefix[i]) throw new Error(`${what}: metadata byte ${i} differs (other SEAL parameters, level, scale or format)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = prefix.length;
  for (let b = 0; b < layout.blocks; b++) {
    const { hi: qHi, lo: qLo } = layout.moduli[b % layout.moduli.length];
    for (let i = 0; i < N; i++, offset += 8) {
      const hi = view.getUint32(offset + 4, true);
      if (hi > qHi || (hi === qHi && view.getUint32(offset, true) >= qLo)) throw new Error(`${what}: coefficient ${b * N + i} is not reduced modulo its prime`);
    }
  }
  const { trailer } = layout;
  for (let i = 0; i < trailer.length; i++) {
    if (bytes[offset + i] !== trailer[i]) throw new Error(`${what}: seed trailer byte ${i} differs`);
  }
}

function sealMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function sameParmsId(ciphertext: CipherText, expected: bigint[]): boolean {
  const id = ciphertext.parmsId;
  try {
    const values = id.values;
    return values.length === expected.length && expected.every((v, i) => values[i] === v);
  } finally {
    id.delete();
  }
}

const PARAMS_TEXT = "the federation's CKKS parameters (N = 8192, [60, 60], scale 2^40)";

/** Checks, then loads serialised bytes into `target`: a fresh, seeded or summed ciphertext of ours. */
export function loadCiphertext(rt: CkksRuntime, bytes: Uint8Array, target: CipherText, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new Error(`ckks: ${what} is empty or not bytes`);
  const layout = bytes.length === rt.layouts.seededCiphertext.length ? rt.layouts.seededCiphertext : rt.layouts.ciphertext;
  try {
    checkLayout(bytes, layout, what);
    target.loadArray(rt.context, bytes);
  } catch (error) {
    throw new Error(`ckks: ${what} is not a ciphertext of ${PARAMS_TEXT} or is corrupt: ${sealMessage(error)}`);
  }
  // Belt and braces: the layout check already pins these.
  if (!sameParmsId(target, rt.dataParmsId)) throw new Error(`ckks: ${what} is at the wrong level of the modulus chain`);
  if (target.size !== 2) throw new Error(`ckks: ${what} has ${target.size} polynomials, expected 2`);
  if (target.scale !== SCALE) throw new Error(`ckks: ${what} has scale ${target.scale}, expected 2^${CKKS_PARAMETERS.scaleBits}`);
  if (target.isTransparent) throw new Error(`ckks: ${what} is transparent (not encrypted)`);
}

/** Checks, then loads a serialised key into `key` (deleted when refused). */
export function loadKey<T extends { loadArray(context: Context, array: Uint8Array): void; delete(): void }>(rt: CkksRuntime, key: T, bytes: Uint8Array, layout: Layout, what: string): T {
  try {
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new Error('empty or not bytes');
    checkLayout(bytes, layout, what);
    key.loadArray(rt.context, bytes);
    return key;
  } catch (error) {
    key.delete();
    throw new Error(`ckks: ${what} does not match ${PARAMS_TEXT} or is corrupt: ${sealMessage(error)}`);
  }
}
