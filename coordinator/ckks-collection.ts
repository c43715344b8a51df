// One round's update under CKKS (`--aggregation ckks`): institutions encrypt under the federation public
// key, the coordinator adds ciphertexts it cannot read, and the key holder (an institution) decrypts only
// the sum, once per round, and releases it rounded. node-seal has no threshold decryption: the key holder
// could read any single ciphertext it were given, so the coordinator hands it the sum only, and the key
// holder refuses a second decryption in the same round.
import { verifySignature } from '@dpfed/privacy/identity';
import { ckksKeyBinding } from '@dpfed/privacy/ckks-key-binding';
import { ckksWeightedSum } from '@dpfed/privacy/ckks-update-encoding';
import { CkksAggregator, ckksCiphertextCount } from '@dpfed/privacy/ckks-plugin';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import { TENSOR_NAMES } from '@dpfed/proto/shared-names';
import type { DTypeName, PrivacyEventMsg, ResultHeaderMsg, SecAggMessageMsg, TaskKind, TaskMsg } from '@dpfed/proto/wire';
import type { Institution } from './institution-registry.ts';
import { PhaseCollector } from './phase-collector.ts';
import type { ResultSink } from './round-types.ts';
import { failedPrecondition, invalidArgument } from './rpc-error.ts';
import type { TaskBoard } from './task-board.ts';

export interface CkksKey {
  holder: string;
  publicKey: Uint8Array;
}

export interface CkksCollectionOptions {
  runId: string;
  round: number;
  participants: Institution[];
  keyHolder: Institution;
  /** The run's key, when the holder already published one in this coordinator process. */
  key: CkksKey | null;
  dimension: number;
  weightCap: number;
  minReports: number;
  board: TaskBoard;
  makeTask: (kind: TaskKind) => TaskMsg;
  roundDeadlineMs: number;
  phaseDeadlineMs: number;
  checkHeader: (institution: Institution, header: ResultHeaderMsg) => void;
}

export type CkksOutcome =
  | {
      ok: true;
      key: CkksKey;
      weightedDeltaSum: Float32Array;
      totalWeight: number;
      reported: string[];
      outcomes: Map<string, { status: 'reported' | 'rejected' | 'declined' | 'dropped'; detail: string }>;
      events: Map<string, PrivacyEventMsg>;
    }
  | { ok: false; key: CkksKey | null; reason: string; revealed?: { reported: number } };

type Step = 'keygen' | 'encrypted' | 'decrypt' | 'done';

export class CkksCollection {
  private step: Step = 'keygen';
  private key: CkksKey | null;
  private aggregator: CkksAggregator | null = null;
  private collector: PhaseCollector<true> | null = null;
  private decrypted: Float64Array | null = null;
  private summed: Uint8Array[] | null = null;
  private readonly events = new Map<string, PrivacyEventMsg>();
  private stopped = false;

  constructor(private readonly o: CkksCollectionOptions) {
    this.key = o.key;
  }

  get vectorLength(): number {
    return this.o.dimension + 1;
  }

  stop(): void {
    this.stopped = true;
    this.collector?.close();
  }

  private post(id: string, kind: TaskKind, summands = 0): void {
    this.o.board.post(id, {
      ...this.o.makeTask(kind),
      ckks: {
        publicKey: this.key?.publicKey ?? new Uint8Array(0),
        vectorLength: this.vectorLength,
        weightCap: this.o.weightCap,
        summands,
        keyHolder: this.o.keyHolder.id,
        offered: this.o.participants.length,
      },
    });
  }

  private async collect(name: string, ids: string[], deadlineMs: number): Promise<string[]> {
    this.collector = new PhaseCollector<true>(name, new Set(ids), deadlineMs);
    await this.collector.wait();
    for (const id of ids) this.o.board.clear(id);
    return [...this.collector.reported().keys()];
  }

  async run(): Promise<CkksOutcome> {
    const holder = this.o.keyHolder.id;
    try {
      if (!this.key) {
        this.post(holder, 'CKKS_KEYGEN');
        await this.collect('CKKS key generation', [holder], this.o.phaseDeadlineMs);
        if (this.stopped) return { ok: false, key: this.key, reason: 'stopped' };
        if (!this.key) return { ok: false, key: null, reason: `the CKKS key holder ${holder} published no public key` };
      }
      this.step = 'encrypted';
      this.aggregator = await CkksAggregator.create(this.vectorLength);
      for (const p of this.o.participants) this.post(p.id, 'TRAIN');
      const reported = await this.collect(
        'encrypted training',
        this.o.participants.map((p) => p.id),
        this.o.roundDeadlineMs,
      );
      const outcomes = new Map([...this.collector!.all()].map(([id, o]) => [id, { status: o.status, detail: o.status === 'reported' ? '' : o.detail }] as const));
      if (this.stopped) return { ok: false, key: this.key, reason: 'stopped' };
      if (reported.length < this.o.minReports) return { ok: false, key: this.key, reason: `only ${reported.length} encrypted updates arrived; --min-clients is ${this.o.minReports}` };
      this.summed = this.aggregator.result();
      this.step = 'decrypt';
      this.post(holder, 'CKKS_DECRYPT', reported.length);
      await this.collect('CKKS decryption of the sum', [holder], this.o.phaseDeadlineMs);
      if (this.stopped) return { ok: false, key: this.key, reason: 'stopped' };
      if (!this.decrypted) return { ok: false, key: this.key, reason: `the CKKS key holder ${holder} did not return the decrypted sum` };
      this.step = 'done';
      const { weightedDeltaSum, totalWeight } = ckksWeightedSum(this.decrypted, this.o.weightCap);
      if (!(totalWeight >= 1)) return { ok: false, key: this.key, reason: `the decrypted total weight ${totalWeight} is not positive`, revealed: { reported: reported.length } };
      return { ok: true, key: this.key, weightedDeltaSum, totalWeight, reported, outcomes, events: new Map([...this.events].filter(([id]) => reported.includes(id))) };
    } catch (error) {
      return { ok: false, key: this.key, reason: (error as Error).message };
    } finally {
      this.aggregator?.dispose();
      this.aggregator = null;
    }
  }

  /** The key holder's signed public key (a PushSecAgg message). */
  receive(institution: Institution, message: SecAggMessageMsg): void {
    if (!message.ckksPublicKey) throw invalidArgument('ckks: expected ckks_public_key in this phase');
    if (this.step !== 'keygen') throw failedPrecondition('ckks: no key is being generated in this round');
    if (institution.id !== this.o.keyHolder.id) throw failedPrecondition(`ckks: "${institution.id}" is not the key holder (${this.o.keyHolder.id})`);
    const { key, signature } = message.ckksPublicKey;
    if (!verifySignature(institution.publicKey, ckksKeyBinding(this.o.runId, institution.id, key), signature)) {
      this.collector?.reject(institution.id, 'rejected', 'bad signature on the CKKS public key');
      throw invalidArgument("ckks_public_key.signature: does not verify with the key holder's identity key");
    }
    this.key = { holder: institution.id, publicKey: new Uint8Array(key) };
    this.o.board.clear(institution.id);
    this.collector?.report(institution.id, true);
  }

  /** The summed ciphertexts, for the key holder's CKKS_DECRYPT task only. */
  summedCiphertexts(institution: Institution): NamedTensor[] {
    if (this.step !== 'decrypt' || !this.summed) throw failedPrecondition('artifact: no CKKS sum is awaiting decryption');
    if (institution.id !== this.o.keyHolder.id) throw failedPrecondition(`artifact: only the key holder (${this.o.keyHolder.id}) may download the CKKS sum`);
    return this.summed.map((c, i) => ({ name: `ckks/${i}`, shape: [c.length], dtype: 'BYTES' as const, data: c }));
  }

  openResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const id = institution.id;
    const collector = this.collector;
    if (header.kind === 'CKKS_DECRYPTED_SUM') {
      if (this.step !== 'decrypt' || !collector) throw failedPrecondition('header.kind: no CKKS sum is awaiting decryption');
      if (id !== this.o.keyHolder.id) throw failedPrecondition(`header.kind: only the key holder (${this.o.keyHolder.id}) returns the decrypted sum`);
      return {
        tensorCount: 1,
        expectTensor: (name: string, shape: readonly number[], dtype: DTypeName) => {
          if (name !== TENSOR_NAMES.ckksSum || dtype !== 'FLOAT64' || shape.length !== 1 || shape[0] !== this.vectorLength) {
            throw invalidArgument(`tensor: expected "ckks/sum" FLOAT64 [${this.vectorLength}], got "${name}" ${dtype} [${shape.join(',')}]`);
          }
        },
        finish: (tensors: NamedTensor[]) => {
          const values = tensors[0].data as Float64Array;
          for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) throw invalidArgument(`tensor.data: NaN or Inf at index ${i} of the decrypted sum`);
          this.decrypted = values;
          this.o.board.clear(id);
          collector.report(id, true);
        },
        fail: (reason: string) => collector.reject(id, 'rejected', reason),
      };
    }
    if (this.step !== 'encrypted' || !collector || !this.aggregator) throw failedPrecondition('envelope.round: this round is not collecting encrypted updates');
    const why = collector.refusal(id);
    if (why) throw failedPrecondition(why);
    if (!header.encrypted) throw invalidArgument('header.encrypted: this run uses CKKS; updates must be encrypted');
    this.o.checkHeader(institution, header);
    const count = ckksCiphertextCount(this.vectorLength);
    if (header.tensorCount !== count) throw invalidArgument(`header.tensor_count: expected ${count} ciphertexts, got ${header.tensorCount}`);
    const aggregator = this.aggregator;
    return {
      tensorCount: count,
      expectTensor: (name: string, shape: readonly number[], dtype: DTypeName, index: number) => {
        if (name !== `ckks/${index}` || dtype !== 'BYTES' || shape.length !== 1) throw invalidArgument(`tensor: expected "ckks/${index}" BYTES, got "${name}" ${dtype}`);
      },
      finish: (tensors: NamedTensor[]) => {
        try {
          aggregator.add(
            tensors.map((t) => t.data as Uint8Array),
            id,
          );
        } catch (error) {
          throw invalidArgument(`tensor.data: ${(error as Error).message}`);
        }
        if (header.privacyEvent) this.events.set(id, header.privacyEvent);
        this.o.board.clear(id);
        collector.report(id, true);
      },
      fail: (reason: string) => {
        this.o.board.clear(id);
        collector.reject(id, 'rejected', reason);
      },
    };
  }
}
