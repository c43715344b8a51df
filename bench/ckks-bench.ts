// CKKS aggregation cost for 10 clients and a 100k-float update (issue 4, item 7):
//   ckksEncryptMs   one client: encode + public-key encrypt + serialise its 100k floats (median over clients)
//   ckksAddMs       coordinator: check + load + add one client's ciphertext list into the sum (median)
//   ckksDecryptMs   key holder: check + load + decrypt + decode + round the summed list (median of 3)
//   ckksBytesRatio  bytes on the wire per float ÷ 4 (float32), public-key ciphertexts
//   ckks*FloatsPerSec  100k ÷ the corresponding time
// Also the symmetric (seeded) variant, which halves the bytes but gives every client the secret key:
//   ckksSymmetricEncryptMs, ckksSymmetricBytesRatio.
import { CkksAggregator, CkksDecryptor, CkksEncryptor, createFederationKeys, ckksSumErrorBound } from '@dpfed/ckks/ckks';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { median, roundTo as round } from './statistics.ts';

export interface CkksBenchResult {
  ckksEncryptMs: number;
  ckksAddMs: number;
  ckksDecryptMs: number;
  ckksBytesRatio: number;
  ckksEncryptFloatsPerSec: number;
  ckksDecryptFloatsPerSec: number;
  ckksSymmetricEncryptMs: number;
  ckksSymmetricBytesRatio: number;
}

export async function benchCkks(options: { clients?: number; floats?: number } = {}): Promise<CkksBenchResult> {
  const clients = options.clients ?? 10;
  const floats = options.floats ?? 100_000;
  const random = new SeededRandom('ckks-bench');
  const updates = Array.from({ length: clients }, () => {
    const v = new Float32Array(floats);
    for (let i = 0; i < floats; i++) v[i] = (random.next() - 0.5) * 0.02;
    return v;
  });

  const keys = await createFederationKeys();
  const encryptor = await CkksEncryptor.create(keys.publicKey);
  const symmetric = await CkksEncryptor.createSymmetric(keys.secretKey);
  const decryptor = await CkksDecryptor.create(keys.secretKey);
  const aggregator = await CkksAggregator.create(floats);
  try {
    encryptor.encrypt(updates[0].subarray(0, 4096)); // warm-up (JIT, wasm pages)
    const encryptMs: number[] = [];
    const lists: Uint8Array[][] = [];
    for (const u of updates) {
      const t = performance.now();
      lists.push(encryptor.encrypt(u));
      encryptMs.push(performance.now() - t);
    }
    const symmetricMs: number[] = [];
    let symmetricBytes = 0;
    for (const u of updates.slice(0, 3)) {
      const t = performance.now();
      const list = symmetric.encrypt(u);
      symmetricMs.push(performance.now() - t);
      symmetricBytes = byteCount(list);
    }
    const addMs: number[] = [];
    for (const list of lists) {
      const t = performance.now();
      aggregator.add(list);
      addMs.push(performance.now() - t);
    }
    const sum = aggregator.result();
    const decryptTimes: number[] = [];
    let released: Float64Array = new Float64Array(0);
    for (let r = 0; r < 3; r++) {
      const t = performance.now();
      released = decryptor.decryptSum(sum, floats);
      decryptTimes.push(performance.now() - t);
    }
    const decryptMs = median(decryptTimes);

    // The figures mean nothing if the sum is wrong.
    const bound = ckksSumErrorBound(clients);
    for (let i = 0; i < floats; i++) {
      let exact = 0;
      for (const u of updates) exact += u[i];
      if (Math.abs(released[i] - exact) > bound) throw new Error(`ckks bench: value ${i} off by ${Math.abs(released[i] - exact)} (bound ${bound})`);
    }

    const encrypt = median(encryptMs);
    return {
      ckksEncryptMs: round(encrypt, 2),
      ckksAddMs: round(median(addMs), 2),
      ckksDecryptMs: round(decryptMs, 2),
      ckksBytesRatio: round(byteCount(lists[0]) / floats / 4, 3),
      ckksEncryptFloatsPerSec: Math.round(floats / (encrypt / 1000)),
      ckksDecryptFloatsPerSec: Math.round(floats / (decryptMs / 1000)),
      ckksSymmetricEncryptMs: round(median(symmetricMs), 2),
      ckksSymmetricBytesRatio: round(symmetricBytes / floats / 4, 3),
    };
  } finally {
    aggregator.dispose();
    decryptor.dispose();
    symmetric.dispose();
    encryptor.dispose();
  }
}

function byteCount(list: readonly Uint8Array[]): number {
  return list.reduce((n, b) => n + b.length, 0);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchCkks()));
}
