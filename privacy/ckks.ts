// CKKS homomorphic aggregation (`--aggregation ckks`) with node-seal 6.0.3 (Microsoft SEAL in wasm).
//
// Institutions encrypt their update under the federation public key; the coordinator adds ciphertexts
// without any secret key; the holder of the secret key decrypts only the sum and rounds it before release.
//
// TRUST MODEL, plainly: node-seal has no threshold (multi-party) decryption. Whoever holds the secret key
// can decrypt ANY single ciphertext, i.e. any one institution's update, not only the sum. The scheme
// therefore protects updates from the coordinator only if the coordinator never holds the secret key and
// never hands an individual ciphertext to whoever does. Typical placements: the key held by a party
// separate from the coordinator (a key custodian that receives only the summed ciphertext), or by the
// institutions (then any institution that sees another's ciphertext could read it, and the coordinator
// must keep ciphertexts to itself). SecAgg (the default) has no such single point; prefer it.
//
// Public-key vs symmetric encryption: SEAL's symmetric encryption is "seeded" (the random half of the
// ciphertext is replaced by a seed), so ciphertexts are half the size and encryption up to 2x faster, but
// every encrypting institution must then hold the secret key, which lets each of them decrypt the others.
// Public-key encryption (the default, CkksEncryptor.create) means only key holders can decrypt.
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
// Randomness: SEAL draws its keys and encryption noise from the wasm module's random device, which in
// Node is crypto.randomFillSync (checked in node-seal's loader).
import { createRequire } from 'node:module';

import type { CipherText, CKKSEncoder, Context, Evaluator, SEALLibrary } from './node-seal-types.ts';

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

const SCALE = 2 ** CKKS_PARAMETERS.scaleBits;
/** maxAbsSum plus room for CKKS noise; wrap-around or a wrong key gives values far beyond it. */
const RANGE_CHECK = CKKS_LIMITS.maxAbsSum * (1 + 2 ** -10);
const SLOTS = CKKS_PARAMETERS.slotsPerCiphertext;

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

// ---------- the shared SEAL context (one per process, never freed) ----------

interface CkksRuntime {
  seal: SEALLibrary;
  context: Context;
  encoder: CKKSEncoder;
  evaluator: Evaluator;
  /** parms_id of the data level, where every valid ciphertext of ours lives. */
  dataParmsId: bigint[];
  layouts: Layouts;
}

let runtime: Promise<CkksRuntime> | undefined;

type SealFactory = () => Promise<SEALLibrary>;

/** Loads node-seal (CommonJS factory) and builds the federation's CKKS context once per process. */
export function loadCkksRuntime(): Promise<CkksRuntime> {
  runtime ??= (async () => {
    const required = createRequire(import.meta.url)('node-seal') as SealFactory | { default: SealFactory };
    const factory = typeof required === 'function' ? required : required.default;
    const seal = await factory();
    const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
    parms.setPolyModulusDegree(CKKS_PARAMETERS.polyModulusDegree);
    const moduli = seal.CoeffModulus.Create(CKKS_PARAMETERS.polyModulusDegree, Int32Array.from(CKKS_PARAMETERS.coeffModulusBits));
    parms.setCoeffModulus(moduli);
    const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
    moduli.delete();
    parms.delete();
    if (!context.parametersSet()) throw new Error('ckks: SEAL refused the CKKS parameters (N = 8192, [60, 60], 128-bit)');
    const encoder = seal.CKKSEncoder(context);
    if (encoder.slotCount !== SLOTS) throw new Error(`ckks: expected ${SLOTS} slots, SEAL reports ${encoder.slotCount}`);
    const evaluator = seal.Evaluator(context);
    const id = context.firstParmsId;
    const dataParmsId = Array.from(id.values);
    id.delete();
    const layouts = referenceLayouts(seal, context, encoder);
    return { seal, context, encoder, evaluator, dataParmsId, layouts };
  })();
  return runtime;
}

// ---------- byte layouts: nothing reaches SEAL's deserialiser unchecked ----------
//
// SEAL's loaders trust their input: truncated or altered bytes made the wasm module trap ("memory access
// out of bounds"), after which it is unusable for the whole process. A coordinator must not be one bad
// upload away from that, so every ciphertext and key is checked here first against the exact layout of
// a reference object made at start-up (uncompressed SEAL serialisation): same length, byte-identical
// metadata (SEAL header, parms_id, which pins N and the moduli, NTT flag, size, scale), every
// coefficient below its prime. For a seeded (symmetric) ciphertext the second polynomial is replaced by
// a fixed-format trailer holding a 64-byte PRNG seed, which may be any bytes.

interface Layout {
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

interface Layouts {
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
function referenceLayouts(seal: SEALLibrary, context: Context, encoder: CKKSEncoder): Layouts {
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
function loadCiphertext(rt: CkksRuntime, bytes: Uint8Array, target: CipherText, what: string): void {
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

function loadKey<T extends { loadArray(context: Context, array: Uint8Array): void; delete(): void }>(
  rt: CkksRuntime,
  key: T,
  bytes: Uint8Array,
  layout: Layout,
  what: string,
): T {
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

// ---------- keys ----------

export interface CkksKeyPair {
  /** Serialised SEAL public key: give it to every encrypting institution. */
  publicKey: Uint8Array;
  /** Serialised SEAL secret key: whoever holds it can decrypt any ciphertext. */
  secretKey: Uint8Array;
}

/** A fresh federation key pair (SEAL key generation; randomness from node:crypto via the wasm runtime). */
export async function createFederationKeys(): Promise<CkksKeyPair> {
  const rt = await loadCkksRuntime();
  const generator = rt.seal.KeyGenerator(rt.context);
  const secret = generator.secretKey();
  const pub = generator.createPublicKey();
  try {
    return { publicKey: pub.saveArray(rt.seal.ComprModeType.none), secretKey: secret.saveArray(rt.seal.ComprModeType.none) };
  } finally {
    pub.delete();
    secret.delete();
    generator.delete();
  }
}

// ---------- institution side ----------

export type CkksEncryptionMode = 'public' | 'symmetric';

/** Encrypts Float32Array updates into lists of serialised ciphertexts of 4096 slots each. */
export class CkksEncryptor {
  private disposed = false;

  private constructor(
    private readonly rt: CkksRuntime,
    private readonly encryptor: ReturnType<SEALLibrary['Encryptor']>,
    private readonly keys: { delete(): void }[],
    readonly mode: CkksEncryptionMode,
  ) {}

  /** Public-key encryption under the federation key (the default; encryptors cannot decrypt). */
  static async create(publicKey: Uint8Array): Promise<CkksEncryptor> {
    const rt = await loadCkksRuntime();
    const key = loadKey(rt, rt.seal.PublicKey(), publicKey, rt.layouts.publicKey, 'public key');
    return new CkksEncryptor(rt, rt.seal.Encryptor(rt.context, key), [key], 'public');
  }

  /**
   * Seeded symmetric encryption: half the bytes and faster, but the encrypting institution holds the secret
   * key and can therefore decrypt everyone's ciphertexts. Only for deployments that accept that.
   */
  static async createSymmetric(secretKey: Uint8Array): Promise<CkksEncryptor> {
    const rt = await loadCkksRuntime();
    const secret = loadKey(rt, rt.seal.SecretKey(), secretKey, rt.layouts.secretKey, 'secret key');
    // SEAL's Encryptor wants a public key argument; a key generated from the secret key serves.
    const generator = rt.seal.KeyGenerator(rt.context, secret);
    const pub = generator.createPublicKey();
    generator.delete();
    return new CkksEncryptor(rt, rt.seal.Encryptor(rt.context, pub, secret), [pub, secret], 'symmetric');
  }

  /** One serialised ciphertext per 4096 values (the last one zero-padded). */
  encrypt(values: Float32Array): Uint8Array[] {
    if (this.disposed) throw new Error('ckks: encryptor used after dispose()');
    if (!(values instanceof Float32Array)) throw new Error('ckks: encrypt expects a Float32Array');
    const count = ckksCiphertextCount(values.length);
    for (let i = 0; i < values.length; i++) {
      const x = values[i];
      if (!(Math.abs(x) <= CKKS_LIMITS.maxAbsInput)) {
        throw new Error(`ckks: value at index ${i} is ${x}; CKKS inputs must be finite with |x| <= ${CKKS_LIMITS.maxAbsInput} (scale the update first)`);
      }
    }
    const { seal, encoder } = this.rt;
    const slots = new Float64Array(SLOTS);
    const plain = seal.PlainText();
    const out: Uint8Array[] = [];
    try {
      for (let c = 0; c < count; c++) {
        const part = values.subarray(c * SLOTS, (c + 1) * SLOTS);
        slots.fill(0);
        for (let i = 0; i < part.length; i++) slots[i] = part[i];
        encoder.encode(slots, SCALE, plain);
        const serializable = this.mode === 'public' ? this.encryptor.encryptSerializable(plain) : this.encryptor.encryptSymmetricSerializable(plain);
        try {
          out.push(serializable.saveArray(seal.ComprModeType.none));
        } finally {
          serializable.delete();
        }
      }
    } finally {
      plain.delete();
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.encryptor.delete();
    for (const key of this.keys) key.delete();
  }
}

// ---------- coordinator side: no secret key, no decrypt ----------

/**
 * Adds institutions' ciphertext lists. Holds no key of any kind and has no way to decrypt: the only
 * output is the summed ciphertexts, serialised, for the secret-key holder.
 */
export class CkksAggregator {
  private readonly sums: CipherText[] = [];
  private readonly scratch: CipherText[] = [];
  private summands = 0;
  private disposed = false;

  private constructor(
    private readonly rt: CkksRuntime,
    readonly vectorLength: number,
    readonly ciphertextCount: number,
  ) {}

  static async create(vectorLength: number): Promise<CkksAggregator> {
    const count = ckksCiphertextCount(vectorLength);
    return new CkksAggregator(await loadCkksRuntime(), vectorLength, count);
  }

  /** How many ciphertext lists have been added. */
  get count(): number {
    return this.summands;
  }

  /** Adds one institution's list. All-or-nothing: a bad ciphertext anywhere leaves the sum unchanged. */
  add(ciphertexts: readonly Uint8Array[], from = 'update'): void {
    if (this.disposed) throw new Error('ckks: aggregator used after dispose()');
    if (!Array.isArray(ciphertexts) || ciphertexts.length !== this.ciphertextCount) {
      throw new Error(`ckks: ${from} has ${Array.isArray(ciphertexts) ? ciphertexts.length : 'no'} ciphertexts, expected ${this.ciphertextCount} for ${this.vectorLength} values`);
    }
    if (this.summands >= CKKS_LIMITS.maxSummands) throw new Error(`ckks: at most ${CKKS_LIMITS.maxSummands} updates can be summed without overflow`);
    const { seal, evaluator } = this.rt;
    while (this.scratch.length < this.ciphertextCount) this.scratch.push(seal.CipherText());
    for (let c = 0; c < this.ciphertextCount; c++) loadCiphertext(this.rt, ciphertexts[c], this.scratch[c], `${from} ciphertext ${c}`);
    for (let c = 0; c < this.ciphertextCount; c++) {
      if (this.summands === 0) this.sums.push(this.scratch[c].clone());
      else evaluator.add(this.sums[c], this.scratch[c], this.sums[c]);
    }
    this.summands++;
  }

  /** The summed ciphertexts, serialised for the secret-key holder. */
  result(): Uint8Array[] {
    if (this.disposed) throw new Error('ckks: aggregator used after dispose()');
    if (this.summands === 0) throw new Error('ckks: nothing has been added');
    return this.sums.map((ct) => ct.saveArray(this.rt.seal.ComprModeType.none));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const ct of this.sums) ct.delete();
    for (const ct of this.scratch) ct.delete();
    this.sums.length = 0;
    this.scratch.length = 0;
  }
}

// ---------- secret-key holder ----------

export interface CkksDecryptorOptions {
  /** Round the released sum to multiples of 2^-bits (default 20). */
  releasePrecisionBits?: number;
}

/** Decrypts a summed ciphertext list and rounds it before release. */
export class CkksDecryptor {
  private disposed = false;

  private constructor(
    private readonly rt: CkksRuntime,
    private readonly decryptor: ReturnType<SEALLibrary['Decryptor']>,
    private readonly secret: { delete(): void },
    readonly releasePrecisionBits: number,
  ) {}

  static async create(secretKey: Uint8Array, options: CkksDecryptorOptions = {}): Promise<CkksDecryptor> {
    const bits = options.releasePrecisionBits ?? DEFAULT_RELEASE_PRECISION_BITS;
    roundForRelease(new Float64Array(0), bits); // validates bits
    const rt = await loadCkksRuntime();
    const secret = loadKey(rt, rt.seal.SecretKey(), secretKey, rt.layouts.secretKey, 'secret key');
    return new CkksDecryptor(rt, rt.seal.Decryptor(rt.context, secret), secret, bits);
  }

  /**
   * The first `length` values of the summed vector, rounded to 2^-releasePrecisionBits. Refuses values
   * beyond CKKS_LIMITS.maxAbsSum (wrap-around, or a ciphertext under another key).
   */
  decryptSum(ciphertexts: readonly Uint8Array[], length: number): Float64Array {
    if (this.disposed) throw new Error('ckks: decryptor used after dispose()');
    const count = ckksCiphertextCount(length);
    if (!Array.isArray(ciphertexts) || ciphertexts.length !== count) {
      throw new Error(`ckks: sum has ${Array.isArray(ciphertexts) ? ciphertexts.length : 'no'} ciphertexts, expected ${count} for ${length} values`);
    }
    const { seal, encoder } = this.rt;
    const out = new Float64Array(length);
    const ct = seal.CipherText();
    const plain = seal.PlainText();
    try {
      for (let c = 0; c < count; c++) {
        loadCiphertext(this.rt, ciphertexts[c], ct, `sum ciphertext ${c}`);
        this.decryptor.decrypt(ct, plain);
        const decoded = encoder.decode(plain);
        const take = Math.min(SLOTS, length - c * SLOTS);
        for (let i = 0; i < take; i++) {
          const x = decoded[i];
          if (!(Math.abs(x) <= RANGE_CHECK)) {
            throw new Error(`ckks: decrypted value ${c * SLOTS + i} is out of range (${x}): the sum overflowed or was encrypted under another key`);
          }
          out[c * SLOTS + i] = x;
        }
      }
    } finally {
      plain.delete();
      ct.delete();
    }
    return roundForRelease(out, this.releasePrecisionBits);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.decryptor.delete();
    this.secret.delete();
  }
}
