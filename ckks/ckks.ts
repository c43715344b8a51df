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
// Public-key encryption (the default, CkksEncryptor.create) means only key holders can decrypt.//
// The parameters and limits are in ckks-parameters.ts, the shared SEAL context in ckks-runtime.ts, the checks
// every serialised ciphertext and key passes before SEAL reads it in ckks-byte-layouts.ts, key generation in
// ckks-keys.ts. This file holds the three roles: encryptor (institution), aggregator (coordinator), decryptor
// (secret-key holder).
import { loadCiphertext, loadKey } from './ckks-byte-layouts.ts';
import { CKKS_LIMITS, DEFAULT_RELEASE_PRECISION_BITS, RANGE_CHECK, SCALE, SLOTS, ckksCiphertextCount, roundForRelease } from '@dpfed/privacy/ckks-parameters';
import { loadCkksRuntime, type CkksRuntime } from './ckks-runtime.ts';
import type { CipherText, SEALLibrary } from './node-seal-types.ts';

export {
  CKKS_ERROR_PER_SUMMAND,
  CKKS_LIMITS,
  CKKS_PARAMETERS,
  DEFAULT_RELEASE_PRECISION_BITS,
  ckksCiphertextCount,
  ckksSumErrorBound,
  roundForRelease,
} from '@dpfed/privacy/ckks-parameters';
export { loadCkksRuntime } from './ckks-runtime.ts';
export { createFederationKeys, type CkksKeyPair } from './ckks-keys.ts';

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
