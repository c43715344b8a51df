import { randomFillSync } from 'node:crypto';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { SecAggClient } from '@dpfed/client/secagg-client';
import { SecAggServer } from '@dpfed/coordinator/secagg-server';
import { addHistograms, aucFromHistogram, histogramFromVector, histogramOfScores, histogramToVector } from '@dpfed/privacy/auc-histogram';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { expandMask } from '@dpfed/privacy/mask-prg';
import { abortProbability, majorityThreshold, neighbourhoods, sizeMaskingGraph } from '@dpfed/privacy/masking-graph';
import { dequantiseSum, quantise } from '@dpfed/privacy/quantise';
import { boxSharedKey, decryptShare, encryptShare, generateX25519KeyPair, signKeys, signUnmask, type EncryptedShare, type SecAggContext, type SignedKeys } from '@dpfed/privacy/secagg-keys';
import { SeededRandom } from '@dpfed/proto/seeded-random';

const CTX: SecAggContext = { runId: 'run-test', round: 3, collection: 'update' };

interface Federation {
  ids: string[];
  identities: Map<string, IdentityKey>;
  identityKeys: Map<string, Uint8Array>;
  clients: Map<string, SecAggClient>;
  server: SecAggServer;
}

function federation(n: number, threshold: number, length: number, options: { graph?: 'complete' | number; context?: SecAggContext } = {}): Federation {
  const context = options.context ?? CTX;
  const ids = Array.from({ length: n }, (_, i) => `inst-${String(i + 1).padStart(2, '0')}`);
  const identities = new Map(ids.map((id) => [id, generateIdentity()]));
  const identityKeys = new Map(ids.map((id) => [id, identities.get(id)!.publicKey]));
  const clients = new Map(
    ids.map((id, i) => [
      id,
      new SecAggClient({
        identity: identities.get(id)!,
        institutionId: id,
        index: i + 1,
        context,
        threshold,
        identityKeys,
        ...(options.graph !== undefined ? { expectedGraph: options.graph } : {}),
      }),
    ]),
  );
  const server = new SecAggServer({ context, threshold, vectorLength: length, identityKeys, ...(options.graph !== undefined ? { graph: options.graph } : {}) });
  return { ids, identities, identityKeys, clients, server };
}

function randomVector(length: number): Uint32Array {
  return randomFillSync(new Uint32Array(length));
}

function plainSum(vectors: Uint32Array[], length: number): Uint32Array {
  const sum = new Uint32Array(length);
  for (const v of vectors) for (let i = 0; i < length; i++) sum[i] = (sum[i] + v[i]) >>> 0;
  return sum;
}

interface Drops {
  afterAdvertise?: string[];
  afterShare?: string[];
  afterMasked?: string[];
}

/** Runs all phases in-process; returns the inputs of the clients whose masked vectors were sent. */
function runToUnmask(f: Federation, inputs: Map<string, Uint32Array>, drops: Drops = {}): { survivors: string[] } {
  const { server, clients, ids } = f;
  for (const id of ids) server.receiveKeys(clients.get(id)!.advertise());
  const keys = server.keyList();
  const sharing = ids.filter((id) => !drops.afterAdvertise?.includes(id));
  for (const id of sharing) server.receiveShares(id, clients.get(id)!.shareKeys(keys, server.neighboursOf(id)));
  const masking = sharing.filter((id) => !drops.afterShare?.includes(id));
  for (const id of masking) server.receiveMaskedVector(id, clients.get(id)!.maskedInput(server.sharesFor(id), inputs.get(id)!));
  const answering = masking.filter((id) => !drops.afterMasked?.includes(id));
  for (const id of answering) {
    const request = server.unmaskRequest(id);
    server.receiveUnmask(id, clients.get(id)!.unmask(request.survivors, request.dropped));
  }
  return { survivors: masking };
}

function runRound(f: Federation, inputs: Map<string, Uint32Array>, drops: Drops = {}): { result: Uint32Array; expected: Uint32Array } {
  const { survivors } = runToUnmask(f, inputs, drops);
  const length = f.server.vectorLength;
  return {
    result: f.server.result(),
    expected: plainSum(
      survivors.map((id) => inputs.get(id)!),
      length,
    ),
  };
}

function inputsFor(f: Federation, length: number): Map<string, Uint32Array> {
  return new Map(f.ids.map((id) => [id, randomVector(length)]));
}

describe('secure aggregation: exact sums', () => {
  it('sums exactly with no dropouts', () => {
    const f = federation(6, 4, 1000);
    const inputs = inputsFor(f, 1000);
    const { result, expected } = runRound(f, inputs);
    expect(Array.from(result)).toEqual(Array.from(expected));
    expect(f.server.survivors).toHaveLength(6);
    expect(f.server.dropped).toHaveLength(0);
  });

  it('sums quantised float updates and reads them back within the rounding error', () => {
    const n = 5;
    const f = federation(n, 3, 200);
    const cfg = { clipRange: 1, scale: 1e6, modulusBits: 32 as const };
    const floats = f.ids.map(() => Float32Array.from({ length: 200 }, (_, i) => Math.sin(i + Math.random()) * 0.9));
    const inputs = new Map(f.ids.map((id, i) => [id, quantise(floats[i], cfg)]));
    const { result } = runRound(f, inputs);
    const decoded = dequantiseSum(result, cfg, n);
    for (let i = 0; i < 200; i++) {
      const truth = floats.reduce((s, v) => s + v[i], 0);
      expect(Math.abs(decoded[i] - truth)).toBeLessThanOrEqual(n / cfg.scale + 1e-6);
    }
  });

  it('sums AUC score histograms in the evaluation collection (secure AUC building block)', () => {
    const bins = 64;
    const f = federation(4, 3, 2 * bins, { context: { ...CTX, collection: 'evaluation' } });
    const random = new SeededRandom('auc');
    const histograms = f.ids.map(() => {
      const labels = Uint8Array.from({ length: 500 }, () => (random.next() < 0.3 ? 1 : 0));
      const logits = Float32Array.from(labels, (y) => random.normal() + (y ? 1.2 : 0));
      return histogramOfScores(logits, labels, bins, 8);
    });
    const inputs = new Map(f.ids.map((id, i) => [id, histogramToVector(histograms[i])]));
    const { result } = runRound(f, inputs, { afterShare: ['inst-04'] });
    const clear = histograms.slice(0, 3).reduce((a, b) => addHistograms(a, b));
    const secure = histogramFromVector(result, 8);
    expect(Array.from(secure.positive)).toEqual(Array.from(clear.positive));
    expect(Array.from(secure.negative)).toEqual(Array.from(clear.negative));
    expect(aucFromHistogram(secure)).toBe(aucFromHistogram(clear));
  });

  it('recovers from dropouts after advertising keys', () => {
    const f = federation(8, 5, 500);
    const inputs = inputsFor(f, 500);
    const { result, expected } = runRound(f, inputs, { afterAdvertise: ['inst-02', 'inst-07'] });
    expect(Array.from(result)).toEqual(Array.from(expected));
    expect(f.server.dropped).toHaveLength(0); // they never shared keys: not in anyone's masks
  });

  it('recovers from dropouts after sharing keys (pairwise masks rebuilt from key shares)', () => {
    const f = federation(8, 5, 500);
    const inputs = inputsFor(f, 500);
    const { result, expected } = runRound(f, inputs, { afterShare: ['inst-01', 'inst-05', 'inst-08'] });
    expect(Array.from(result)).toEqual(Array.from(expected));
    expect([...f.server.dropped]).toEqual(['inst-01', 'inst-05', 'inst-08']);
  });

  it('completes when survivors fail to answer the unmask request (dropouts after masked input)', () => {
    const f = federation(8, 5, 500);
    const inputs = inputsFor(f, 500);
    const { result, expected } = runRound(f, inputs, { afterMasked: ['inst-03', 'inst-04'] });
    // Their vectors are in the sum; their self masks are rebuilt from the others' shares.
    expect(Array.from(result)).toEqual(Array.from(expected));
  });

  it('recovers from dropouts in every phase at once', () => {
    const f = federation(10, 6, 300);
    const inputs = inputsFor(f, 300);
    const { result, expected } = runRound(f, inputs, { afterAdvertise: ['inst-10'], afterShare: ['inst-02'], afterMasked: ['inst-05'] });
    expect(Array.from(result)).toEqual(Array.from(expected));
  });

  it('works on a sparse SecAgg+ graph, with clients checking their neighbourhood', () => {
    const n = 66;
    const k = 10;
    const t = majorityThreshold(k) + 1;
    const f = federation(n, t, 64, { graph: k });
    const inputs = inputsFor(f, 64);
    const { result, expected } = runRound(f, inputs, { afterShare: ['inst-03', 'inst-40', 'inst-65'], afterMasked: ['inst-12'] });
    expect(Array.from(result)).toEqual(Array.from(expected));
    expect(f.server.neighboursOf('inst-01')).toHaveLength(k);
  });
});

describe('secure aggregation: aborts', () => {
  it('aborts below the threshold after sharing keys, releasing nothing', () => {
    const f = federation(6, 4, 100);
    const inputs = inputsFor(f, 100);
    expect(() => runToUnmask(f, inputs, { afterShare: ['inst-01', 'inst-02', 'inst-03'] })).toThrow(/only 3 masked vectors arrived, below the threshold 4/);
    expect(f.server.phase).toBe('aborted');
    expect(f.server.abortReason).toMatch(/below the threshold/);
    expect(() => f.server.result()).toThrow(/aborted/);
  });

  it('aborts below the threshold at advertising', () => {
    const f = federation(5, 4, 10);
    for (const id of f.ids.slice(0, 3)) f.server.receiveKeys(f.clients.get(id)!.advertise());
    expect(() => f.server.keyList()).toThrow(/only 3 institutions advertised keys, below the threshold 4/);
  });

  it('aborts when too few survivors answer the unmask request: no partial unmasking', () => {
    const f = federation(6, 4, 100);
    const inputs = inputsFor(f, 100);
    runToUnmask(f, inputs, { afterShare: ['inst-06'], afterMasked: ['inst-01', 'inst-02'] });
    expect(() => f.server.result()).toThrow(/aborted: only 3 institutions answered the unmask request, below the threshold 4/);
    expect(() => f.server.result()).toThrow(/aborted/);
  });

  it('a client refuses to mask when too few neighbours shared keys', () => {
    const f = federation(5, 4, 10);
    for (const id of f.ids) f.server.receiveKeys(f.clients.get(id)!.advertise());
    const keys = f.server.keyList();
    const shares = f.clients.get('inst-01')!.shareKeys(keys, f.server.neighboursOf('inst-01'));
    // Only two of inst-01's shares reach it back from peers: 1 + 2 holders < 4.
    const c2 = f.clients.get('inst-02')!.shareKeys(keys, f.server.neighboursOf('inst-02'));
    const c3 = f.clients.get('inst-03')!.shareKeys(keys, f.server.neighboursOf('inst-03'));
    expect(shares).toHaveLength(4);
    const toOne = [...c2, ...c3].filter((s) => s.toInstitution === 'inst-01');
    expect(() => f.clients.get('inst-01')!.maskedInput(toOne, randomVector(10))).toThrow(/below the threshold 4/);
  });
});

describe('secure aggregation: what the coordinator sees', () => {
  it('a masked vector looks uniform (chi-square on bytes) and never equals the clear update', () => {
    const length = 50_000;
    const f = federation(4, 3, length);
    const clear = new Uint32Array(length); // an all-zero update: the worst case for leaking structure
    clear.fill(7, 0, 1000);
    const inputs = new Map(f.ids.map((id) => [id, new Uint32Array(clear)]));
    for (const id of f.ids) f.server.receiveKeys(f.clients.get(id)!.advertise());
    const keys = f.server.keyList();
    for (const id of f.ids) f.server.receiveShares(id, f.clients.get(id)!.shareKeys(keys, f.server.neighboursOf(id)));
    const masked = f.clients.get('inst-02')!.maskedInput(f.server.sharesFor('inst-02'), inputs.get('inst-02')!);
    const bytes = new Uint8Array(masked.buffer);
    const counts = new Array<number>(256).fill(0);
    for (const b of bytes) counts[b]++;
    const expected = bytes.length / 256;
    const chi2 = counts.reduce((s, c) => s + ((c - expected) * (c - expected)) / expected, 0);
    // df = 255: mean 255, sd ~22.6; 400 is beyond 6 sd (p < 1e-9). A clear vector gives ~5e7.
    expect(chi2).toBeLessThan(400);
    let equal = 0;
    for (let i = 0; i < length; i++) if (masked[i] === clear[i]) equal++;
    expect(equal).toBeLessThan(3);
  });

  it('share ciphertexts are nacl.box-compatible and the coordinator cannot open them', () => {
    const a = generateX25519KeyPair();
    const b = generateX25519KeyPair();
    const payload = { selfMaskShare: new Uint8Array(33).fill(1), maskKeyShare: new Uint8Array(33).fill(2) };
    const share = encryptShare(boxSharedKey(a.privateKey, b.publicKey), CTX, 'A', 'B', payload);
    expect(nacl.box.open(share.ciphertext, share.nonce, a.publicKey, b.privateKey)).not.toBeNull();
    expect(Buffer.from(boxSharedKey(a.privateKey, b.publicKey))).toEqual(Buffer.from(nacl.box.before(b.publicKey, a.privateKey)));
    const eve = generateX25519KeyPair();
    expect(nacl.box.open(share.ciphertext, share.nonce, a.publicKey, eve.privateKey)).toBeNull();
    expect(decryptShare(boxSharedKey(b.privateKey, a.publicKey), CTX, 'A', 'B', share)).toEqual(payload);
  });

  it('the mask PRG is deterministic per seed and different across seeds', () => {
    const seed = new Uint8Array(32).fill(9);
    expect(Array.from(expandMask(seed, 16))).toEqual(Array.from(expandMask(seed, 16)));
    const other = new Uint8Array(32).fill(9);
    other[0] = 8;
    expect(Array.from(expandMask(other, 16))).not.toEqual(Array.from(expandMask(seed, 16)));
    expect(() => expandMask(new Uint8Array(4), 16)).toThrow(/32 bytes/);
  });
});

describe('secure aggregation: bad input and attacks', () => {
  function advertised(f: Federation): SignedKeys[] {
    for (const id of f.ids) f.server.receiveKeys(f.clients.get(id)!.advertise());
    return f.server.keyList();
  }

  it('rejects a tampered share at the receiving client', () => {
    const f = federation(4, 3, 10);
    const keys = advertised(f);
    for (const id of f.ids) f.server.receiveShares(id, f.clients.get(id)!.shareKeys(keys, f.server.neighboursOf(id)));
    const mine = f.server.sharesFor('inst-01').map((s) => ({ ...s, ciphertext: new Uint8Array(s.ciphertext) }));
    mine[1].ciphertext[20] ^= 1;
    expect(() => f.clients.get('inst-01')!.maskedInput(mine, randomVector(10))).toThrow(/failed authentication/);
  });

  it('rejects a share relabelled for another receiver, and a share bound to another round', () => {
    const f = federation(4, 3, 10);
    const keys = advertised(f);
    for (const id of f.ids) f.server.receiveShares(id, f.clients.get(id)!.shareKeys(keys, f.server.neighboursOf(id)));
    const forTwo = f.server.sharesFor('inst-02').find((s) => s.fromInstitution === 'inst-03')!;
    const mine = f.server.sharesFor('inst-01').filter((s) => s.fromInstitution !== 'inst-03');
    const moved: EncryptedShare = { ...forTwo, toInstitution: 'inst-01' };
    expect(() => f.clients.get('inst-01')!.maskedInput([...mine, moved], randomVector(10))).toThrow(/inst-03.*failed authentication|failed authentication/);

    // A share genuinely from inst-03 to inst-01, but encrypted for round 2.
    const enc3 = generateX25519KeyPair();
    const enc1 = generateX25519KeyPair();
    const payload = { selfMaskShare: new Uint8Array(33), maskKeyShare: new Uint8Array(33) };
    const old = encryptShare(boxSharedKey(enc3.privateKey, enc1.publicKey), { ...CTX, round: 2 }, 'inst-03', 'inst-01', payload);
    expect(() => decryptShare(boxSharedKey(enc1.privateKey, enc3.publicKey), CTX, 'inst-03', 'inst-01', old)).toThrow(/bound to another run, round, collection or receiver/);
  });

  it('rejects keys with a bad signature, at the coordinator and at clients', () => {
    const f = federation(4, 3, 10);
    const k1 = f.clients.get('inst-01')!.advertise();
    const forged = { ...k1, maskPublicKey: generateX25519KeyPair().publicKey };
    expect(() => f.server.receiveKeys(forged)).toThrow(/bad signature/);
    expect(f.server.excluded.get('inst-01')).toMatch(/bad signature/);
    expect(() => f.server.receiveKeys(k1)).toThrow(/excluded earlier/);

    const g = federation(4, 3, 10);
    const keys = advertised(g);
    const tampered = keys.map((k) => (k.institutionId === 'inst-04' ? { ...k, encryptionPublicKey: generateX25519KeyPair().publicKey } : k));
    expect(() => g.clients.get('inst-01')!.shareKeys(tampered, g.server.neighboursOf('inst-01'))).toThrow(/bad signature on the keys of inst-04/);
  });

  it('rejects keys signed by someone else, from unknown institutions, and duplicate indices', () => {
    const f = federation(4, 3, 10);
    const intruder = generateIdentity();
    const keysOf2 = signKeys(intruder, CTX, { institutionId: 'inst-02', index: 2, encryptionPublicKey: generateX25519KeyPair().publicKey, maskPublicKey: generateX25519KeyPair().publicKey });
    expect(() => f.server.receiveKeys(keysOf2)).toThrow(/bad signature/);
    const unknown = signKeys(intruder, CTX, { institutionId: 'mallory', index: 9, encryptionPublicKey: generateX25519KeyPair().publicKey, maskPublicKey: generateX25519KeyPair().publicKey });
    expect(() => f.server.receiveKeys(unknown)).toThrow(/unknown institution mallory/);
    f.server.receiveKeys(f.clients.get('inst-01')!.advertise());
    const clash = signKeys(f.identities.get('inst-03')!, CTX, {
      institutionId: 'inst-03',
      index: 1,
      encryptionPublicKey: generateX25519KeyPair().publicKey,
      maskPublicKey: generateX25519KeyPair().publicKey,
    });
    expect(() => f.server.receiveKeys(clash)).toThrow(/index 1 is already taken/);
    expect(() => f.server.receiveKeys(f.clients.get('inst-04')!.advertise(), 'inst-01')).toThrow(/claim to be from inst-04|advertised keys twice/);
  });

  it('rejects a replay of keys from another round or collection', () => {
    const round4 = federation(4, 3, 10, { context: { ...CTX, round: 4 } });
    const sameIds = round4.ids;
    // Keys the same institution signed for round 3 are replayed into round 4.
    const round3Keys = signKeys(round4.identities.get(sameIds[0])!, CTX, {
      institutionId: sameIds[0],
      index: 1,
      encryptionPublicKey: generateX25519KeyPair().publicKey,
      maskPublicKey: generateX25519KeyPair().publicKey,
    });
    expect(() => round4.server.receiveKeys(round3Keys)).toThrow(/another run, round or collection/);
    const evaluation = federation(4, 3, 10, { context: { ...CTX, collection: 'evaluation' } });
    const updateKeys = signKeys(evaluation.identities.get('inst-02')!, CTX, {
      institutionId: 'inst-02',
      index: 2,
      encryptionPublicKey: generateX25519KeyPair().publicKey,
      maskPublicKey: generateX25519KeyPair().publicKey,
    });
    expect(() => evaluation.server.receiveKeys(updateKeys)).toThrow(/bad signature/);
  });

  it('rejects an unmask answer replayed from another round, or signed by someone else', () => {
    const f = federation(4, 3, 10);
    const inputs = inputsFor(f, 10);
    for (const id of f.ids) f.server.receiveKeys(f.clients.get(id)!.advertise());
    const keys = f.server.keyList();
    for (const id of f.ids) f.server.receiveShares(id, f.clients.get(id)!.shareKeys(keys, f.server.neighboursOf(id)));
    for (const id of f.ids) f.server.receiveMaskedVector(id, f.clients.get(id)!.maskedInput(f.server.sharesFor(id), inputs.get(id)!));
    const request = f.server.unmaskRequest('inst-01');
    const body = f.clients.get('inst-01')!.unmask(request.survivors, request.dropped);
    const replayed = signUnmask(f.identities.get('inst-01')!, { ...CTX, round: 2 }, 'inst-01', body);
    expect(() => f.server.receiveUnmask('inst-01', replayed)).toThrow(/bad signature on the unmask answer/);
    expect(f.server.excluded.get('inst-01')).toMatch(/bad signature/);
    // inst-02's answer, signed by inst-03's identity key.
    const request2 = f.server.unmaskRequest('inst-02');
    const body2 = f.clients.get('inst-02')!.unmask(request2.survivors, request2.dropped);
    const forged = signUnmask(f.identities.get('inst-03')!, CTX, 'inst-02', body2);
    expect(() => f.server.receiveUnmask('inst-02', forged)).toThrow(/bad signature on the unmask answer/);
  });

  it('a client refuses a request for both shares of one peer, in one request or across requests', () => {
    const f = federation(5, 3, 10);
    const inputs = inputsFor(f, 10);
    for (const id of f.ids) f.server.receiveKeys(f.clients.get(id)!.advertise());
    const keys = f.server.keyList();
    for (const id of f.ids) f.server.receiveShares(id, f.clients.get(id)!.shareKeys(keys, f.server.neighboursOf(id)));
    for (const id of f.ids) f.clients.get(id)!.maskedInput(f.server.sharesFor(id), inputs.get(id)!);
    const c1 = f.clients.get('inst-01')!;
    expect(() => c1.unmask(['inst-01', 'inst-02', 'inst-03', 'inst-04', 'inst-05'], ['inst-02'])).toThrow(/both shares of inst-02/);
    c1.unmask(['inst-01', 'inst-02', 'inst-03', 'inst-04'], ['inst-05']);
    expect(() => c1.unmask(['inst-01', 'inst-02', 'inst-03', 'inst-05'], ['inst-04'])).toThrow(/after revealing its (self-mask|mask-key) share/);
    expect(() => c1.unmask(['inst-01', 'inst-02', 'inst-03', 'inst-04', 'mallory'], ['inst-05'])).toThrow(/mallory, which is not a neighbour/);
    expect(() => c1.unmask(['inst-01', 'inst-02', 'inst-03'], ['inst-05'])).toThrow(/leaves out neighbour inst-04/);
    expect(() => c1.unmask(['inst-02', 'inst-03', 'inst-04'], ['inst-01', 'inst-05'])).toThrow(/not listed as a survivor/);
    const c2 = f.clients.get('inst-02')!;
    expect(() => c2.unmask(['inst-02', 'inst-03'], ['inst-01', 'inst-04', 'inst-05'])).toThrow(/only 2 survivors listed, below the threshold 3/);
  });

  it('a client refuses a neighbour list or threshold that would let the coordinator learn its secrets', () => {
    const f = federation(5, 3, 10);
    for (const id of f.ids) f.server.receiveKeys(f.clients.get(id)!.advertise());
    const keys = f.server.keyList();
    expect(() => f.clients.get('inst-01')!.shareKeys(keys, ['inst-02'])).toThrow(/threshold 3 exceeds the 1 neighbours/);
    expect(() => f.clients.get('inst-02')!.shareKeys(keys, ['inst-01', 'inst-01'])).toThrow(/listed twice/);
    expect(() => f.clients.get('inst-03')!.shareKeys(keys, ['inst-01', 'inst-09'])).toThrow(/inst-09 is not in the key list/);
    // Threshold 2 among 5 holders is not a majority: two groups of 2 could each rebuild a different secret.
    const g = federation(5, 2, 10);
    for (const id of g.ids) g.server.receiveKeys(g.clients.get(id)!.advertise());
    const gKeys = [...g.ids].map((id) => g.clients.get(id)!.advertise());
    expect(() => g.clients.get('inst-01')!.shareKeys(gKeys, ['inst-02', 'inst-03', 'inst-04', 'inst-05'])).toThrow(/not a strict majority/);
    expect(() => g.server.keyList()).toThrow(/aborted: .*not a strict majority/);
  });

  it('rejects a masked vector of the wrong length and treats its sender as dropped', () => {
    const f = federation(6, 4, 100);
    const inputs = inputsFor(f, 100);
    for (const id of f.ids) f.server.receiveKeys(f.clients.get(id)!.advertise());
    const keys = f.server.keyList();
    for (const id of f.ids) f.server.receiveShares(id, f.clients.get(id)!.shareKeys(keys, f.server.neighboursOf(id)));
    for (const id of f.ids) {
      const masked = f.clients.get(id)!.maskedInput(f.server.sharesFor(id), inputs.get(id)!);
      if (id === 'inst-04') expect(() => f.server.receiveMaskedVector(id, masked.subarray(0, 99))).toThrow(/length 99, expected 100/);
      else f.server.receiveMaskedVector(id, masked);
    }
    expect(() => f.server.receiveMaskedVector('inst-04', new Uint32Array(100))).toThrow(/excluded earlier/);
    const survivors = f.ids.filter((id) => id !== 'inst-04');
    for (const id of survivors) {
      const request = f.server.unmaskRequest(id);
      expect(request.dropped).toEqual(['inst-04']);
      f.server.receiveUnmask(id, f.clients.get(id)!.unmask(request.survivors, request.dropped));
    }
    expect(Array.from(f.server.result())).toEqual(
      Array.from(
        plainSum(
          survivors.map((id) => inputs.get(id)!),
          100,
        ),
      ),
    );
  });

  it('rejects malformed share lists and unmask answers', () => {
    const f = federation(5, 3, 10);
    const inputs = inputsFor(f, 10);
    for (const id of f.ids) f.server.receiveKeys(f.clients.get(id)!.advertise());
    const keys = f.server.keyList();
    const s1 = f.clients.get('inst-01')!.shareKeys(keys, f.server.neighboursOf('inst-01'));
    expect(() => f.server.receiveShares('inst-01', s1.slice(1))).toThrow(/sent 3 shares for 4 neighbours/);
    for (const id of f.ids.slice(1)) f.server.receiveShares(id, f.clients.get(id)!.shareKeys(keys, f.server.neighboursOf(id)));
    expect(() => f.server.sharesFor('inst-01')).toThrow(/did not share keys/);
    const active = f.ids.slice(1);
    for (const id of active) f.server.receiveMaskedVector(id, f.clients.get(id)!.maskedInput(f.server.sharesFor(id), inputs.get(id)!));
    const request = f.server.unmaskRequest('inst-02');
    const body = f.clients.get('inst-02')!.unmask(request.survivors, request.dropped);
    const short = signUnmask(f.identities.get('inst-02')!, CTX, 'inst-02', { selfMaskShares: body.selfMaskShares.slice(1), maskKeyShares: body.maskKeyShares });
    expect(() => f.server.receiveUnmask('inst-02', short)).toThrow(/sent 3 self-mask shares, expected 4/);
    for (const id of active.slice(1)) {
      const r = f.server.unmaskRequest(id);
      f.server.receiveUnmask(id, f.clients.get(id)!.unmask(r.survivors, r.dropped));
    }
    // inst-02 was excluded; the three others are still enough (threshold 3).
    expect(Array.from(f.server.result())).toEqual(
      Array.from(
        plainSum(
          active.map((id) => inputs.get(id)!),
          10,
        ),
      ),
    );
  });
});

describe('masking graph sizing', () => {
  it('computes that 20 neighbours at threshold 11 cannot survive 30 % dropouts among 100 clients', () => {
    expect(abortProbability(100, 20, 11, 0.3)).toBeGreaterThan(0.5);
    // With 100 clients and 30 % dropouts a majority threshold needs (almost) every pair: complete graph.
    expect(sizeMaskingGraph(100, 0.3).complete).toBe(true);
    const size = sizeMaskingGraph(1000, 0.3, { maxAbortProbability: 1e-3 });
    expect(size.complete).toBe(false);
    expect(size.neighbours).toBeGreaterThan(20);
    expect(2 * size.threshold).toBeGreaterThan(size.neighbours + 1);
    expect(size.abortProbability).toBeLessThanOrEqual(1e-3);
  });

  it('the sized graph aborts no more often than the bound in simulation', () => {
    const n = 100;
    const delta = 0.3;
    const size = sizeMaskingGraph(n, delta, { maxAbortProbability: 0.05 });
    const members = Array.from({ length: n }, (_, i) => ({
      institutionId: `c${i}`,
      index: i + 1,
      encryptionPublicKey: new Uint8Array(32).fill(i),
      maskPublicKey: new Uint8Array(32).fill(255 - i),
    }));
    const graph = neighbourhoods(members, size.neighbours);
    for (const around of graph.values()) expect(around).toHaveLength(size.neighbours);
    const random = new SeededRandom('graph-sim');
    const trials = 400;
    let aborts = 0;
    for (let trial = 0; trial < trials; trial++) {
      const alive = new Set(members.filter(() => random.next() >= delta).map((m) => m.institutionId));
      let failed = false;
      for (const [id, around] of graph) {
        const holders = (alive.has(id) ? 1 : 0) + around.filter((p) => alive.has(p)).length;
        if (holders < size.threshold) failed = true;
      }
      if (failed) aborts++;
    }
    // Binomial(400, p<=0.05): mean <= 20; 40 is far in the tail.
    expect(aborts).toBeLessThan(40);
  });

  it('refuses dropout rates a majority threshold cannot survive, and federations of two', () => {
    expect(() => sizeMaskingGraph(10, 0.5)).toThrow(/dropoutRate must be in \[0, 0.5\)/);
    expect(() => sizeMaskingGraph(2, 0.1)).toThrow(/at least|>= 3/);
    const small = sizeMaskingGraph(10, 0.05);
    expect(small.complete).toBe(true);
    expect(small.neighbours).toBe(9);
  });
});
