import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SEALLibrary } from 'node-seal/implementation/seal.js';
import { CKKS_LIMITS, CkksAggregator, ckksCiphertextCount, CkksDecryptor, CkksEncryptor, ckksSumErrorBound, createFederationKeys, roundForRelease, type CkksKeyPair } from '@dpfed/ckks/ckks';
import { SeededRandom } from '@dpfed/proto/seeded-random';

const LENGTH = 10_000; // 3 ciphertexts, the last one partly filled

function vectors(seed: string, count: number, length: number, amplitude: number): Float32Array[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, () => {
    const v = new Float32Array(length);
    for (let i = 0; i < length; i++) v[i] = (random.next() * 2 - 1) * amplitude;
    return v;
  });
}

function exactSum(vs: Float32Array[]): Float64Array {
  const sum = new Float64Array(vs[0].length);
  for (const v of vs) for (let i = 0; i < v.length; i++) sum[i] += v[i];
  return sum;
}

function maxError(a: Float64Array, b: Float64Array): number {
  let e = 0;
  for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e;
}

/** A ciphertext made with other parameters, straight from node-seal. */
async function foreignCiphertext(n: number, bits: number[]): Promise<Uint8Array> {
  const factory = createRequire(import.meta.url)('node-seal') as () => Promise<SEALLibrary>;
  const seal = await factory();
  const parms = seal.EncryptionParameters(seal.SchemeType.ckks);
  parms.setPolyModulusDegree(n);
  parms.setCoeffModulus(seal.CoeffModulus.Create(n, Int32Array.from(bits)));
  const context = seal.Context(parms, true, seal.SecurityLevel.tc128);
  const generator = seal.KeyGenerator(context);
  const pub = generator.createPublicKey();
  const encryptor = seal.Encryptor(context, pub);
  const encoder = seal.CKKSEncoder(context);
  const plain = encoder.encode(Float64Array.from([1, 2, 3]), 2 ** 40)!;
  const bytes = encryptor.encryptSerializable(plain).saveArray(seal.ComprModeType.none);
  for (const o of [plain, encoder, encryptor, pub, generator, context, parms]) o.delete();
  return bytes;
}

describe('CKKS aggregation', () => {
  let keys: CkksKeyPair;
  let encryptor: CkksEncryptor;
  let decryptor: CkksDecryptor;

  beforeAll(async () => {
    keys = await createFederationKeys();
    encryptor = await CkksEncryptor.create(keys.publicKey);
    decryptor = await CkksDecryptor.create(keys.secretKey);
  });
  afterAll(() => {
    encryptor.dispose();
    decryptor.dispose();
  });

  it('sums 10 encrypted vectors to within the stated error bound of the plain sum', async () => {
    const inputs = vectors('ckks-sum', 10, LENGTH, 1);
    const aggregator = await CkksAggregator.create(LENGTH);
    for (const v of inputs) aggregator.add(encryptor.encrypt(v));
    expect(aggregator.count).toBe(10);
    const released = decryptor.decryptSum(aggregator.result(), LENGTH);
    aggregator.dispose();
    const exact = exactSum(inputs);
    const error = maxError(released, exact);
    expect(error).toBeLessThanOrEqual(ckksSumErrorBound(10));
    // released values are rounded to multiples of 2^-20
    for (let i = 0; i < 50; i++) expect(Number.isInteger(released[i] * 2 ** 20)).toBe(true);
    // a sanity check that the test is about sums: the sum differs from any single input
    expect(maxError(released, Float64Array.from(inputs[0]))).toBeGreaterThan(0.5);
  });

  it('symmetric (seeded) encryption sums correctly at about half the bytes', async () => {
    const symmetric = await CkksEncryptor.createSymmetric(keys.secretKey);
    const inputs = vectors('ckks-sym', 3, LENGTH, 5);
    const aggregator = await CkksAggregator.create(LENGTH);
    const lists = inputs.map((v) => symmetric.encrypt(v));
    for (const list of lists) aggregator.add(list);
    const released = decryptor.decryptSum(aggregator.result(), LENGTH);
    expect(maxError(released, exactSum(inputs))).toBeLessThanOrEqual(ckksSumErrorBound(3));
    const publicBytes = encryptor.encrypt(inputs[0]).reduce((s, c) => s + c.length, 0);
    const symmetricBytes = lists[0].reduce((s, c) => s + c.length, 0);
    expect(symmetricBytes / publicBytes).toBeLessThan(0.6);
    expect(symmetric.mode).toBe('symmetric');
    aggregator.dispose();
    symmetric.dispose();
  });

  it('round-trips keys and ciphertexts through bytes', async () => {
    expect(ckksCiphertextCount(LENGTH)).toBe(3);
    const input = vectors('ckks-roundtrip', 1, LENGTH, 100)[0];
    const list = encryptor.encrypt(input);
    expect(list).toHaveLength(3);
    // one summand: the aggregate re-serialises to exactly the bytes that came in
    const first = await CkksAggregator.create(LENGTH);
    first.add(list);
    const again = first.result();
    expect(again.map((b, i) => Buffer.from(b).equals(Buffer.from(list[i])))).toEqual([true, true, true]);
    // a summed list can be shipped and summed again elsewhere
    const second = await CkksAggregator.create(LENGTH);
    second.add(again);
    second.add(list);
    const twice = decryptor.decryptSum(second.result(), LENGTH);
    const expected = Float64Array.from(input, (x) => 2 * x);
    expect(maxError(twice, expected)).toBeLessThanOrEqual(ckksSumErrorBound(2));
    first.dispose();
    second.dispose();
    // keys reloaded from bytes in a fresh encryptor/decryptor work together
    const reloaded = await CkksEncryptor.create(Uint8Array.from(keys.publicKey));
    const reloadedDecryptor = await CkksDecryptor.create(Uint8Array.from(keys.secretKey), { releasePrecisionBits: 30 });
    const back = reloadedDecryptor.decryptSum(reloaded.encrypt(input), LENGTH);
    expect(maxError(back, Float64Array.from(input))).toBeLessThanOrEqual(ckksSumErrorBound(1, 30));
    reloaded.dispose();
    reloadedDecryptor.dispose();
  });

  it('refuses ciphertexts and keys of other parameters, corrupt bytes and wrong counts', async () => {
    const aggregator = await CkksAggregator.create(4096);
    const good = encryptor.encrypt(new Float32Array(4096).fill(1));
    const otherN = await foreignCiphertext(16384, [60, 60]);
    const otherChain = await foreignCiphertext(8192, [60, 40, 60]);
    expect(() => aggregator.add([otherN])).toThrow(/not a ciphertext of the federation's CKKS parameters/);
    expect(() => aggregator.add([otherChain])).toThrow(/not a ciphertext of the federation's CKKS parameters|wrong level/);
    expect(() => aggregator.add([good[0].subarray(0, 1000)])).toThrow(/ciphertext 0 .*corrupt/);
    expect(() => aggregator.add([...good, ...good])).toThrow(/has 2 ciphertexts, expected 1/);
    expect(() => decryptor.decryptSum([otherN], 4096)).toThrow(/not a ciphertext of the federation's CKKS parameters/);
    // all of those left the aggregate untouched
    expect(aggregator.count).toBe(0);
    aggregator.add(good);
    expect(decryptor.decryptSum(aggregator.result(), 4096)[4095]).toBe(1);
    aggregator.dispose();

    await expect(CkksEncryptor.create(otherN)).rejects.toThrow(/public key does not match/);
    await expect(CkksDecryptor.create(new Uint8Array(10))).rejects.toThrow(/secret key does not match/);
    await expect(CkksEncryptor.create(new Uint8Array(0))).rejects.toThrow(/public key does not match.*empty/);
    await expect(CkksEncryptor.create(keys.secretKey)).rejects.toThrow(/public key does not match.*131160 bytes, expected/);
  });

  it('checks bytes before SEAL sees them: truncated or altered uploads are refused and SEAL keeps working', async () => {
    const list = encryptor.encrypt(new Float32Array(4096).fill(3));
    const aggregator = await CkksAggregator.create(4096);
    const original = list[0];
    const attempts: Uint8Array[] = [];
    for (const cut of [1, 16, 113, 5000, original.length - 1]) attempts.push(original.slice(0, cut));
    for (const at of [0, 2, 8, 20, 48, 49, 60, 80, 100, 112]) {
      const altered = Uint8Array.from(original);
      altered[at] ^= 0x5a;
      attempts.push(altered);
    }
    const unreduced = Uint8Array.from(original);
    unreduced.fill(0xff, 113, 121); // first coefficient = 2^64 − 1, above the 60-bit prime
    attempts.push(unreduced);
    for (const bad of attempts) expect(() => aggregator.add([bad]), `${bad.length} bytes`).toThrow(/is not a ciphertext of the federation's CKKS parameters .* or is corrupt/);
    expect(aggregator.count).toBe(0);
    aggregator.add(list);
    aggregator.add(list);
    expect(decryptor.decryptSum(aggregator.result(), 4096)[4000]).toBe(6);
    aggregator.dispose();
  });

  it('refuses inputs that could overflow the modulus', async () => {
    const big = new Float32Array(5);
    big[3] = CKKS_LIMITS.maxAbsInput * 2;
    expect(() => encryptor.encrypt(big)).toThrow(/index 3 is 2048/);
    big[3] = Number.NaN;
    expect(() => encryptor.encrypt(big)).toThrow(/index 3 is NaN/);
    expect(() => encryptor.encrypt(new Float32Array(0))).toThrow(/vector length must be a positive integer/);
    const aggregator = await CkksAggregator.create(5);
    const list = encryptor.encrypt(new Float32Array(5).fill(CKKS_LIMITS.maxAbsInput));
    for (let i = 0; i < CKKS_LIMITS.maxSummands; i++) aggregator.add(list);
    expect(() => aggregator.add(list)).toThrow(/at most 128 updates/);
    const full = decryptor.decryptSum(aggregator.result(), 5);
    expect(full[0]).toBe(CKKS_LIMITS.maxAbsSum);
    aggregator.dispose();
  });

  it('gives the coordinator no way to decrypt; another secret key cannot read the sum', async () => {
    const aggregator = await CkksAggregator.create(100);
    const methods = Object.getOwnPropertyNames(Object.getPrototypeOf(aggregator));
    expect(methods.some((m) => /decrypt|secret|key/i.test(m))).toBe(false);
    expect(CkksAggregator.create.length).toBe(1); // takes only a vector length: no key can be handed to it
    aggregator.add(encryptor.encrypt(new Float32Array(100).fill(0.25)));
    const sum = aggregator.result();
    aggregator.dispose();
    const strangerKeys = await createFederationKeys();
    const stranger = await CkksDecryptor.create(strangerKeys.secretKey);
    expect(() => stranger.decryptSum(sum, 100)).toThrow(/out of range .*another key/);
    stranger.dispose();
    expect(decryptor.decryptSum(sum, 100)[99]).toBe(0.25);
  });

  it('rounds for release to the stated precision and refuses use after dispose', async () => {
    expect(Array.from(roundForRelease(Float64Array.from([0.1, -3.00000001, 2 ** -21 + 2 ** -23]), 20))).toEqual([Math.round(0.1 * 2 ** 20) / 2 ** 20, -3, 2 ** -20]);
    expect(() => roundForRelease(new Float64Array(1), 41)).toThrow(/releasePrecisionBits/);
    const e = await CkksEncryptor.create(keys.publicKey);
    e.dispose();
    expect(() => e.encrypt(new Float32Array(1))).toThrow(/after dispose/);
  });
});
