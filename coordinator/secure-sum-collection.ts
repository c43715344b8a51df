// A round collection carried by one SecAgg secure sum (coordinator/secure-collection.ts): the training
// update or the evaluation histograms. It takes the masked results and the secure-aggregation messages
// of its sum; liveness and declines reach the sum's open step.
import type { SecAggMessageMsg, ResultHeaderMsg } from '@dpfed/proto/wire';
import type { Institution } from './institution-registry.ts';
import type { ResultRoute } from './result-routing.ts';
import type { RoundCollection, RoundContext } from './round-collection.ts';
import type { ResultSink } from './round-types.ts';
import { failedPrecondition } from './rpc-error.ts';
import type { SecureCollection } from './secure-collection.ts';
import { secureSumGraph } from './secure-sum-graph.ts';

export abstract class SecureSumCollection<T> implements RoundCollection<T> {
  /** The sum while it runs (none when the round has too few participants for one). */
  protected secure: SecureCollection | null = null;

  constructor(protected readonly ctx: RoundContext) {}

  abstract run(): Promise<T>;

  /** The masking graph and threshold for a sum of n participants, as the run configures them. */
  protected graphFor(n: number): { graph: 'complete' | number; threshold: number } {
    return secureSumGraph(n, { dropoutRate: this.ctx.config.secaggDropoutRate, thresholdFraction: this.ctx.config.secaggThresholdFraction });
  }

  /** Masked results and secure-aggregation messages, while the sum runs. */
  accepts(route: ResultRoute): boolean {
    return this.secure !== null && (route === 'masked-result' || route === 'secagg-message');
  }

  awaiting(id: string): boolean {
    return this.secure?.awaiting().includes(id) ?? false;
  }

  drop(id: string, detail: string): void {
    this.secure?.drop(id, detail);
  }

  decline(id: string, detail: string): void {
    this.secure?.decline(id, detail);
  }

  stop(): void {
    this.secure?.stop();
  }

  openResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    return this.running().openMasked(institution, header);
  }

  receiveSecAgg(institution: Institution, message: SecAggMessageMsg): void {
    const secure = this.running();
    const { round } = this.ctx;
    if (message.envelope.round !== round) throw failedPrecondition(`envelope.round: round ${message.envelope.round} is closed (current round ${round})`);
    if (message.collection !== secure.collection) throw failedPrecondition(`collection: "${message.collection}" is not the open secure sum ("${secure.collection}")`);
    secure.receive(institution, message);
  }

  /** The running sum (the round routes these messages here only while it runs). */
  private running(): SecureCollection {
    if (!this.secure) throw new Error(`round ${this.ctx.round}: a secure-sum message was routed to a collection whose sum is not running`);
    return this.secure;
  }
}
