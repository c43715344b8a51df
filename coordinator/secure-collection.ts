// One secure sum over the wire: drives a SecAggServer through its phases (advertise → share keys →
// masked input → unmask) by posting tasks on the TaskBoard and collecting each phase until all answered
// or its deadline. The coordinator learns only the sum of the survivors' vectors; a malformed message
// excludes its sender (treated as dropped); below the threshold the sum aborts with nothing revealed.
import type { DTypeName, PrivacyEventMsg, ResultHeaderMsg, SecAggMessageMsg, SecAggTaskMsg, TaskKind, TaskMsg } from '@dpfed/proto/wire';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import { TENSOR_NAMES } from '@dpfed/proto/shared-names';
import type { SecAggCollection } from '@dpfed/privacy/secagg-keys';
import type { Institution } from './institution-registry.ts';
import { PhaseCollector } from './phase-collector.ts';
import type { ResultSink } from './round-types.ts';
import { failedPrecondition, invalidArgument } from './rpc-error.ts';
import { exitAtTestPoint } from '@dpfed/proto/test-exit-hook';
import { SecAggServer } from './secagg-server.ts';
import type { TaskBoard } from './task-board.ts';
import type { QuantisationConfig } from '@dpfed/privacy/quantise';

export const MASKED_TENSOR = TENSOR_NAMES.secaggMasked;

export interface SecureCollectionOptions {
  runId: string;
  round: number;
  collection: SecAggCollection;
  participants: Institution[];
  threshold: number;
  /** The threshold for a complete graph of n institutions (re-sizes it for those that advertised keys). */
  thresholdFor?: (n: number) => number;
  /** 'complete' (every pair masks) or the neighbour count of a SecAgg+ sparse graph. */
  graph: 'complete' | number;
  vectorLength: number;
  /** The update's quantisation (collection "update"); absent for the evaluation histograms. */
  quantisation?: QuantisationConfig;
  clientNoiseSigma: number;
  board: TaskBoard;
  /** Builds a task of this round (envelope, spec, config) to which the secagg part is attached. */
  makeTask: (kind: TaskKind) => TaskMsg;
  /** The task that starts the collection (TRAIN or EVALUATE). */
  firstKind: TaskKind;
  firstDeadlineMs: number;
  phaseDeadlineMs: number;
  /** Checks a masked result's header (envelope, privacy event) beyond what this class checks. */
  checkHeader?: (institution: Institution, header: ResultHeaderMsg) => void;
}

export type SecureSumOutcome =
  | { ok: true; sum: Uint32Array; survivors: string[]; dropped: string[]; events: Map<string, PrivacyEventMsg>; excluded: Map<string, string> }
  | { ok: false; reason: string; excluded: Map<string, string> };

type Step = 'advertise' | 'share' | 'masked' | 'unmask';

export class SecureCollection {
  private readonly server: SecAggServer;
  private readonly indexOf = new Map<string, number>();
  private step: Step = 'advertise';
  private collector: PhaseCollector<true>;
  private readonly events = new Map<string, PrivacyEventMsg>();
  private readonly rejected = new Map<string, string>();
  private stopped = false;

  constructor(private readonly o: SecureCollectionOptions) {
    const identityKeys = new Map(o.participants.map((p) => [p.id, p.publicKey] as const));
    this.server = new SecAggServer({
      context: { runId: o.runId, round: o.round, collection: o.collection },
      threshold: o.threshold,
      vectorLength: o.vectorLength,
      identityKeys,
      graph: o.graph,
      thresholdFor: o.thresholdFor,
    });
    [...o.participants].sort((a, b) => a.id.localeCompare(b.id)).forEach((p, i) => this.indexOf.set(p.id, i + 1));
    this.collector = new PhaseCollector<true>(`${o.collection} key advertisement`, new Set(o.participants.map((p) => p.id)), o.firstDeadlineMs);
  }

  get collection(): SecAggCollection {
    return this.o.collection;
  }

  private secaggPart(id: string, extra: Partial<SecAggTaskMsg>): SecAggTaskMsg {
    return {
      collection: this.o.collection,
      // after the advertise phase: the threshold sized for those that advertised
      threshold: this.server.threshold,
      keys: [],
      shares: [],
      survivors: [],
      dropped: [],
      neighbours: [],
      quantisation: this.o.quantisation && { ...this.o.quantisation, weightCap: this.o.quantisation.weightCap ?? 0 }, // 0: no weight word
      index: this.indexOf.get(id) ?? 0,
      identities: this.o.participants.map((p) => ({ institutionId: p.id, identityPublicKey: p.publicKey })),
      clientNoiseSigma: this.o.clientNoiseSigma,
      vectorLength: this.o.vectorLength,
      graphNeighbours: this.o.graph === 'complete' ? 0 : this.o.graph,
      ...extra,
    };
  }

  private post(id: string, kind: TaskKind, extra: Partial<SecAggTaskMsg> = {}): void {
    this.o.board.post(id, { ...this.o.makeTask(kind), secagg: this.secaggPart(id, extra) });
  }

  stop(): void {
    this.stopped = true;
    this.collector.close();
  }

  /** An institution declined its task (budget, noise below its own calibration, already released): it leaves the sum now, not at the deadline. */
  decline(id: string, detail: string): void {
    if (!this.collector.expected.has(id)) return;
    this.rejected.set(id, `declined: ${detail}`);
    this.collector.reject(id, 'declined', detail);
  }

  /** Runs the four phases; resolves with the sum, or with the reason the secure sum aborted. */
  /**
   * An institution known to be gone (its Session stream closed, or it never fetched its task): it leaves
   * the current phase now instead of at the deadline. Lost before advertising keys, it is simply not in
   * the masking set; lost later, it is a dropout the remaining phases recover from (its mask is unmasked).
   */
  drop(id: string, detail: string): void {
    this.collector.reject(id, 'dropped', detail);
  }

  /** Institutions still expected to answer the current phase. */
  awaiting(): string[] {
    return [...this.collector.expected].filter((id) => this.collector.isOpenFor(id));
  }

  async run(): Promise<SecureSumOutcome> {
    const { board } = this.o;
    const excluded = () => new Map([...this.server.excluded, ...this.rejected]);
    const finishPhase = async (): Promise<string[]> => {
      await this.collector.wait();
      const answered = [...this.collector.reported().keys()];
      for (const id of this.collector.expected) board.clear(id);
      return answered;
    };
    try {
      for (const p of this.o.participants) this.post(p.id, this.o.firstKind);
      const advertised = await finishPhase();
      exitAtTestPoint(`${this.o.collection}/advertise`, this.o.round);
      if (this.stopped) return { ok: false, reason: 'stopped', excluded: excluded() };

      this.step = 'share';
      const keys = this.server.keyList();
      this.collector = new PhaseCollector<true>(`${this.o.collection} key sharing`, new Set(advertised), this.o.phaseDeadlineMs);
      for (const id of advertised) this.post(id, 'SECAGG_SHARE_KEYS', { keys, neighbours: this.server.neighboursOf(id) });
      const shared = await finishPhase();
      exitAtTestPoint(`${this.o.collection}/share-keys`, this.o.round);
      if (this.stopped) return { ok: false, reason: 'stopped', excluded: excluded() };

      this.step = 'masked';
      const sharers = shared.filter((id) => !this.server.excluded.has(id));
      const inboxes = new Map(sharers.map((id) => [id, this.server.sharesFor(id)] as const));
      this.collector = new PhaseCollector<true>(`${this.o.collection} masked input`, new Set(sharers), this.o.phaseDeadlineMs);
      for (const id of sharers) this.post(id, 'SECAGG_MASKED_INPUT', { keys, neighbours: this.server.neighboursOf(id), shares: inboxes.get(id)! });
      await finishPhase();
      exitAtTestPoint(`${this.o.collection}/masked-input`, this.o.round);
      if (this.stopped) return { ok: false, reason: 'stopped', excluded: excluded() };

      this.step = 'unmask';
      const { survivors } = this.server.unmaskRequest();
      this.collector = new PhaseCollector<true>(`${this.o.collection} unmasking`, new Set(survivors), this.o.phaseDeadlineMs);
      for (const id of survivors) {
        const request = this.server.unmaskRequest(id);
        this.post(id, 'SECAGG_UNMASK', { survivors: request.survivors, dropped: request.dropped, neighbours: this.server.neighboursOf(id) });
      }
      await finishPhase();
      exitAtTestPoint(`${this.o.collection}/unmask`, this.o.round);
      if (this.stopped) return { ok: false, reason: 'stopped', excluded: excluded() };
      const sum = this.server.result();
      const final = this.server.unmaskRequest();
      const events = new Map([...this.events].filter(([id]) => final.survivors.includes(id)));
      return { ok: true, sum, survivors: final.survivors, dropped: final.dropped, events, excluded: excluded() };
    } catch (error) {
      this.server.abort((error as Error).message);
      for (const p of this.o.participants) board.clear(p.id);
      return { ok: false, reason: this.server.abortReason ?? (error as Error).message, excluded: excluded() };
    }
  }

  private expectStep(step: Step, id: string, what: string): void {
    if (this.step !== step) throw failedPrecondition(`secagg: ${what} from "${id}" arrived in the ${this.step} phase of the ${this.o.collection} secure sum`);
    const why = this.collector.refusal(id);
    if (why) throw failedPrecondition(`secagg: ${why}`);
  }

  /** A PushSecAgg message (advertise, share keys, unmask) from an authenticated institution. */
  receive(institution: Institution, message: SecAggMessageMsg): void {
    const id = institution.id;
    const run = (step: Step, what: string, fn: () => void) => {
      this.expectStep(step, id, what);
      try {
        fn();
      } catch (error) {
        this.collector.reject(id, 'rejected', (error as Error).message);
        this.o.board.clear(id);
        throw invalidArgument(`secagg.${what}: ${(error as Error).message}`);
      }
      this.o.board.clear(id);
      this.collector.report(id, true);
    };
    if (message.advertise) run('advertise', 'advertise', () => this.server.receiveKeys(message.advertise!, id));
    else if (message.shareKeys) run('share', 'share_keys', () => this.server.receiveShares(id, message.shareKeys!.shares));
    else if (message.unmask) run('unmask', 'unmask', () => this.server.receiveUnmask(id, message.unmask!));
    else throw invalidArgument('secagg: message has no body (advertise, share_keys or unmask)');
  }

  /** The masked vector arrives as a result stream with one UINT32 tensor. */
  openMasked(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const id = institution.id;
    this.expectStep('masked', id, 'masked vector');
    if (header.tensorCount !== 1) throw invalidArgument(`header.tensor_count: a masked result carries 1 tensor, got ${header.tensorCount}`);
    this.o.checkHeader?.(institution, header);
    return {
      tensorCount: 1,
      expectTensor: (name: string, shape: readonly number[], dtype: DTypeName) => {
        if (name !== MASKED_TENSOR) throw invalidArgument(`tensor.name: expected "${MASKED_TENSOR}", got "${name}"`);
        if (shape.length !== 1 || shape[0] !== this.o.vectorLength) throw invalidArgument(`tensor.shape: "${name}" must be [${this.o.vectorLength}], got [${shape.join(',')}]`);
        if (dtype !== 'UINT32') throw invalidArgument(`tensor.dtype: "${name}" must be UINT32, got ${dtype}`);
      },
      finish: (tensors: NamedTensor[]) => {
        try {
          this.server.receiveMaskedVector(id, tensors[0].data as Uint32Array);
        } catch (error) {
          throw invalidArgument(`secagg.masked: ${(error as Error).message}`);
        }
        if (header.privacyEvent) this.events.set(id, header.privacyEvent);
        this.o.board.clear(id);
        this.collector.report(id, true);
      },
      fail: (reason: string) => {
        this.rejected.set(id, reason);
        this.o.board.clear(id);
        this.collector.reject(id, 'rejected', reason);
      },
    };
  }
}
