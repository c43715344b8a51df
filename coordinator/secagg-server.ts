// The coordinator's side of secure aggregation (Bonawitz et al. 2017, double masking) for one
// (round, collection): message in, message out, no network. It relays keys and encrypted shares it
// cannot read, sums masked vectors mod 2^32 as they arrive, and at the end rebuilds, from t shares each,
// the self masks of the survivors and the pairwise masks of the dropped, and removes them.
//
// Sets (Bonawitz's notation): U1 advertised keys, U2 sent shares, U3 sent a masked vector, U4 answered
// the unmask request. Survivors = U3, dropped = U2 \ U3. The server checks at every phase that every
// client's secrets can still be rebuilt (t holders among itself and its neighbours); when not, it aborts
// with the reason and never reveals a partial result. A malformed or unverifiable message throws an
// Error naming the problem, and its sender is excluded from that phase on (treated as dropped).
// The messages' shape checks are in secagg-message-checks.ts, the final unmasking in secagg-unmasking.ts.
import { addVectorMod32 } from '@dpfed/privacy/mask-prg';
import { checkThresholdForNeighbourhood, neighbourhoods } from '@dpfed/privacy/masking-graph';
import { checkContext, checkSignedKeysShape, verifyKeys, verifyUnmask, type EncryptedShare, type SecAggContext, type SignedKeys, type UnmaskBody } from '@dpfed/privacy/secagg-keys';
import { checkEncryptedShares, checkUnmaskShape, checkUnmaskShares } from './secagg-message-checks.ts';
import { unmaskSum } from './secagg-unmasking.ts';

export interface SecAggServerOptions {
  context: SecAggContext;
  threshold: number;
  /** Length of every masked vector (quantised coordinates). */
  vectorLength: number;
  /** Registered Ed25519 identity public keys, by institution. */
  identityKeys: ReadonlyMap<string, Uint8Array>;
  /** 'complete' (default; at most 64 clients), or the neighbour count of the sparse graph. */
  graph?: 'complete' | number;
  /**
   * Optional: the threshold for a complete graph of `advertised` institutions, applied when the advertise
   * phase closes with fewer than were sampled (it is never raised above `threshold`).
   */
  thresholdFor?: (advertised: number) => number;
}

export type SecAggServerPhase = 'advertise' | 'share' | 'masked' | 'unmask' | 'done' | 'aborted';

const PHASE_ORDER: SecAggServerPhase[] = ['advertise', 'share', 'masked', 'unmask', 'done'];

export interface UnmaskRequest {
  survivors: string[];
  dropped: string[];
}

export class SecAggServer {
  readonly context: SecAggContext;
  private thresholdValue: number;
  /** Re-sizes the threshold for the institutions that advertised keys (a complete graph after losses before advertising). */
  private readonly thresholdFor?: (advertised: number) => number;
  readonly vectorLength: number;
  private readonly identityKeys: ReadonlyMap<string, Uint8Array>;
  private readonly graph: 'complete' | number;
  private phaseValue: SecAggServerPhase = 'advertise';
  private abortReasonValue?: string;
  private readonly keys = new Map<string, SignedKeys>();
  private readonly indices = new Set<number>();
  private neighbourMap = new Map<string, string[]>();
  private readonly shares = new Map<string, EncryptedShare[]>();
  private readonly inbox = new Map<string, EncryptedShare[]>();
  private readonly maskedFrom = new Set<string>();
  private sum: Uint32Array;
  private readonly unmasks = new Map<string, UnmaskBody>();
  private readonly excludedValue = new Map<string, string>();
  private survivorList: string[] = [];
  private droppedList: string[] = [];
  private resultValue?: Uint32Array;

  constructor(options: SecAggServerOptions) {
    this.context = checkContext({ ...options.context });
    if (!Number.isInteger(options.threshold) || options.threshold < 2) throw new Error(`secagg server: threshold must be an integer >= 2, got ${options.threshold}`);
    if (!Number.isInteger(options.vectorLength) || options.vectorLength < 1) throw new Error(`secagg server: vectorLength must be a positive integer, got ${options.vectorLength}`);
    const graph = options.graph ?? 'complete';
    if (graph !== 'complete' && (!Number.isInteger(graph) || graph < 2)) throw new Error(`secagg server: graph must be 'complete' or a neighbour count >= 2, got ${graph}`);
    this.thresholdValue = options.threshold;
    this.thresholdFor = options.thresholdFor;
    this.vectorLength = options.vectorLength;
    this.identityKeys = options.identityKeys;
    this.graph = graph;
    this.sum = new Uint32Array(options.vectorLength);
  }

  /** The Shamir threshold: as configured until the advertise phase closes, then as sized for the advertisers. */
  get threshold(): number {
    return this.thresholdValue;
  }

  get phase(): SecAggServerPhase {
    return this.phaseValue;
  }

  /** Why the round aborted, when it did. */
  get abortReason(): string | undefined {
    return this.abortReasonValue;
  }

  /** Institutions excluded for a bad message, with the reason. */
  get excluded(): ReadonlyMap<string, string> {
    return this.excludedValue;
  }

  /** Survivors (their masked vectors are in the sum); fixed once the unmask request is issued. */
  get survivors(): readonly string[] {
    return this.survivorList;
  }

  /** Shared keys but sent no (valid) masked vector; fixed once the unmask request is issued. */
  get dropped(): readonly string[] {
    return this.droppedList;
  }

  private label(): string {
    return `secagg (round ${this.context.round}, ${this.context.collection})`;
  }

  /** Aborts the round (e.g. on a timeout): no result will ever be released. Later calls throw. */
  abort(reason: string): void {
    if (this.phaseValue === 'aborted' || this.resultValue) return;
    this.phaseValue = 'aborted';
    this.abortReasonValue = reason;
    this.sum.fill(0);
  }

  /** Aborts (if not already) and throws the abort reason. */
  private fail(reason: string): never {
    this.abort(reason);
    throw new Error(`${this.label()} aborted: ${this.abortReasonValue ?? reason}`);
  }

  /** Refuses a message, excluding its sender when it is a participant. */
  private reject(from: string | undefined, problem: string): never {
    if (from !== undefined && this.identityKeys.has(from) && !this.excludedValue.has(from)) this.excludedValue.set(from, problem);
    throw new Error(`${this.label()}: ${from === undefined ? '' : `from ${from}: `}${problem}`);
  }

  private checkSender(from: string): void {
    if (this.phaseValue === 'aborted') this.fail(this.abortReasonValue ?? 'aborted');
    if (typeof from !== 'string' || !this.identityKeys.has(from)) throw new Error(`${this.label()}: message from unknown institution ${String(from)}`);
    const why = this.excludedValue.get(from);
    if (why !== undefined) throw new Error(`${this.label()}: ${from} was excluded earlier (${why})`);
  }

  /** Moves forward to `target`, closing each phase passed on the way. */
  private advanceTo(target: SecAggServerPhase): void {
    if (this.phaseValue === 'aborted') this.fail(this.abortReasonValue ?? 'aborted');
    while (PHASE_ORDER.indexOf(this.phaseValue) < PHASE_ORDER.indexOf(target)) {
      if (this.phaseValue === 'advertise') this.closeAdvertise();
      else if (this.phaseValue === 'share') this.closeShare();
      else if (this.phaseValue === 'masked') this.closeMasked();
      else if (this.phaseValue === 'unmask') this.closeUnmask();
    }
  }

  private inPhase(phase: SecAggServerPhase, what: string): void {
    if (this.phaseValue === 'aborted') this.fail(this.abortReasonValue ?? 'aborted');
    if (PHASE_ORDER.indexOf(this.phaseValue) > PHASE_ORDER.indexOf(phase)) throw new Error(`${this.label()}: ${what} arrived after the ${phase} phase closed`);
    this.advanceTo(phase);
  }

  private holdersOf(id: string, within: ReadonlySet<string>): number {
    let n = within.has(id) ? 1 : 0;
    for (const peer of this.neighbourMap.get(id) ?? []) if (within.has(peer)) n++;
    return n;
  }

  private closeAdvertise(): void {
    // Bonawitz et al.: round 0 collects the advertised keys and only those institutions go on. Institutions
    // lost before advertising are not in the masking set; with a complete graph the threshold is sized for
    // the ones that advertised (never above the configured one), so the losses do not abort the sum.
    if (this.thresholdFor && this.graph === 'complete' && this.keys.size >= 2) {
      const resized = this.thresholdFor(this.keys.size);
      if (Number.isInteger(resized) && resized >= 2) this.thresholdValue = Math.min(this.thresholdValue, resized);
    }
    if (this.keys.size < this.threshold) this.fail(`only ${this.keys.size} institutions advertised keys, below the threshold ${this.threshold}`);
    const members = [...this.keys.values()];
    if (this.graph === 'complete' && members.length > 64) this.fail(`${members.length} clients need a sparse masking graph (complete is limited to 64)`);
    this.neighbourMap = neighbourhoods(members, this.graph === 'complete' ? members.length - 1 : this.graph);
    for (const [id, around] of this.neighbourMap) {
      try {
        checkThresholdForNeighbourhood(this.threshold, around.length, id);
      } catch (error) {
        this.fail((error as Error).message);
      }
    }
    this.phaseValue = 'share';
  }

  private closeShare(): void {
    const u2 = new Set(this.shares.keys());
    if (u2.size < this.threshold) this.fail(`only ${u2.size} institutions shared keys, below the threshold ${this.threshold}`);
    for (const id of u2) {
      const holders = this.holdersOf(id, u2);
      if (holders < this.threshold) this.fail(`the secrets of ${id} have only ${holders} holders among those who shared keys, below the threshold ${this.threshold}`);
    }
    for (const list of this.shares.values()) {
      for (const share of list) {
        if (!u2.has(share.toInstitution)) continue;
        const box = this.inbox.get(share.toInstitution) ?? [];
        box.push(share);
        this.inbox.set(share.toInstitution, box);
      }
    }
    this.phaseValue = 'masked';
  }

  private closeMasked(): void {
    const u3 = new Set(this.maskedFrom);
    if (u3.size < this.threshold) this.fail(`only ${u3.size} masked vectors arrived, below the threshold ${this.threshold}`);
    for (const id of this.shares.keys()) {
      const holders = this.holdersOf(id, u3);
      if (holders < this.threshold) this.fail(`the secrets of ${id} have only ${holders} surviving holders, below the threshold ${this.threshold}`);
    }
    this.survivorList = [...u3].sort();
    this.droppedList = [...this.shares.keys()].filter((id) => !u3.has(id)).sort();
    this.phaseValue = 'unmask';
  }

  private closeUnmask(): void {
    const u4 = new Set(this.unmasks.keys());
    if (u4.size < this.threshold) this.fail(`only ${u4.size} institutions answered the unmask request, below the threshold ${this.threshold}`);
    for (const id of [...this.survivorList, ...this.droppedList]) {
      const holders = this.holdersOf(id, u4);
      if (holders < this.threshold) this.fail(`only ${holders} shares of the secrets of ${id} arrived, below the threshold ${this.threshold}: no partial unmasking`);
    }
    this.phaseValue = 'done';
  }

  /** Phase 1: a client's signed keys. `from` is the authenticated sender (defaults to keys.institutionId). */
  receiveKeys(keys: SignedKeys, from: string = keys?.institutionId): void {
    this.checkSender(from);
    this.inPhase('advertise', `keys of ${from}`);
    try {
      checkSignedKeysShape(keys);
    } catch (error) {
      this.reject(from, (error as Error).message);
    }
    if (keys.institutionId !== from) this.reject(from, `keys claim to be from ${keys.institutionId}`);
    if (this.keys.has(from)) this.reject(from, 'advertised keys twice');
    if (this.indices.has(keys.index)) this.reject(from, `index ${keys.index} is already taken`);
    if (!verifyKeys(this.identityKeys.get(from)!, this.context, keys)) this.reject(from, 'bad signature on advertised keys (forged, or for another run, round or collection)');
    this.keys.set(from, keys);
    this.indices.add(keys.index);
  }

  /** The signed key list, by index; closes the advertise phase. */
  keyList(): SignedKeys[] {
    this.advanceTo('share');
    return [...this.keys.values()].sort((a, b) => a.index - b.index);
  }

  /** A client's neighbours in the masking graph (after the advertise phase). */
  neighboursOf(institution: string): string[] {
    this.advanceTo('share');
    const around = this.neighbourMap.get(institution);
    if (!around) throw new Error(`${this.label()}: ${institution} advertised no keys`);
    return [...around];
  }

  /** Phase 2: the encrypted shares of one client, one per neighbour. */
  receiveShares(from: string, shares: readonly EncryptedShare[]): void {
    this.checkSender(from);
    this.inPhase('share', `shares of ${from}`);
    if (!this.keys.has(from)) this.reject(from, 'sent shares without advertising keys');
    if (this.shares.has(from)) this.reject(from, 'sent shares twice');
    try {
      checkEncryptedShares(from, shares, new Set(this.neighbourMap.get(from)));
    } catch (error) {
      this.reject(from, (error as Error).message);
    }
    this.shares.set(
      from,
      shares.map((s) => ({ ...s })),
    );
  }

  /** The shares addressed to `institution` from everyone who shared keys; closes the share phase. */
  sharesFor(institution: string): EncryptedShare[] {
    this.advanceTo('masked');
    if (!this.shares.has(institution)) throw new Error(`${this.label()}: ${institution} did not share keys, so it takes no part in masking`);
    return [...(this.inbox.get(institution) ?? [])];
  }

  /** Phase 3: a masked vector, added to the running sum mod 2^32. */
  receiveMaskedVector(from: string, vector: Uint32Array): void {
    this.checkSender(from);
    this.inPhase('masked', `masked vector of ${from}`);
    if (!this.shares.has(from)) this.reject(from, 'sent a masked vector without sharing keys');
    if (this.maskedFrom.has(from)) this.reject(from, 'sent a masked vector twice');
    if (!(vector instanceof Uint32Array)) this.reject(from, 'masked vector must be a Uint32Array');
    if (vector.length !== this.vectorLength) this.reject(from, `masked vector has length ${vector.length}, expected ${this.vectorLength}`);
    addVectorMod32(this.sum, vector);
    this.maskedFrom.add(from);
  }

  /**
   * Survivors and dropped; closes the masked phase. With `institution`, the lists restricted to that
   * client and its neighbours (what the client is asked about); without, the global lists.
   */
  unmaskRequest(institution?: string): UnmaskRequest {
    this.advanceTo('unmask');
    if (institution === undefined) return { survivors: [...this.survivorList], dropped: [...this.droppedList] };
    if (!this.maskedFrom.has(institution)) throw new Error(`${this.label()}: ${institution} is not a survivor and is not asked to unmask`);
    const around = new Set([institution, ...(this.neighbourMap.get(institution) ?? [])]);
    return { survivors: this.survivorList.filter((id) => around.has(id)), dropped: this.droppedList.filter((id) => around.has(id)) };
  }

  /** Phase 4: a survivor's signed shares. */
  receiveUnmask(from: string, body: UnmaskBody): void {
    this.checkSender(from);
    this.inPhase('unmask', `unmask answer of ${from}`);
    if (!this.maskedFrom.has(from)) this.reject(from, 'answered the unmask request without being a survivor');
    if (this.unmasks.has(from)) this.reject(from, 'answered the unmask request twice');
    try {
      checkUnmaskShape(body);
    } catch (error) {
      this.reject(from, (error as Error).message);
    }
    if (!verifyUnmask(this.identityKeys.get(from)!, this.context, from, body)) this.reject(from, 'bad signature on the unmask answer (forged, or for another run, round or collection)');
    const around = new Set([from, ...(this.neighbourMap.get(from) ?? [])]);
    const survivors = new Set(this.survivorList);
    const dropped = new Set(this.droppedList);
    try {
      checkUnmaskShares(body.selfMaskShares, new Set([...around].filter((id) => survivors.has(id))), 'self-mask');
      checkUnmaskShares(body.maskKeyShares, new Set([...around].filter((id) => dropped.has(id))), 'mask-key');
    } catch (error) {
      this.reject(from, (error as Error).message);
    }
    this.unmasks.set(from, body);
  }

  /**
   * The exact sum of the survivors' vectors mod 2^32; closes the round. Aborts (throws) when any
   * secret has fewer than t shares, or a rebuilt mask key does not match the key its owner advertised.
   */
  result(): Uint32Array {
    if (this.resultValue) return new Uint32Array(this.resultValue);
    this.advanceTo('done');
    const sum = unmaskSum(this.sum, {
      context: this.context,
      threshold: this.threshold,
      survivors: this.survivorList,
      dropped: this.droppedList,
      keys: this.keys,
      neighbours: this.neighbourMap,
      unmasks: this.unmasks,
      fail: (reason) => this.fail(reason),
    });
    this.resultValue = sum;
    return new Uint32Array(sum);
  }
}
