// The round loop of one run. Each round is a loop over phases:
//   sample    → the live, admissible institutions the round is offered to (participant-sampling.ts)
//   configure → the round's task configuration and each participant's weight (the release policy)
//   collect   → the training updates, by the collection of the run's aggregation kind: plain weighted
//               sum, SecAgg or CKKS (round-collections.ts)
//   aggregate → the strategy's new global model from the updates or their sum (strategy.ts)
//   evaluate  → the candidate's evaluation collection: none this round, the coordinator's own rows, a
//               secure sum or plain histograms (round-collections.ts), scored by the strategy
//   commit    → the model, the participants' outcomes and the metrics in one transaction (round-commit.ts)
// After the last round, a run with cross-site evaluation runs one more collection: every institution's own score of the final model (cross-site-evaluation.ts).
// Privacy plugs in through the release policy (privacy/release-policy.ts) and RoundPrivacy (round-privacy.ts); the loop itself never looks at a privacy mode or an
// aggregation kind. While a collection is open, the service's calls are routed to it (result-routing.ts); every message is checked against the run, round and model version it claims.
import { EventEmitter } from 'node:events';
import { trainingReleasePolicy, type ReleasePolicy } from '@dpfed/privacy/release-policy';
import { parameterShapes, type ModelSpec } from '@dpfed/proto/model-spec';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { TaskConfig } from '@dpfed/proto/task-config';
import { exitAtTestPoint } from '@dpfed/proto/test-exit-hook';
import type { DeclineRequestMsg, Envelope, ResultHeaderMsg, SecAggMessageMsg, TaskKind, TaskMsg } from '@dpfed/proto/wire';
import type { CandidateEvaluator } from './candidate-evaluator.ts';
import type { CoordinatorStore } from './coordinator-store.ts';
import { CrossSiteEvaluation } from './cross-site-evaluation.ts';
import type { Institution, InstitutionRegistry } from './institution-registry.ts';
import { institutionsNeeded, offerIsRelease, sampleParticipants, waitForLive } from './participant-sampling.ts';
import type { ParameterShape } from './result-checks.ts';
import { failedRoundBackoffMs, InterruptiblePause } from './round-backoff.ts';
import type { RoundCollection, RoundContext, RunResources } from './round-collection.ts';
import { evaluatesRound, evaluationCollection, trainingCollection } from './round-collections.ts';
import { roundCommit, roundSummary, type FinishedRound } from './round-commit.ts';
import { RoundLiveness } from './round-liveness.ts';
import { RoundModels } from './round-models.ts';
import { RoundRequests } from './round-requests.ts';
import { RoundTasks, type TaskOptions } from './round-tasks.ts';
import type { RoundPrivacy } from './round-privacy.ts';
import type { ResultSink, RoundSummary } from './round-types.ts';
import type { RunConfig } from './run-config.ts';
import { describeStorageFault } from './storage-fault.ts';
import { aggregateContribution, type Strategy } from './strategy.ts';
import type { TaskBoard } from './task-board.ts';
import { VectorPool } from './vector-pool.ts';
import { WeightedSumBuffer } from './weighted-sum.ts';

export type { EvalReport, ResultSink, RoundSummary, TrainReport } from './round-types.ts';
export { FAILED_ROUND_BACKOFF, failedRoundBackoffMs } from './round-backoff.ts';

type Phase = 'starting' | 'waiting' | 'training' | 'evaluating' | 'committing' | 'cross-site' | 'done' | 'stopped';

export interface RoundMachineDeps {
  runId: string;
  config: RunConfig;
  store: CoordinatorStore;
  registry: InstitutionRegistry;
  board: TaskBoard;
  strategy: Strategy;
  privacy?: RoundPrivacy;
  initialModel: Float32Array;
  startRound: number;
  /** --evaluation-data: candidates are scored on the coordinator's own rows (no EVALUATE tasks). */
  evaluator?: CandidateEvaluator;
}

export class RoundMachine extends EventEmitter {
  readonly runId: string;
  private phase: Phase = 'starting';
  private round = 0;
  /** The committed global model and the round's candidate. */
  private readonly models: RoundModels;
  /** The current round's open collection (its training, then its evaluation); null between them. */
  private collecting: RoundCollection<unknown> | null = null;
  private readonly resources: RunResources = { updateVectors: new VectorPool(), arrivalBuffer: new WeightedSumBuffer(), ckksKey: null };
  /** Rounds this coordinator process has started sampling for. */
  private roundsRun = 0;
  private stopped = false;
  /** The pause after a failed round (stop() ends it early). */
  private readonly backoff = new InterruptiblePause();
  private readonly spec: ModelSpec;
  private readonly tasks: RoundTasks;
  /** The institutions' requests, routed to the board, the models or the open collection. */
  private readonly requests: RoundRequests;
  private readonly liveness: RoundLiveness;
  /** The privacy layer of training releases: bounds, noise placement, participation, weights, events. */
  private readonly policy: ReleasePolicy;
  /** Set when the current round's number may not be used again (offering the round was already a release). */
  private roundConsumed = false;
  private readonly shapes: ParameterShape[];

  constructor(private readonly deps: RoundMachineDeps) {
    super();
    this.runId = deps.runId;
    this.spec = deps.config.modelSpec;
    this.shapes = parameterShapes(this.spec).map((p) => ({ ...p, size: p.shape.reduce((a, b) => a * b, 1) }));
    this.policy = trainingReleasePolicy(deps.config.task);
    this.models = new RoundModels(this.spec, this.shapes, deps.initialModel, deps.startRound - 1);
    this.tasks = new RoundTasks(deps.runId, deps.config, this.models, deps.strategy);
    this.requests = new RoundRequests({
      runId: deps.runId,
      config: deps.config,
      registry: deps.registry,
      board: deps.board,
      models: this.models,
      tasks: this.tasks,
      round: () => this.round,
      phase: () => this.phase,
      collecting: () => this.collecting,
      store: deps.store,
      declined: (event) => this.emit('declined', event),
    });
    this.liveness = new RoundLiveness({
      registry: deps.registry,
      board: deps.board,
      taskPickupTimeoutMs: deps.config.taskPickupTimeoutMs,
      collecting: () => this.collecting,
      dropped: (id, detail) => this.emit('participant-dropped', { round: this.round, institution: id, reason: detail }),
    });
    this.round = deps.startRound;
  }

  get status(): { phase: Phase; round: number; modelVersion: number } {
    return { phase: this.phase, round: this.round, modelVersion: this.models.version };
  }

  get globalModel(): Float32Array {
    return this.models.global;
  }

  privacySummary(): { id: string; epsilon: number; delta: number; budget: number | null }[] {
    return this.deps.privacy?.summary() ?? [];
  }

  stop(): void {
    this.stopped = true;
    this.phase = 'stopped';
    this.collecting?.stop();
    this.backoff.interrupt();
    this.deps.board.wakeAll();
  }

  /** Runs rounds until the planned number is committed (or stop()). */
  async run(): Promise<void> {
    const { config } = this.deps;
    let failuresInARow = 0;
    while (!this.stopped && this.round <= config.rounds) {
      if (this.deps.privacy?.releasedRound(this.round)) {
        this.round++;
        continue;
      }
      const refusal = this.deps.privacy?.roundRefusal(this.round) ?? null;
      if (refusal) {
        this.deps.store.recordRoundFailure(this.runId, this.round, refusal);
        this.emit('round-failed', { round: this.round, reason: refusal });
        break;
      }
      this.roundConsumed = false;
      const summary = await this.runRoundOrStorageFault();
      if (this.stopped) break;
      if (summary) this.emit('round', summary);
      // A failed round is run again under the same number, except when offering it was already a release
      // (client-level DP: every institution offered the round released and recorded its noisy share).
      if (summary || this.roundConsumed) this.round++;
      // A failed round (its reason already recorded once) is retried after a growing pause, so a
      // federation that cannot complete rounds does not spin through failures.
      if (summary) failuresInARow = 0;
      else {
        failuresInARow++;
        const ms = failedRoundBackoffMs(failuresInARow);
        this.emit('backoff', { round: this.round, failures: failuresInARow, ms });
        await this.backoff.wait(ms);
      }
    }
    if (!this.stopped && config.task.evaluation.crossSite && this.models.version >= config.rounds) await this.crossSiteEvaluation();
    if (!this.stopped) {
      this.phase = 'done';
      this.deps.store.setRunStatus(this.runId, 'done');
      for (const institution of this.deps.registry.all()) this.deps.board.post(institution.id, this.task('DONE', { message: 'run complete' }));
      this.emit('done');
    }
  }

  /**
   * Cross-site evaluation of the final model (--cross-site-evaluation): the loop's round is the final
   * model's while the institutions' answers are routed to the collection; emits 'cross-site' with the
   * recorded figures.
   */
  private async crossSiteEvaluation(): Promise<void> {
    const round = this.models.version;
    this.round = round;
    this.phase = 'cross-site';
    const { runId, config, store, registry, board, privacy } = this.deps;
    const collection = new CrossSiteEvaluation({
      runId,
      round,
      config,
      store,
      registry,
      board,
      privacy,
      task: () => this.task('CROSS_SITE_EVALUATE', { config: this.taskConfig(round), modelVersion: round }),
    });
    const summary = await this.collect(collection);
    if (summary && !this.stopped) this.emit('cross-site', summary);
  }

  /**
   * Runs one round; a storage fault of the database (locked, read-only, disk full: coordinator/storage-fault.ts)
   * fails the round instead of the run. Each of the round's writes is one transaction (the revealed sum's
   * ledger events, the commit), so nothing of it is half-written, and the round runs again after the failed
   * round's pause: the institutions re-send what they released, and the same signed events are no-ops.
   */
  private async runRoundOrStorageFault(): Promise<RoundSummary | null> {
    try {
      return await this.runRound();
    } catch (error) {
      const fault = describeStorageFault(this.deps.store.path, error);
      if (!fault) throw error;
      const round = this.round;
      this.abandonRound();
      const reason = `round ${round}: the coordinator database cannot be written: ${fault}; the round is run again`;
      try {
        this.deps.store.recordRoundFailure(this.runId, round, reason);
      } catch {
        /* the same fault: the failure is reported on the event below */
      }
      this.emit('round-failed', { round, reason });
      return null;
    }
  }

  /** After a round ended by an exception: its collection is closed and no task of it stays posted. */
  private abandonRound(): void {
    this.collecting = null;
    for (const institution of this.deps.registry.all()) this.deps.board.clear(institution.id);
  }

  // ---------------- one round ----------------

  private async runRound(): Promise<RoundSummary | null> {
    const round = this.round;
    this.phase = 'waiting';
    this.deps.board.unblockAll();
    const participants = await this.waitAndSample(round);
    if (this.stopped || !participants) return null;
    exitAtTestPoint('waiting', round);
    const unwatch = this.liveness.watchPickups();
    try {
      return await this.runSampledRound(round, participants);
    } finally {
      unwatch();
    }
  }

  /** Sample: waits until enough live admissible institutions are there, then picks the round's participants. */
  private async waitAndSample(round: number): Promise<Institution[] | null> {
    const { config, registry, board, privacy } = this.deps;
    const needed = institutionsNeeded(config, this.roundsRun);
    const live = await waitForLive({
      needed,
      live: () => {
        const candidates = registry.live((id) => board.isWaiting(id));
        return privacy ? privacy.admissible(round, candidates) : candidates;
      },
      stopped: () => this.stopped,
      onWaiting: (count) => this.emit('waiting', { round, live: count, needed }),
    });
    if (!live) return null;
    this.roundsRun++;
    return sampleParticipants(live, { settings: config, participation: this.policy.participation, runId: this.runId, round });
  }

  private async runSampledRound(round: number, participants: Institution[]): Promise<RoundSummary | null> {
    const { config, store, strategy } = this.deps;
    // ---- configure ----
    if (offerIsRelease(this.policy.participation)) this.roundConsumed = true;
    // A round's time runs from sampling to commit: waiting for institutions to come online is not round work.
    const startedAt = new Date();
    const t0 = performance.now();
    const ctx = this.roundContext(round, participants, this.taskConfig(round));

    // ---- collect the updates ----
    this.phase = 'training';
    exitAtTestPoint('training', round);
    const trained = await this.collect(trainingCollection(ctx, strategy));
    if (this.stopped) return null;
    if ('failure' in trained) {
      store.recordRoundFailure(this.runId, round, trained.failure);
      this.emit('round-failed', { round, reason: trained.failure });
      return null;
    }

    // ---- aggregate ----
    const next = aggregateContribution(strategy, round, this.models.global, trained.contribution);
    this.models.propose(next);
    const tTrained = performance.now();

    // ---- evaluate the candidate (every --evaluate-every rounds, and the last round) ----
    const evaluates = evaluatesRound(config, round);
    this.phase = 'evaluating';
    exitAtTestPoint('evaluating', round);
    const evaluation = evaluationCollection(ctx, { evaluates, candidate: next, evaluators: trained.reported, spec: this.spec, evaluator: this.deps.evaluator });
    const evaluated = await this.collect(evaluation);
    if (evaluated.aborted !== undefined) this.emit('evaluation-aborted', { round, reason: evaluated.aborted });
    if (this.stopped) return null;

    // ---- commit ----
    const tEvaluated = performance.now();
    this.phase = 'committing';
    exitAtTestPoint('committing', round);
    const scores = evaluates ? strategy.evaluate(round, evaluated.totals) : null;
    const finished: FinishedRound = {
      runId: this.runId,
      round,
      startedAt,
      seconds: (performance.now() - t0) / 1000,
      aggregation: config.task.aggregation,
      model: next,
      strategyState: strategy.saveState(),
      trained,
      evaluated,
      scores,
    };
    store.commitRound(roundCommit(finished));
    this.models.commit(round);
    return roundSummary(finished, { train: tTrained - t0, evaluate: tEvaluated - tTrained, commit: performance.now() - tEvaluated });
  }

  /** What the round's collections are told: the round, its participants and weights, its task, the checks. */
  private roundContext(round: number, participants: Institution[], taskConfig: TaskConfig): RoundContext {
    return {
      runId: this.runId,
      round,
      modelVersion: this.models.version,
      global: this.models.global,
      shapes: this.shapes,
      participants,
      weights: new Map(participants.map((p) => [p.id, this.policy.weightOf(p.declaredExamples)])),
      config: this.deps.config,
      policy: this.policy,
      privacy: this.deps.privacy,
      board: this.deps.board,
      institution: (id) => this.deps.registry.get(id),
      resources: this.resources,
      task: (kind, modelVersion) => this.task(kind, { config: taskConfig, modelVersion }),
      checkRun: (envelope) => this.requests.checkRun(envelope),
      checkRound: (envelope, modelVersion) => this.requests.checkRound(envelope, modelVersion),
    };
  }

  /** Runs a collection; while it runs, the calls of the service are routed to it. */
  private async collect<T>(collection: RoundCollection<T>): Promise<T> {
    this.collecting = collection;
    try {
      return await collection.run();
    } finally {
      if (this.collecting === collection) this.collecting = null;
    }
  }

  /** Every Session stream of `id` closed: it is gone, so the round stops waiting for it. */
  institutionGone(id: string): void {
    if (!this.stopped) this.liveness.gone(id);
  }

  // ---------------- tasks ----------------

  /** Configure: the task configuration of round `round`. */
  private taskConfig(round: number): TaskConfig {
    return this.tasks.configFor(round, this.deps.strategy);
  }

  private task(kind: TaskKind, o: TaskOptions = {}): TaskMsg {
    return this.tasks.task(kind, this.round, o);
  }

  // ---------------- calls from the gRPC service (routed by round-requests.ts) ----------------

  pullTask(institution: Institution, waitMs: number, onCancel: (cb: () => void) => void): Promise<TaskMsg> {
    return this.requests.pullTask(institution, waitMs, onCancel);
  }

  modelIdOf(envelope: Envelope): string {
    return this.requests.modelIdOf(envelope);
  }

  modelTensors(envelope: Envelope, institution?: Institution, artifact = ''): NamedTensor[] {
    return this.requests.modelTensors(envelope, institution, artifact);
  }

  openResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    return this.requests.openResult(institution, header);
  }

  receiveSecAgg(institution: Institution, message: SecAggMessageMsg): void {
    this.requests.receiveSecAgg(institution, message);
  }

  /** An institution declines its task (e.g. its own budget would be exceeded): stop sampling it. */
  decline(institution: Institution, request: DeclineRequestMsg): void {
    this.requests.decline(institution, request);
  }
}
