// One institution's side of secure aggregation (Bonawitz et al. 2017, double masking) for one
// (round, collection): message in, message out, no network. The round machine carries the messages.
//
//   advertise()                 -> SignedKeys          fresh X25519 keys for shares and for masks, signed
//   shareKeys(keys, neighbours) -> EncryptedShare[]    verifies the key list, Shamir-shares the self-mask
//                                                      seed and the mask private key to itself + neighbours
//   maskedInput(shares, vector) -> Uint32Array         vector + self mask ± pairwise masks, mod 2^32
//   unmask(survivors, dropped)  -> UnmaskBody          self-mask shares of survivors, key shares of the dropped
//
// The client refuses anything that could leak its input: a key list with a bad signature, an unknown or
// duplicate institution, or keys not bound to this run, round and collection; shares that fail
// authentication; an unmask request that asks for both shares of one peer (in one request or across
// requests), names a non-neighbour, leaves out a neighbour, or lists fewer than the threshold survivors.
import { randomBytes } from 'node:crypto';
import { type IdentityKey } from '@dpfed/privacy/identity';
import { addMask } from '@dpfed/privacy/mask-prg';
import { checkThresholdForNeighbourhood, neighbourhoods } from '@dpfed/privacy/masking-graph';
import {
  boxSharedKey,
  checkContext,
  checkSignedKeysShape,
  decryptShare,
  encryptShare,
  generateX25519KeyPair,
  pairwiseMaskSeed,
  signKeys,
  signUnmask,
  verifyKeys,
  type EncryptedShare,
  type SecAggContext,
  type Share,
  type SharePayload,
  type SignedKeys,
  type UnmaskBody,
  type X25519KeyPair,
} from '@dpfed/privacy/secagg-keys';
import { split } from '@dpfed/privacy/shamir';

export interface SecAggClientOptions {
  identity: IdentityKey;
  institutionId: string;
  /** 1-based Shamir x-coordinate, unique in the round. */
  index: number;
  context: SecAggContext;
  threshold: number;
  /** Registered Ed25519 identity public keys, by institution (must include this institution). */
  identityKeys: ReadonlyMap<string, Uint8Array>;
  /**
   * When set, the client recomputes the masking graph from the key list (privacy/masking-graph.ts) and
   * refuses a neighbour list that differs: 'complete', or the sparse graph's neighbour count.
   */
  expectedGraph?: 'complete' | number;
}

type Phase = 'new' | 'advertised' | 'shared' | 'masked';

export class SecAggClient {
  readonly institutionId: string;
  readonly index: number;
  readonly context: SecAggContext;
  private thresholdValue: number;
  private readonly identity: IdentityKey;
  private readonly identityKeys: ReadonlyMap<string, Uint8Array>;
  private readonly expectedGraph?: 'complete' | number;
  private phase: Phase = 'new';
  private encryptionKeys?: X25519KeyPair;
  private maskKeys?: X25519KeyPair;
  private advertised?: SignedKeys;
  private selfSeed?: Uint8Array;
  private peers = new Map<string, SignedKeys>();
  private neighbours = new Set<string>();
  private ownShares?: SharePayload;
  /** nacl.box keys with each neighbour, computed once in shareKeys. */
  private boxKeys = new Map<string, Uint8Array>();
  /** Shares held for neighbours that sent them (the neighbours this client masked with). */
  private held = new Map<string, SharePayload>();
  /** Which share of each peer has been revealed: never both. */
  private revealed = new Map<string, 'self' | 'key'>();

  constructor(options: SecAggClientOptions) {
    this.context = checkContext({ ...options.context });
    if (typeof options.institutionId !== 'string' || options.institutionId.length === 0) throw new Error('secagg client: institutionId must be a non-empty string');
    if (!Number.isInteger(options.index) || options.index < 1) throw new Error(`secagg client: index must be a positive integer, got ${options.index}`);
    if (!Number.isInteger(options.threshold) || options.threshold < 2) throw new Error(`secagg client: threshold must be an integer >= 2, got ${options.threshold}`);
    if (!options.identityKeys.has(options.institutionId)) throw new Error(`secagg client: identityKeys has no key for this institution (${options.institutionId})`);
    this.institutionId = options.institutionId;
    this.index = options.index;
    this.thresholdValue = options.threshold;
    this.identity = options.identity;
    this.identityKeys = options.identityKeys;
    this.expectedGraph = options.expectedGraph;
  }

  /** The Shamir threshold: as set at construction, or as the key-sharing request re-sized it. */
  get threshold(): number {
    return this.thresholdValue;
  }

  private fail(message: string): never {
    throw new Error(`secagg client ${this.institutionId} (round ${this.context.round}, ${this.context.collection}): ${message}`);
  }

  /** Phase 1: two fresh X25519 key pairs, signed with the identity key. Repeated calls return the same message. */
  advertise(): SignedKeys {
    if (this.advertised) return this.advertised;
    if (this.phase !== 'new') this.fail('advertise after the round moved on');
    this.encryptionKeys = generateX25519KeyPair();
    this.maskKeys = generateX25519KeyPair();
    this.advertised = signKeys(this.identity, this.context, {
      institutionId: this.institutionId,
      index: this.index,
      encryptionPublicKey: this.encryptionKeys.publicKey,
      maskPublicKey: this.maskKeys.publicKey,
    });
    this.phase = 'advertised';
    return this.advertised;
  }

  /**
   * Phase 2: verify the relayed key list; encrypt shares of the self-mask seed and mask key to each
   * neighbour. `threshold` (optional) is the threshold the server sized for the institutions that
   * advertised (fewer than were sampled when some were lost before advertising): it may only be lower
   * than the one this client started with, and it is held to the same rule (a strict majority of this
   * client's share holders, at most its neighbours).
   */
  shareKeys(keys: readonly SignedKeys[], neighbours: readonly string[], threshold = this.thresholdValue): EncryptedShare[] {
    if (this.phase !== 'advertised' || !this.advertised || !this.encryptionKeys || !this.maskKeys) this.fail(this.phase === 'new' ? 'shareKeys before advertise' : 'shareKeys called twice');
    if (!Number.isInteger(threshold) || threshold < 2 || threshold > this.thresholdValue) this.fail(`threshold ${threshold} for the key list must be an integer in [2, ${this.thresholdValue}]`);
    this.thresholdValue = threshold;
    if (!Array.isArray(keys)) this.fail('key list must be an array');
    const byId = new Map<string, SignedKeys>();
    const indices = new Set<number>();
    for (const k of keys) {
      try {
        checkSignedKeysShape(k);
      } catch (error) {
        this.fail(`malformed key list entry: ${(error as Error).message}`);
      }
      const identityKey = this.identityKeys.get(k.institutionId);
      if (!identityKey) this.fail(`key list names an unknown institution ${k.institutionId}`);
      if (byId.has(k.institutionId)) this.fail(`key list names ${k.institutionId} twice`);
      if (indices.has(k.index)) this.fail(`key list uses index ${k.index} twice`);
      if (!verifyKeys(identityKey, this.context, k)) this.fail(`bad signature on the keys of ${k.institutionId} (forged, or signed for another run, round or collection)`);
      byId.set(k.institutionId, k);
      indices.add(k.index);
    }
    const mine = byId.get(this.institutionId);
    if (!mine) this.fail('key list does not contain this institution');
    if (
      mine.index !== this.index ||
      !Buffer.from(mine.encryptionPublicKey).equals(Buffer.from(this.encryptionKeys.publicKey)) ||
      !Buffer.from(mine.maskPublicKey).equals(Buffer.from(this.maskKeys.publicKey))
    ) {
      this.fail('key list carries keys for this institution other than the ones it advertised');
    }
    if (byId.size < this.threshold) this.fail(`only ${byId.size} institutions advertised keys, below the threshold ${this.threshold}`);
    if (!Array.isArray(neighbours)) this.fail('neighbours must be an array');
    const neighbourSet = new Set<string>();
    for (const id of neighbours) {
      if (id === this.institutionId) this.fail('neighbour list contains this institution itself');
      if (!byId.has(id)) this.fail(`neighbour ${id} is not in the key list`);
      if (neighbourSet.has(id)) this.fail(`neighbour ${id} listed twice`);
      neighbourSet.add(id);
    }
    if (this.expectedGraph !== undefined) {
      const graph = neighbourhoods([...byId.values()], this.expectedGraph === 'complete' ? byId.size - 1 : this.expectedGraph);
      const expected = new Set(graph.get(this.institutionId) ?? []);
      if (expected.size !== neighbourSet.size || [...expected].some((id) => !neighbourSet.has(id))) this.fail('neighbour list differs from the masking graph computed from the key list');
    }
    try {
      checkThresholdForNeighbourhood(this.threshold, neighbourSet.size, this.institutionId);
    } catch (error) {
      this.fail((error as Error).message);
    }

    this.peers = byId;
    this.neighbours = neighbourSet;
    this.selfSeed = new Uint8Array(randomBytes(32));
    const holders = [this.institutionId, ...neighbourSet];
    const xs = holders.map((id) => byId.get(id)!.index);
    const seedShares = split(this.selfSeed, this.threshold, xs);
    const keyShares = split(this.maskKeys.privateKey, this.threshold, xs);
    const out: EncryptedShare[] = [];
    holders.forEach((id, i) => {
      const payload = { selfMaskShare: seedShares[i].value, maskKeyShare: keyShares[i].value };
      if (id === this.institutionId) {
        this.ownShares = payload;
        return;
      }
      const boxKey = boxSharedKey(this.encryptionKeys!.keyObject, byId.get(id)!.encryptionPublicKey);
      this.boxKeys.set(id, boxKey);
      out.push(encryptShare(boxKey, this.context, this.institutionId, id, payload));
    });
    this.phase = 'shared';
    return out;
  }

  /** Phase 3: store the shares addressed to this client; return vector + self mask ± pairwise masks mod 2^32. */
  maskedInput(myShares: readonly EncryptedShare[], vector: Uint32Array): Uint32Array {
    if (this.phase !== 'shared' || !this.selfSeed || !this.encryptionKeys || !this.maskKeys) this.fail(this.phase === 'masked' ? 'maskedInput called twice' : 'maskedInput before shareKeys');
    if (!(vector instanceof Uint32Array)) this.fail('the vector to mask must be a Uint32Array (quantised)');
    if (!Array.isArray(myShares)) this.fail('shares must be an array');
    const held = new Map<string, SharePayload>();
    for (const share of myShares) {
      if (share?.toInstitution !== this.institutionId) this.fail(`share addressed to ${share?.toInstitution}, not to this institution`);
      const from = share.fromInstitution;
      if (!this.neighbours.has(from)) this.fail(`share from ${from}, which is not a neighbour`);
      if (held.has(from)) this.fail(`two shares from ${from}`);
      try {
        held.set(from, decryptShare(this.boxKeys.get(from)!, this.context, from, this.institutionId, share));
      } catch (error) {
        this.fail((error as Error).message);
      }
    }
    // This client's secrets are held by itself and the neighbours that took part in sharing.
    if (held.size + 1 < this.threshold) this.fail(`only ${held.size} neighbours shared keys: with this client, ${held.size + 1} holders, below the threshold ${this.threshold}`);

    const masked = new Uint32Array(vector);
    addMask(masked, this.selfSeed, 1);
    for (const peer of held.keys()) {
      const other = this.peers.get(peer)!;
      const seed = pairwiseMaskSeed(this.maskKeys.keyObject, other.maskPublicKey, this.context, this.institutionId, peer);
      addMask(masked, seed, other.index > this.index ? 1 : -1);
    }
    this.held = held;
    // The seed and the private keys now live only as shares.
    this.selfSeed.fill(0);
    this.maskKeys.privateKey.fill(0);
    this.encryptionKeys.privateKey.fill(0);
    this.selfSeed = undefined;
    this.maskKeys = undefined;
    this.encryptionKeys = undefined;
    for (const key of this.boxKeys.values()) key.fill(0);
    this.boxKeys.clear();
    this.phase = 'masked';
    return masked;
  }

  /**
   * Phase 4: for each listed survivor (this client included) its self-mask share, for each listed
   * dropped neighbour its mask-key share. `survivors` and `dropped` may be the coordinator's lists for
   * this client's neighbourhood (SecAggServer.unmaskRequest(institution)); with the complete graph, the
   * global lists.
   */
  unmask(survivors: readonly string[], dropped: readonly string[]): UnmaskBody {
    if (this.phase !== 'masked' || !this.ownShares) this.fail('unmask before maskedInput');
    if (!Array.isArray(survivors) || !Array.isArray(dropped)) this.fail('survivors and dropped must be arrays');
    const survivorSet = new Set<string>();
    for (const id of survivors) {
      if (survivorSet.has(id)) this.fail(`survivor ${id} listed twice`);
      survivorSet.add(id);
    }
    const droppedSet = new Set<string>();
    for (const id of dropped) {
      if (droppedSet.has(id)) this.fail(`dropped institution ${id} listed twice`);
      if (survivorSet.has(id)) this.fail(`asked for both shares of ${id} (listed as survivor and as dropped)`);
      droppedSet.add(id);
    }
    if (!survivorSet.has(this.institutionId)) this.fail('this institution is not listed as a survivor, yet asked to unmask');
    for (const id of [...survivorSet, ...droppedSet]) {
      if (id !== this.institutionId && !this.neighbours.has(id)) this.fail(`asked about ${id}, which is not a neighbour`);
      if (id !== this.institutionId && !this.held.has(id)) this.fail(`asked about ${id}, which did not share keys with this institution`);
    }
    for (const id of this.held.keys()) {
      if (!survivorSet.has(id) && !droppedSet.has(id)) this.fail(`request leaves out neighbour ${id} (neither survivor nor dropped)`);
    }
    if (survivorSet.size < this.threshold) this.fail(`only ${survivorSet.size} survivors listed, below the threshold ${this.threshold}`);
    for (const id of survivorSet) {
      if (this.revealed.get(id) === 'key') this.fail(`asked for the self-mask share of ${id} after revealing its mask-key share`);
    }
    for (const id of droppedSet) {
      if (this.revealed.get(id) === 'self') this.fail(`asked for the mask-key share of ${id} after revealing its self-mask share`);
    }

    const selfMaskShares: Share[] = [];
    const maskKeyShares: Share[] = [];
    for (const id of [...survivorSet].sort()) {
      const payload = id === this.institutionId ? this.ownShares : this.held.get(id)!;
      selfMaskShares.push({ aboutInstitution: id, value: payload.selfMaskShare });
      this.revealed.set(id, 'self');
    }
    for (const id of [...droppedSet].sort()) {
      maskKeyShares.push({ aboutInstitution: id, value: this.held.get(id)!.maskKeyShare });
      this.revealed.set(id, 'key');
    }
    return signUnmask(this.identity, this.context, this.institutionId, { selfMaskShares, maskKeyShares });
  }
}
