// The last step of a SecAgg round on the server: from the survivors' unmask answers, rebuild (t shares
// each) the self-mask seed of every survivor and the mask key of every dropped institution, then remove the
// survivors' self masks and the pairwise masks survivors share with dropped peers from the masked sum.
// All or nothing: every secret is rebuilt before the sum is touched, and any failure aborts the round.
import { addMask } from '@dpfed/privacy/mask-prg';
import { pairwiseMaskSeed, x25519PrivateKeyObject, x25519PublicKey, type SecAggContext, type SignedKeys, type UnmaskBody } from '@dpfed/privacy/secagg-keys';
import { combineWithCoefficients, lagrangeAtZero } from '@dpfed/privacy/shamir';

export interface UnmaskingInput {
  context: SecAggContext;
  threshold: number;
  survivors: readonly string[];
  dropped: readonly string[];
  /** Every advertiser's signed keys (its Shamir index and mask public key). */
  keys: ReadonlyMap<string, SignedKeys>;
  /** Each institution's neighbours in the masking graph (the holders of its shares). */
  neighbours: ReadonlyMap<string, readonly string[]>;
  /** The survivors' checked unmask answers. */
  unmasks: ReadonlyMap<string, UnmaskBody>;
  /** Aborts the round with the reason (never returns). */
  fail(reason: string): never;
}

/** The unmasked sum mod 2^32 of the survivors' vectors; `maskedSum` is left unchanged. */
export function unmaskSum(maskedSum: Uint32Array, input: UnmaskingInput): Uint32Array {
  const { context, threshold, keys, neighbours, unmasks } = input;
  const lagrange = new Map<string, bigint[]>();
  const rebuild = (about: string, kind: 'self' | 'key'): Uint8Array => {
    const holders: { x: number; value: Uint8Array }[] = [];
    for (const holder of [about, ...(neighbours.get(about) ?? [])]) {
      const body = unmasks.get(holder);
      if (!body) continue;
      const share = (kind === 'self' ? body.selfMaskShares : body.maskKeyShares).find((s) => s.aboutInstitution === about);
      if (share) holders.push({ x: keys.get(holder)!.index, value: share.value });
    }
    if (holders.length < threshold) input.fail(`only ${holders.length} shares of the secrets of ${about}, below the threshold ${threshold}`);
    const used = holders.sort((a, b) => a.x - b.x).slice(0, threshold);
    const key = used.map((s) => s.x).join(',');
    let coefficients = lagrange.get(key);
    if (!coefficients) {
      coefficients = lagrangeAtZero(used.map((s) => s.x));
      lagrange.set(key, coefficients);
    }
    try {
      return combineWithCoefficients(
        coefficients,
        used.map((s) => s.value),
      );
    } catch (error) {
      input.fail(`could not rebuild the secrets of ${about}: ${(error as Error).message}`);
    }
  };
  // Rebuild every secret before touching the sum: all or nothing.
  const selfSeeds = input.survivors.map((id) => rebuild(id, 'self'));
  const droppedKeys = input.dropped.map((id) => {
    const privateKey = x25519PrivateKeyObject(rebuild(id, 'key'));
    if (!Buffer.from(x25519PublicKey(privateKey)).equals(Buffer.from(keys.get(id)!.maskPublicKey))) {
      input.fail(`the rebuilt mask key of ${id} does not match the key it advertised (a share was corrupted)`);
    }
    return privateKey;
  });
  const sum = new Uint32Array(maskedSum);
  for (const seed of selfSeeds) addMask(sum, seed, -1);
  const survivors = new Set(input.survivors);
  input.dropped.forEach((id, i) => {
    const mine = keys.get(id)!;
    for (const peer of neighbours.get(id) ?? []) {
      if (!survivors.has(peer)) continue;
      const other = keys.get(peer)!;
      // The survivor added +mask if the dropped peer's index is above its own, else -mask: undo it.
      const seed = pairwiseMaskSeed(droppedKeys[i], other.maskPublicKey, context, id, peer);
      addMask(sum, seed, mine.index > other.index ? -1 : 1);
    }
  });
  return sum;
}
