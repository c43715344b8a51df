// The institutions' requests during a run, routed to what answers them: a task poll to the task board,
// a model download to the served models, and results, secure-aggregation messages and the CKKS sum to the
// round's open collection when it takes their route (result-routing.ts). Every request is checked against
// the run, round and model version it claims; a refusal is an RpcError naming the envelope field.
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { DeclineRequestMsg, Envelope, ResultHeaderMsg, SecAggMessageMsg, TaskMsg } from '@dpfed/proto/wire';
import type { CoordinatorStore } from './coordinator-store.ts';
import { checkRound, checkRun } from './envelope-checks.ts';
import type { Institution, InstitutionRegistry } from './institution-registry.ts';
import { notCollecting, resultRoute, secAggRoute, type ResultRoute } from './result-routing.ts';
import type { RoundCollection } from './round-collection.ts';
import type { RoundModels } from './round-models.ts';
import type { RoundTasks } from './round-tasks.ts';
import type { ResultSink } from './round-types.ts';
import type { RunConfig } from './run-config.ts';
import { failedPrecondition, invalidArgument } from './rpc-error.ts';
import type { TaskBoard } from './task-board.ts';
import { CKKS_SUM_ARTIFACT } from '@dpfed/proto/shared-names';

/** What the requests read of the running round. */
export interface RoundState {
  readonly runId: string;
  readonly config: RunConfig;
  readonly registry: InstitutionRegistry;
  readonly board: TaskBoard;
  readonly models: RoundModels;
  readonly tasks: RoundTasks;
  round(): number;
  /** The round loop's phase, as status reports it ('done' once the run is complete). */
  phase(): string;
  /** The round's open collection, if any. */
  collecting(): RoundCollection<unknown> | null;
  readonly store: CoordinatorStore;
  /** Told of every decline (the round's 'declined' event). */
  declined(event: { institution: string; reason: string; detail: string }): void;
}

export class RoundRequests {
  constructor(private readonly s: RoundState) {}

  private task(kind: 'DONE' | 'WAIT', message: string, retryAfterMs = 0): TaskMsg {
    return this.s.tasks.task(kind, this.s.round(), { message, retryAfterMs });
  }

  /** An institution's task: its current one, or the next posted within `waitMs` (at most 60 s), else WAIT or DONE. */
  async pullTask(institution: Institution, waitMs: number, onCancel: (cb: () => void) => void): Promise<TaskMsg> {
    if (this.s.phase() === 'done') return this.task('DONE', 'run complete');
    if (institution.excludedReason) return this.task('DONE', `excluded: ${institution.excludedReason}`);
    this.s.registry.showedLife(institution);
    const wait = Math.min(Math.max(waitMs, 0), 60_000);
    const task = await this.s.board.next(institution.id, wait, onCancel);
    if (task) return { ...task, envelope: { ...task.envelope, institutionId: institution.id } };
    if (this.s.phase() === 'done') return this.task('DONE', 'run complete');
    // A poll that asked not to wait is told when to ask again (a long poll has waited already).
    return this.task('WAIT', `${this.s.phase()} (round ${this.s.round()})`, wait > 0 ? 0 : 1_000);
  }

  /** The id of the model an envelope asks for ('' when it is none of the current ones). */
  modelIdOf(envelope: Envelope): string {
    return envelope.runId === this.s.runId ? this.s.models.idOf(envelope.modelVersion, this.s.round()) : '';
  }

  /** The model a task refers to (the committed global model, or the round's candidate under evaluation), or the CKKS sum for its key holder. */
  modelTensors(envelope: Envelope, institution?: Institution, artifact = ''): NamedTensor[] {
    this.checkRun(envelope);
    if (artifact === CKKS_SUM_ARTIFACT) {
      if (!institution || envelope.round !== this.s.round()) throw failedPrecondition(notCollecting('ckks-sum', this.s.round(), this.s.phase()));
      return this.openFor('ckks-sum').artifact!(artifact, institution);
    }
    if (artifact !== '') throw invalidArgument(`artifact: unknown artifact "${artifact}"`);
    return this.s.models.tensors(envelope.modelVersion, this.s.round());
  }

  checkRun(envelope: Envelope): void {
    checkRun(envelope, this.s.runId);
  }

  checkRound(envelope: Envelope, modelVersion: number): void {
    checkRound(envelope, { runId: this.s.runId, round: this.s.round() }, modelVersion);
  }

  /** The open collection when it takes `route`; otherwise the route's refusal. */
  private openFor(route: ResultRoute): RoundCollection<unknown> {
    const open = this.s.collecting();
    if (!open?.accepts(route)) throw failedPrecondition(notCollecting(route, this.s.round(), this.s.phase()));
    return open;
  }

  /** Opens the receipt of a result stream after checking its header. */
  openResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    this.s.registry.showedLife(institution);
    const route = resultRoute(header, this.s.config.task.aggregation);
    // A plain update answers the global model, a plain evaluation the round's candidate: an envelope for
    // another round or version is refused as such, whatever is open.
    if (route === 'update-result') this.checkRound(header.envelope, this.s.models.version);
    if (route === 'evaluation-result') this.checkRound(header.envelope, this.s.round());
    return this.openFor(route).openResult!(institution, header);
  }

  /** A secure-aggregation message (advertise keys, share keys, unmask) or a CKKS key holder's public key. */
  receiveSecAgg(institution: Institution, message: SecAggMessageMsg): void {
    this.checkRun(message.envelope);
    this.s.registry.showedLife(institution);
    this.openFor(secAggRoute(message)).receiveSecAgg!(institution, message);
  }

  /**
   * An institution declines its task. For its budget, it is excluded from sampling and the refusal is
   * recorded; a decline of the current round's task takes it out of the open collection, and no task is
   * posted to it again in this round (a decliner is not asked again and again).
   */
  decline(institution: Institution, request: DeclineRequestMsg): void {
    this.checkRun(request.envelope);
    const reason = request.reason || 'declined';
    if (reason === 'budget') {
      this.s.registry.exclude(institution.id, `budget: projected ε ${request.projectedEpsilon} > budget ${request.budgetEpsilon}`);
      const detail = `institution declined: ${request.detail || 'privacy budget'}`;
      this.s.store.recordSchedulingRefusal(this.s.runId, request.envelope.round, institution.id, detail, request.projectedEpsilon, request.budgetEpsilon);
    }
    this.s.declined({ institution: institution.id, reason, detail: request.detail });
    // A decline of an earlier round's task changes nothing in this one.
    if (request.envelope.round !== this.s.round()) return;
    this.s.collecting()?.decline(institution.id, `${reason}: ${request.detail}`);
    this.s.board.block(institution.id);
  }
}
