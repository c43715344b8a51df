// Who masks with whom, and who holds whose Shamir shares.
//
// n <= 64: the complete graph (Bonawitz et al. 2017). Larger n: a SecAgg+-style sparse graph (Bell et al.
// 2020): the clients are placed on a ring in an order drawn from public randomness that every party can
// recompute (SHA-256 of the signed key list, so it is fixed only after all keys are advertised), and each
// is joined to the k/2 nearest on each side: a k-regular, symmetric graph (a randomly labelled Harary graph).
//
// Shares: a client Shamir-shares its secrets among itself and its k neighbours (k + 1 holders, as in
// Bonawitz et al., where a client also holds a share of its own secrets), threshold t.
//
// Sizing (sizeMaskingGraph): with independent dropouts at rate δ, a dropped client's secrets can be
// rebuilt when at least t of its k neighbours answer the unmask request: P(fail) = P(Binomial(k, 1-δ) < t)
// (a surviving client is never worse off, since it answers for itself too). The round aborts if any
// client's secrets cannot be rebuilt; we bound that by n · P(fail) (union bound) for the sparse graph,
// and compute it exactly for the complete graph, where it is one event: fewer than t survivors,
// P(Binomial(n, 1-δ) < t). The threshold must also be a strict majority of the k + 1 holders (2t > k+1),
// so a server that tells different holders different stories still cannot collect t self-mask shares
// and t key shares of one client. We pick the smallest k that meets the abort target with the majority
// threshold, then the largest t that still meets it.
import { createHash } from 'node:crypto';
import { SeededRandom } from '@dpfed/proto/seeded-random';

export const COMPLETE_GRAPH_MAX_CLIENTS = 64;

export interface GraphMember {
  institutionId: string;
  index: number;
  encryptionPublicKey: Uint8Array;
  maskPublicKey: Uint8Array;
}

export interface GraphSize {
  complete: boolean;
  /** Neighbours per client (n - 1 for the complete graph). */
  neighbours: number;
  /** Shamir threshold t. */
  threshold: number;
  /** The probability (bound, for sparse graphs) that a round aborts at dropout rate δ. */
  abortProbability: number;
  /** Whether abortProbability <= the requested maximum. */
  meetsTarget: boolean;
}

function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 1; i <= k; i++) s += Math.log(n - k + i) - Math.log(i);
  return s;
}

/** P(Binomial(trials, p) < below). */
export function binomialBelow(trials: number, p: number, below: number): number {
  if (below <= 0) return 0;
  if (below > trials) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  let total = 0;
  for (let i = 0; i < below; i++) total += Math.exp(logChoose(trials, i) + i * Math.log(p) + (trials - i) * Math.log1p(-p));
  return Math.min(1, total);
}

/** Probability that a round aborts with n clients, k neighbours each, threshold t, dropout rate δ. */
export function abortProbability(clients: number, neighbours: number, threshold: number, dropoutRate: number): number {
  if (neighbours >= clients - 1) return binomialBelow(clients, 1 - dropoutRate, threshold);
  return Math.min(1, clients * binomialBelow(neighbours, 1 - dropoutRate, threshold));
}

/** The smallest threshold that is a strict majority of a client and its `neighbours` neighbours. */
export function majorityThreshold(neighbours: number): number {
  return Math.floor((neighbours + 1) / 2) + 1;
}

/** Sizes the neighbourhood and threshold for n clients tolerating independent dropouts at `dropoutRate`. */
export function sizeMaskingGraph(clients: number, dropoutRate: number, options: { maxAbortProbability?: number } = {}): GraphSize {
  const target = options.maxAbortProbability ?? 1e-3;
  if (!Number.isInteger(clients) || clients < 3)
    throw new Error(`masking graph: secure aggregation needs an integer >= 3 clients (with 2, each learns the other's update from the sum), got ${clients}`);
  if (!Number.isFinite(dropoutRate) || dropoutRate < 0 || dropoutRate >= 0.5) {
    throw new Error(`masking graph: dropoutRate must be in [0, 0.5) (a majority threshold cannot survive losing half the clients), got ${dropoutRate}`);
  }
  if (!(target > 0 && target < 1)) throw new Error(`masking graph: maxAbortProbability must be in (0, 1), got ${target}`);
  const best = (k: number) => {
    const tMin = majorityThreshold(k);
    if (abortProbability(clients, k, tMin, dropoutRate) > target) return undefined;
    let t = tMin;
    while (t + 1 <= k && abortProbability(clients, k, t + 1, dropoutRate) <= target) t++;
    return t;
  };
  const complete = (): GraphSize => {
    const k = clients - 1;
    const t = best(k);
    const threshold = t ?? majorityThreshold(k);
    const p = abortProbability(clients, k, threshold, dropoutRate);
    return { complete: true, neighbours: k, threshold, abortProbability: p, meetsTarget: p <= target };
  };
  if (clients <= COMPLETE_GRAPH_MAX_CLIENTS) return complete();
  for (let k = 2; k < clients - 1; k += 2) {
    const t = best(k);
    if (t !== undefined) return { complete: false, neighbours: k, threshold: t, abortProbability: abortProbability(clients, k, t, dropoutRate), meetsTarget: true };
  }
  return complete();
}

/** Public randomness of the round: SHA-256 over the advertised keys in index order. */
export function maskingGraphSeed(members: readonly GraphMember[]): string {
  const hash = createHash('sha256').update('dpfed.v1/secagg/graph');
  for (const m of [...members].sort((a, b) => a.index - b.index)) {
    const id = Buffer.from(m.institutionId, 'utf8');
    const header = Buffer.alloc(8);
    header.writeUInt32BE(id.length, 0);
    header.writeUInt32BE(m.index, 4);
    hash.update(header).update(id).update(m.encryptionPublicKey).update(m.maskPublicKey);
  }
  return hash.digest('hex');
}

/**
 * Each member's neighbours. `neighbours` >= n - 1 (or n <= 64 with neighbours omitted) gives the
 * complete graph; otherwise a k-regular ring graph (k rounded up to even) ordered by the public seed.
 */
export function neighbourhoods(members: readonly GraphMember[], neighbours?: number): Map<string, string[]> {
  const ids = members.map((m) => m.institutionId);
  if (new Set(ids).size !== ids.length) throw new Error('masking graph: duplicate institution in the key list');
  const n = members.length;
  const k = neighbours ?? (n <= COMPLETE_GRAPH_MAX_CLIENTS ? n - 1 : undefined);
  if (k === undefined) throw new Error(`masking graph: ${n} clients need a neighbour count (see sizeMaskingGraph)`);
  if (!Number.isInteger(k) || k < 1) throw new Error(`masking graph: neighbour count must be a positive integer, got ${k}`);
  const result = new Map<string, string[]>();
  if (k >= n - 1) {
    for (const id of ids)
      result.set(
        id,
        ids.filter((other) => other !== id),
      );
    return result;
  }
  const half = Math.ceil(k / 2);
  if (2 * half >= n - 1) {
    for (const id of ids)
      result.set(
        id,
        ids.filter((other) => other !== id),
      );
    return result;
  }
  const ring = [...members].sort((a, b) => a.index - b.index).map((m) => m.institutionId);
  new SeededRandom(maskingGraphSeed(members)).shuffle(ring);
  ring.forEach((id, position) => {
    const around: string[] = [];
    for (let d = 1; d <= half; d++) around.push(ring[(position + d) % n], ring[(position - d + n) % n]);
    result.set(id, around);
  });
  return result;
}

/**
 * Throws unless threshold t suits a client with `neighbourCount` neighbours (k + 1 share holders with
 * itself): t <= k (a dropped client's secrets can be rebuilt at all) and 2t > k + 1 (two disjoint groups
 * of holders cannot both reach t, so no server can collect both the self-mask and the mask-key shares of
 * one client).
 */
export function checkThresholdForNeighbourhood(threshold: number, neighbourCount: number, who = 'a client'): void {
  if (!Number.isInteger(threshold) || threshold < 1) throw new Error(`secagg: threshold must be a positive integer, got ${threshold}`);
  if (threshold > neighbourCount) throw new Error(`secagg: threshold ${threshold} exceeds the ${neighbourCount} neighbours of ${who}: its secrets could not be rebuilt if it dropped`);
  if (2 * threshold <= neighbourCount + 1)
    throw new Error(`secagg: threshold ${threshold} is not a strict majority of the ${neighbourCount + 1} share holders of ${who}: a server could collect both kinds of shares`);
}
