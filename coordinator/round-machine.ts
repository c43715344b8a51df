// The round loop of one run: wait for enough institutions → sample → train → collect until the deadline
// → aggregate → evaluate → commit. It owns the phases; strategies, privacy and secure aggregation plug in
// through small interfaces. Every message is checked against the run, round and model version it claims.
import { randomBytes, randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { addHistograms, aucFromHistogram, emptyHistogram, type ScoreHistogram } from '../privacy/auc-histogram.ts';
import { distributedNoiseAccounting } from '../privacy/distributed-noise.ts';
import { EVALUATION_SENSITIVITY, isEvaluationRound, noisyCellFloor } from '../privacy/evaluation-mechanism.ts';
import {
  addNoisyHistograms,
  decodeEvaluation,
  decodeNoisyHistograms,
  evaluationVectorLength,
  totalsFromNoisyHistograms,
  type EvaluationTotals,
  type NoisyHistograms,
} from '../privacy/evaluation-vector.ts';
import { majorityThreshold, sizeMaskingGraph } from '../privacy/masking-graph.ts';
import { decodeWeightedSum } from '../privacy/quantise.ts';
import { trainingReleasePolicy, type ReleasePolicy } from '../privacy/release-policy.ts';
import { clipToNorm, l2Norm } from '../privacy/update-clipping.ts';
import { planSecureUpdate, weightCapFor } from './secure-update-plan.ts';
import { SecureCollection } from './secure-collection.ts';
import { CkksCollection, type CkksKey } from './ckks-collection.ts';
import { parameterShapes, unflattenParameters, type ModelSpec } from '../proto/model-spec.ts';
import { SeededRandom } from '../proto/seeded-random.ts';
import type { NamedTensor, TensorData } from '../proto/tensor-stream.ts';
import type { TaskConfig } from '../proto/task-config.ts';
import type { DeclineRequestMsg, DTypeName, Envelope, PrivacyEventMsg, ResultHeaderMsg, SecAggMessageMsg, TaskKind, TaskMsg } from '../proto/wire.ts';
import type { CandidateEvaluator } from './candidate-evaluator.ts';
import type { CoordinatorStore, ParticipantRecord } from './coordinator-store.ts';
import type { Institution, InstitutionRegistry } from './institution-registry.ts';
import { PhaseCollector } from './phase-collector.ts';
import type { RoundPrivacy } from './round-privacy.ts';
import type { RunConfig } from './run-config.ts';
import { failedPrecondition, invalidArgument } from './rpc-error.ts';
import type { ClientUpdate, Strategy } from './strategy.ts';
import type { TaskBoard } from './task-board.ts';
import { VectorPool } from './vector-pool.ts';
import { validateUpdate } from './update-validation.ts';
import { ArrivalWeightedSum, WeightedSumBuffer } from './weighted-sum.ts';
import { exitAtTestPoint } from '../proto/test-exit-hook.ts';
import { describeStorageFault } from './storage-fault.ts';
import { CrossSiteEvaluation } from './cross-site-evaluation.ts';
import { expectHistogramTensor, HISTOGRAM_NAMES } from './histogram-tensors.ts';

export interface TrainReport {
  /** The update; null once it is folded into the round's arrival sum (strategies that work on sums). */
  delta: Float32Array | null;
  numExamples: number;
  metrics: Record<string, number>;
  privacyEvent: PrivacyEventMsg | null;
}

export interface EvalReport {
  /** Exact evaluation: the institution's histograms (null under private evaluation). */
  histogram: ScoreHistogram | null;
  numExamples: number;
  metrics: Record<string, number>;
  /** Private evaluation: the institution's noisy histograms and the signed event it recorded for them. */
  noisy?: NoisyHistograms;
  privacyEvent?: PrivacyEventMsg;
}

export interface RoundSummary {
  round: number;
  modelVersion: number;
  participants: number;
  /** False for a round that commits without evaluation (--evaluate-every); its auc, loss and accuracy are NaN. */
  evaluated: boolean;
  auc: number;
  /** Private evaluation: the AUC's expected error from the evaluation noise (absent for exact evaluation). */
  aucStderr?: number;
  loss: number;
  accuracy: number;
  seconds: number;
  institutions: { id: string; auc: number; examples: number }[];
  dropped: string[];
  /** Where the round's time went, in ms: training collection and aggregation, evaluation, the SQLite commit. */
  phaseMs: { train: number; evaluate: number; commit: number };
}

/** A result stream being received: validates tensors as they arrive, then hands the whole result over. */
export interface ResultSink {
  tensorCount: number;
  /** Optional: where each tensor's bytes are received (views into one flat buffer). */
  place?: (index: number, dtype: DTypeName, byteLength: number) => TensorData | undefined;
  expectTensor(name: string, shape: readonly number[], dtype: DTypeName, index: number): void;
  finish(tensors: NamedTensor[]): void;
  fail(reason: string): void;
}

type MetricRow = { institutionId: string; name: string; value: number };

interface TrainStage {
  next: Float32Array;
  reported: string[];
  participants: ParticipantRecord[];
  metrics: MetricRow[];
}

interface EvalStage {
  totals: EvaluationTotals;
  metrics: MetricRow[];
  perInstitution: RoundSummary['institutions'];
  evaluators: Set<string>;
  /** Private evaluation: the evaluators' signed events (recorded in the ledger when their sum was revealed). */
  events: Map<string, PrivacyEventMsg>;
}

type Phase = 'starting' | 'waiting' | 'training' | 'evaluating' | 'committing' | 'cross-site' | 'done' | 'stopped';

/** The pause after a failed round: 1 s, doubling per failure in a row up to 30 s; reset by a committed round. */
export const FAILED_ROUND_BACKOFF = { initialMs: 1_000, maxMs: 30_000 } as const;
/** The default of --task-pickup-timeout for runs stored without it. */
const DEFAULT_TASK_PICKUP_MS = 10_000;
/** How often a running round looks for sampled institutions that have not fetched their task. */
const PICKUP_CHECK_MS = 200;

/**
 * The pause before retrying after `failures` failed rounds in a row: exponential, capped, with "equal
 * jitter" (between half and all of the step), so institutions and coordinators do not retry in lockstep.
 */
export function failedRoundBackoffMs(failures: number): number {
  const step = Math.min(FAILED_ROUND_BACKOFF.maxMs, FAILED_ROUND_BACKOFF.initialMs * 2 ** Math.max(0, Math.min(failures - 1, 30)));
  return Math.round(step / 2 + randomInt(0, Math.floor(step / 2) + 1));
}

export class RoundMachine extends EventEmitter {
  readonly runId: string;
  private phase: Phase = 'starting';
  private round = 0;
  private modelVersion = 0;
  private global: Float32Array;
  private candidate: Float32Array | null = null;
  /** Random ids of the global model and the candidate: clients key their model cache on them (never on the version alone, which a re-run round reuses). */
  private globalId = randomBytes(12).toString('hex');
  private candidateId = '';
  private trainPhase: PhaseCollector<TrainReport> | null = null;
  /** Vectors that receive plain updates, reused from round to round. */
  private readonly updateVectors = new VectorPool();
  /**
   * Plain rounds of strategies that work on sums (FedAvg, FedProx, FedAdam) without client-level DP: the
   * weighted sum is folded as the updates arrive, so the round does not wait for it after the last upload.
   */
  private arrivals: ArrivalWeightedSum | null = null;
  private readonly arrivalBuffer = new WeightedSumBuffer();
  private evalPhase: PhaseCollector<EvalReport> | null = null;
  private secure: SecureCollection | null = null;
  /** Rounds this coordinator process has started sampling for. */
  private roundsRun = 0;
  private ckks: CkksCollection | null = null;
  /** The run's CKKS public key, published by its key holder in this coordinator process. */
  private ckksKey: CkksKey | null = null;
  private stopped = false;
  /** Ends the pause after a failed round early (stop()). */
  private wakeFromBackoff: (() => void) | null = null;
  private readonly spec: ModelSpec;
  private readonly specJson: string;
  /** The privacy layer of training releases: bounds, noise placement, participation, weights, events. */
  private readonly policy: ReleasePolicy;
  /** The weight of each institution offered the current round (the policy's weight of its declared size). */
  private roundWeights = new Map<string, number>();
  /** Plain updates above the bound that the coordinator clipped in the current round. */
  private clippedUpdates = 0;
  /** Set when the current round's number may not be used again (client-level DP: every offer is a release). */
  private roundConsumed = false;
  private readonly shapes: { name: string; shape: number[]; size: number }[];
  /** The run's cross-site evaluation after its last round (coordinator/cross-site-evaluation.ts), when configured. */
  private readonly crossSite: CrossSiteEvaluation | null;

  constructor(
    private readonly deps: {
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
    },
  ) {
    super();
    this.runId = deps.runId;
    this.spec = deps.config.modelSpec;
    this.specJson = JSON.stringify(this.spec);
    this.shapes = parameterShapes(this.spec).map((p) => ({ ...p, size: p.shape.reduce((a, b) => a * b, 1) }));
    this.policy = trainingReleasePolicy(deps.config.task);
    this.global = deps.initialModel;
    this.round = deps.startRound;
    this.modelVersion = deps.startRound - 1;
    this.crossSite = deps.config.task.evaluation.crossSite
      ? new CrossSiteEvaluation({
        runId: deps.runId, config: deps.config, store: deps.store, registry: deps.registry, board: deps.board, privacy: deps.privacy, isStopped: () => this.stopped,
        task: (round) => {
          const task = this.task('CROSS_SITE_EVALUATE', { config: this.taskConfig(round), modelVersion: round });
          return { ...task, envelope: { ...task.envelope, round } };
        },
      })
      : null;
  }

  get status(): { phase: Phase; round: number; modelVersion: number } {
    return { phase: this.phase, round: this.round, modelVersion: this.modelVersion };
  }

  get globalModel(): Float32Array {
    return this.global;
  }

  privacySummary(): { id: string; epsilon: number; delta: number; budget: number | null }[] {
    return this.deps.privacy?.summary() ?? [];
  }

  stop(): void {
    this.stopped = true;
    this.phase = 'stopped';
    this.trainPhase?.close();
    this.evalPhase?.close();
    this.secure?.stop();
    this.ckks?.stop();
    this.crossSite?.stop();
    this.wakeFromBackoff?.();
    this.deps.board.wakeAll();
  }

  /** Waits `ms` (or until stop()). */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeFromBackoff = () => {
        this.wakeFromBackoff = null;
        done();
      };
    });
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
      // A failed round is run again under the same number, except under client-level DP: there every
      // institution offered a round has released (and recorded) its noisy share, so the retry is a new round.
      if (summary || this.roundConsumed) this.round++;
      // A failed round (its reason already recorded once) is retried after a growing pause, so a
      // federation that cannot complete rounds does not spin through failures.
      if (summary) failuresInARow = 0;
      else {
        failuresInARow++;
        const ms = failedRoundBackoffMs(failuresInARow);
        this.emit('backoff', { round: this.round, failures: failuresInARow, ms });
        await this.pause(ms);
      }
    }
    // cross-site evaluation of the final model, once the last round has committed
    if (!this.stopped && this.crossSite && this.modelVersion >= config.rounds) {
      this.phase = 'cross-site';
      const summary = await this.crossSite.run(this.modelVersion);
      if (summary) this.emit('cross-site', summary);
    }
    if (!this.stopped) {
      this.phase = 'done';
      this.deps.store.setRunStatus(this.runId, 'done');
      for (const institution of this.deps.registry.all()) this.deps.board.post(institution.id, this.task('DONE', { message: 'run complete' }));
      this.emit('done');
    }
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

  /** After a round ended by an exception: its phases are closed and no task of it stays posted. */
  private abandonRound(): void {
    this.trainPhase = null;
    this.evalPhase = null;
    this.secure = null;
    for (const institution of this.deps.registry.all()) this.deps.board.clear(institution.id);
  }

  // ---------------- one round ----------------

  private async runRound(): Promise<RoundSummary | null> {
    const { config, store, strategy } = this.deps;
    const round = this.round;
    this.phase = 'waiting';
    this.deps.board.unblockAll();
    const participants = await this.waitAndSample(round);
    if (this.stopped || !participants) return null;
    exitAtTestPoint('waiting', round);
    const watch = setInterval(() => this.dropUnfetched(), PICKUP_CHECK_MS);
    try {
      return await this.runSampledRound(round, participants);
    } finally {
      clearInterval(watch);
    }
  }

  // ---------------- liveness within a round ----------------

  /** Whether `id` still owes an answer to the phase now open (training, evaluation or a secure sum step). */
  private awaiting(id: string): boolean {
    return Boolean(this.trainPhase?.isOpenFor(id) || this.evalPhase?.isOpenFor(id) || this.secure?.awaiting().includes(id) || this.crossSite?.isOpenFor(id));
  }

  /**
   * Drops `id` from the phase now open, at once instead of at the deadline, and marks it unresponsive so
   * it is not sampled again until it shows life. Returns false when it owed no answer.
   */
  private dropFromRound(id: string, detail: string): boolean {
    if (!this.awaiting(id)) return false;
    this.deps.registry.markUnresponsive(id, detail);
    this.deps.board.clear(id);
    this.trainPhase?.reject(id, 'dropped', detail);
    this.evalPhase?.reject(id, 'dropped', detail);
    this.secure?.drop(id, detail);
    this.crossSite?.drop(id, detail);
    this.emit('participant-dropped', { round: this.round, institution: id, reason: detail });
    return true;
  }

  /** The task-pickup rule: a participant that has not fetched a task posted --task-pickup-timeout ago is dropped. */
  private dropUnfetched(): void {
    const pickupMs = this.deps.config.taskPickupTimeoutMs ?? DEFAULT_TASK_PICKUP_MS;
    for (const id of this.deps.board.unfetched(Date.now() - pickupMs)) {
      this.dropFromRound(id, `did not fetch its task within the task-pickup timeout (${pickupMs / 1000} s)`);
    }
  }

  /** Every Session stream of `id` closed: it is gone, so the round stops waiting for it. */
  institutionGone(id: string): void {
    if (this.stopped) return;
    if (!this.dropFromRound(id, 'its Session stream closed')) this.deps.registry.markUnresponsive(id, 'its Session stream closed');
  }

  private async runSampledRound(round: number, participants: Institution[]): Promise<RoundSummary | null> {
    const { config, store, strategy } = this.deps;
    this.roundWeights = new Map(participants.map((p) => [p.id, this.policy.weightOf(p.declaredExamples)]));
    this.clippedUpdates = 0;
    if (this.policy.participation === 'secret-coin') this.roundConsumed = true;
    // A round's time runs from sampling to commit: waiting for institutions to come online is not round work.
    const startedAt = new Date();
    const t0 = performance.now();
    const trainConfig = this.taskConfig(round);
    const aggregation = config.task.aggregation;
    const secure = aggregation !== 'plain'; // secagg and ckks: the coordinator sees no institution's own figures

    // ---- train and aggregate ----
    this.phase = 'training';
    exitAtTestPoint('training', round);
    const trained =
      aggregation === 'secagg' ? await this.trainSecure(round, participants, trainConfig)
      : aggregation === 'ckks' ? await this.trainCkks(round, participants, trainConfig)
      : await this.trainPlain(round, participants, trainConfig);
    if (this.stopped) return null;
    if ('failure' in trained) {
      store.recordRoundFailure(this.runId, round, trained.failure);
      this.emit('round-failed', { round, reason: trained.failure });
      return null;
    }
    this.candidate = trained.next;
    this.candidateId = randomBytes(12).toString('hex');
    const tTrained = performance.now();

    // ---- evaluate the new global model (every --evaluate-every rounds, and the last round) ----
    const evaluates = !config.task.evaluation.none && isEvaluationRound(round, config.rounds, config.task.evaluation.every ?? 1);
    this.phase = 'evaluating';
    exitAtTestPoint('evaluating', round);
    const evaluated = !evaluates ? this.noEvaluation()
      : config.task.evaluation.coordinatorData ? await this.evaluateOnOwnData(trained.next, trained.reported)
      : secure ? await this.evaluateSecure(round, trained.reported, trainConfig)
      : await this.evaluatePlain(round, trained.reported, trainConfig);
    if (this.stopped) return null;

    // ---- commit ----
    const tEvaluated = performance.now();
    this.phase = 'committing';
    exitAtTestPoint('committing', round);
    const metrics = [...trained.metrics, ...evaluated.metrics];
    const none = { auc: Number.NaN, loss: Number.NaN, accuracy: Number.NaN, examples: 0, aucStderr: undefined };
    const { auc: globalAuc, loss: globalLoss, accuracy: globalAccuracy, examples, aucStderr } = evaluates ? strategy.evaluate(round, evaluated.totals) : none;
    const seconds = (performance.now() - t0) / 1000;
    if (evaluates) {
      metrics.push(
        { institutionId: '', name: 'auc', value: globalAuc },
        { institutionId: '', name: 'loss', value: globalLoss },
        { institutionId: '', name: 'accuracy', value: globalAccuracy },
        { institutionId: '', name: 'eval_examples', value: examples },
      );
      if (aucStderr !== undefined) metrics.push({ institutionId: '', name: 'auc_stderr', value: aucStderr });
    }
    store.commitRound(
      {
        runId: this.runId,
        round,
        modelVersion: round,
        startedAt: startedAt.toISOString(),
        seconds,
        aggregation: config.task.aggregation,
        model: trained.next,
        strategyState: strategy.saveState(),
        participants: trained.participants.map((p) =>
          evaluates && p.status === 'reported' && !evaluated.evaluators.has(p.institutionId) ? { ...p, detail: p.detail || 'no evaluation before the deadline' } : p,
        ),
        metrics,
      },
    );
    this.global = trained.next;
    this.globalId = this.candidateId;
    this.candidate = null;
    this.modelVersion = round;
    return {
      round,
      modelVersion: round,
      participants: trained.reported.length,
      evaluated: evaluates,
      auc: globalAuc,
      ...(aucStderr !== undefined ? { aucStderr } : {}),
      loss: globalLoss,
      accuracy: globalAccuracy,
      seconds,
      institutions: evaluated.perInstitution.sort((a, b) => a.id.localeCompare(b.id)),
      dropped: trained.participants.filter((p) => p.status !== 'reported').map((p) => p.institutionId),
      phaseMs: { train: tTrained - t0, evaluate: tEvaluated - tTrained, commit: performance.now() - tEvaluated },
    };
  }

  /**
   * The new global model from a weighted sum of updates (secure or encrypted), divided as the release
   * policy says: by the weight that arrived, or under client-level DP (DP-FedAvg) by the expected number of
   * participants q·offered (the actual number is the institutions' secret).
   */
  private fromSum(round: number, weightedDeltaSum: Float32Array, totalWeight: number, offered: number, count: number): Float32Array {
    return this.deps.strategy.aggregateFitFromSum(round, this.global, { weightedDeltaSum, totalWeight: this.policy.divisor(totalWeight, offered), count });
  }

  /** The events of a sum just revealed to the coordinator, recorded before anything else can fail. */
  private recordRevealed(round: number, events: Map<string, PrivacyEventMsg>, actualNoiseMultiplier?: number): void {
    this.deps.privacy?.recordRevealedSum(round, this.modelVersion, events, actualNoiseMultiplier);
  }

  private tooFew(round: number, reported: number, sampled: number): string | null {
    const { minClients } = this.deps.config;
    return reported < minClients ? `round ${round}: only ${reported} of ${sampled} sampled institutions reported; --min-clients is ${minClients}` : null;
  }

  private async trainPlain(round: number, participants: Institution[], trainConfig: TaskConfig): Promise<TrainStage | { failure: string }> {
    const { config, strategy, board } = this.deps;
    this.trainPhase = new PhaseCollector<TrainReport>('training', new Set(participants.map((p) => p.id)), config.roundTimeoutMs);
    const arrivals = strategy.worksOnSums
      ? new ArrivalWeightedSum(this.arrivalBuffer.cleared(this.global.length), (v) => this.updateVectors.give(v))
      : null;
    this.arrivals = arrivals;
    for (const p of participants) board.post(p.id, this.task('TRAIN', { config: trainConfig, modelVersion: this.modelVersion }));
    await this.trainPhase.wait();
    this.arrivals = null;
    const outcomes = this.trainPhase.all();
    for (const id of outcomes.keys()) board.clear(id);
    const reports = this.trainPhase.reported();
    // Plain aggregation: every update the coordinator received is revealed to it; record its event now.
    const events = new Map<string, PrivacyEventMsg>();
    for (const [id, r] of reports) if (r.privacyEvent) events.set(id, r.privacyEvent);
    this.recordRevealed(round, events);
    const failure = this.tooFew(round, reports.size, participants.length);
    if (failure) {
      arrivals?.discard();
      return { failure };
    }
    let next: Float32Array;
    if (arrivals) {
      // Σ w·Δ in float64, folded in arrival order: bit for bit the strategy's own sum over the same updates.
      const { weightedSum, totalWeight, count } = arrivals.finish();
      next = strategy.aggregateFitFromSum(round, this.global, { weightedDeltaSum: weightedSum, totalWeight, count });
    } else {
      const updates = this.collectedUpdates(reports);
      next = strategy.aggregateFit(round, this.global, updates);
      this.updateVectors.give(...updates.map((u) => u.delta));
    }
    const metrics: MetricRow[] = [{ institutionId: '', name: 'updates_clipped', value: this.clippedUpdates }];
    for (const [id, r] of reports) for (const [k, v] of Object.entries(r.metrics)) metrics.push({ institutionId: id, name: `train_${k}`, value: v });
    return {
      next,
      reported: [...reports.keys()],
      // The weight used is public (a declared size, capped, or 1); no row count is kept.
      participants: [...outcomes].map(([id, o]) =>
        o.status === 'reported'
          ? { institutionId: id, status: 'reported' as const, numExamples: 0, detail: `weight ${this.roundWeights.get(id) ?? 1}` }
          : { institutionId: id, status: o.status, numExamples: 0, detail: o.detail },
      ),
      metrics,
    };
  }

  /** The round's updates, each with the release policy's weight of its declared size, in arrival order. */
  private collectedUpdates(reports: Map<string, TrainReport>): ClientUpdate[] {
    return [...reports].map(([id, r]) => {
      if (!r.delta) throw new Error(`round ${this.round}: the update of ${id} was folded into the arrival sum`);
      return { institutionId: id, weight: this.roundWeights.get(id) ?? 1, delta: r.delta };
    });
  }

  private async evaluatePlain(round: number, evaluators: string[], trainConfig: TaskConfig): Promise<EvalStage> {
    const { config, board } = this.deps;
    this.evalPhase = new PhaseCollector<EvalReport>('evaluation', new Set(evaluators), config.phaseTimeoutMs);
    for (const id of evaluators) board.post(id, this.task('EVALUATE', { config: trainConfig, modelVersion: round }));
    await this.evalPhase.wait();
    for (const id of evaluators) board.clear(id);
    const evals = this.evalPhase.reported();
    if (config.task.evaluation.private) return this.sumPrivateEvaluations(evals);
    const totals: EvaluationTotals = { histogram: emptyHistogram(config.task.evaluation.bins, config.task.evaluation.logitRange), lossSum: 0, correct: 0, n: 0 };
    const metrics: MetricRow[] = [];
    const perInstitution: RoundSummary['institutions'] = [];
    for (const [id, e] of evals) {
      if (!e.histogram) throw new Error(`round ${round}: the exact evaluation of ${id} has no histogram`);
      totals.histogram = addHistograms(totals.histogram, e.histogram);
      totals.lossSum += (e.metrics.loss ?? 0) * e.numExamples;
      totals.correct += (e.metrics.accuracy ?? 0) * e.numExamples;
      totals.n += e.numExamples;
      const auc = aucFromHistogram(e.histogram);
      perInstitution.push({ id, auc, examples: e.numExamples });
      metrics.push({ institutionId: id, name: 'auc', value: auc }, { institutionId: id, name: 'eval_examples', value: e.numExamples });
      for (const [k, v] of Object.entries(e.metrics)) metrics.push({ institutionId: id, name: `eval_${k}`, value: v });
    }
    return { totals, metrics, perInstitution, evaluators: new Set(evals.keys()), events: new Map() };
  }

  /** --evaluation-data: the candidate scored on the coordinator's own rows; the institutions are not asked. */
  private async evaluateOnOwnData(candidate: Float32Array, reported: string[]): Promise<EvalStage> {
    const evaluator = this.deps.evaluator;
    if (!evaluator) throw new Error('this run scores candidates on the coordinator\'s own data, but no --evaluation-data evaluator was given');
    const totals = await evaluator.evaluate(candidate, this.spec, this.deps.config.task.evaluation);
    return { totals, metrics: [], perInstitution: [], evaluators: new Set(reported), events: new Map() };
  }

  /** A round that commits without evaluation (--evaluate-every): no task, no release, no figures. */
  private noEvaluation(): EvalStage {
    const { bins, logitRange } = this.deps.config.task.evaluation;
    return { totals: { histogram: emptyHistogram(bins, logitRange), lossSum: 0, correct: 0, n: 0 }, metrics: [], perInstitution: [], evaluators: new Set(), events: new Map() };
  }

  /**
   * Plain aggregation under private evaluation: each institution's histograms arrive noisy and separately;
   * only their sum is kept (no per-institution figures), with the noise each institution's event records
   * (σ = multiplier · Δ, independent noises add in variance).
   */
  private sumPrivateEvaluations(evals: Map<string, EvalReport>): EvalStage {
    const stage = this.noEvaluation();
    let sum: NoisyHistograms | null = null;
    let variance = 0;
    for (const [id, e] of evals) {
      if (!e.noisy || !e.privacyEvent) throw new Error(`round ${this.round}: the private evaluation of ${id} has no noisy histograms or event`);
      sum = sum ? addNoisyHistograms(sum, e.noisy) : e.noisy;
      variance += (e.privacyEvent.noiseMultiplier * EVALUATION_SENSITIVITY) ** 2;
      stage.events.set(id, e.privacyEvent);
    }
    // Plain aggregation: every noisy histogram the coordinator received is revealed to it; record the events now.
    this.deps.privacy?.recordEvaluationEvents(this.round, stage.events);
    if (sum) stage.totals = totalsFromNoisyHistograms(sum, Math.sqrt(variance));
    stage.evaluators = new Set(evals.keys());
    return stage;
  }

  // ---- secure aggregation: the coordinator sees only sums ----

  /**
   * The masking graph and Shamir threshold of a secure sum of n participants: every pair for n <= 64,
   * a SecAgg+ sparse graph sized from the tolerated dropout rate above; the threshold is at least a strict
   * majority of each participant's share holders (so a coordinator telling holders different stories
   * cannot collect both kinds of share of one institution) and at least --secagg-threshold · n.
   */
  private secureGraph(n: number): { graph: 'complete' | number; threshold: number } {
    const size = sizeMaskingGraph(n, this.deps.config.secaggDropoutRate);
    if (!size.complete) return { graph: size.neighbours, threshold: size.threshold };
    const wanted = Math.ceil(this.deps.config.secaggThresholdFraction * n);
    return { graph: 'complete', threshold: Math.min(n, Math.max(majorityThreshold(n - 1), wanted)) };
  }

  /** What a secure or encrypted update's header must satisfy: this round, this model version, and in record mode a valid signed privacy event. */
  private checkUpdateHeader(institution: Institution, header: ResultHeaderMsg): void {
    this.checkRound(header.envelope, this.modelVersion);
    if (header.kind !== 'TRAIN_RESULT') throw invalidArgument(`header.kind: expected TRAIN_RESULT, got ${header.kind}`);
    if (this.policy.noise === 'local-dp-sgd') this.deps.privacy?.checkResultEvent(institution, this.round, this.modelVersion, header.privacyEvent);
  }

  private async trainSecure(round: number, participants: Institution[], trainConfig: TaskConfig): Promise<TrainStage | { failure: string }> {
    const { config } = this.deps;
    if (participants.length < 3) return { failure: `round ${round}: secure aggregation needs at least 3 participants (with 2, each learns the other's update from the sum); sampled ${participants.length}` };
    const plan = planSecureUpdate(this.policy, participants.map((p) => this.roundWeights.get(p.id) ?? 1));
    const collection = new SecureCollection({
      runId: this.runId, round, collection: 'update', participants, ...this.secureGraph(participants.length), thresholdFor: (n) => this.secureGraph(n).threshold,
      vectorLength: this.global.length + 1, quantisationJson: JSON.stringify(plan.quantisation), clientNoiseSigma: plan.clientNoiseSigma,
      board: this.deps.board, makeTask: (kind) => this.task(kind, { config: trainConfig, modelVersion: this.modelVersion }), firstKind: 'TRAIN',
      firstDeadlineMs: config.roundTimeoutMs, phaseDeadlineMs: config.phaseTimeoutMs,
      checkHeader: (institution, header) => this.checkUpdateHeader(institution, header),
    });
    this.secure = collection;
    const outcome = await collection.run();
    this.secure = null;
    const participantsOut = (survivors: string[]) => participants.map((p) =>
      survivors.includes(p.id)
        ? { institutionId: p.id, status: 'reported' as const, numExamples: 0, detail: 'example count hidden by secure aggregation' }
        : { institutionId: p.id, status: outcome.excluded.has(p.id) ? ('rejected' as const) : ('dropped' as const), numExamples: 0, detail: outcome.excluded.get(p.id) ?? 'dropped out of the secure sum' });
    if (!outcome.ok) return { failure: `round ${round}: secure aggregation aborted: ${outcome.reason}` };
    // The sum is revealed: record it first. Under client-level DP the institutions added the noise; the
    // ledger gets the noise actually present (every survivor, participant or cover, added its share).
    const actualNoiseMultiplier = this.policy.noise === 'distributed-share'
      ? distributedNoiseAccounting({
        l2Clip: this.policy.updateBound, scale: plan.quantisation.scale, dimension: this.global.length,
        perClientSigma: plan.clientNoiseSigma, survivors: outcome.survivors.length,
      }).effectiveNoiseMultiplier
      : undefined;
    this.recordRevealed(round, outcome.events, actualNoiseMultiplier);
    const failure = this.tooFew(round, outcome.survivors.length, participants.length);
    if (failure) return { failure };
    const decoded = decodeWeightedSum(outcome.sum, plan.quantisation, outcome.survivors.length, plan.noiseTail);
    const next = this.fromSum(round, decoded.weightedSum, decoded.totalWeight, participants.length, outcome.survivors.length);
    return {
      next,
      reported: outcome.survivors,
      participants: participantsOut(outcome.survivors),
      metrics: [{ institutionId: '', name: 'secagg_dropped', value: outcome.dropped.length }],
    };
  }

  private async trainCkks(round: number, participants: Institution[], trainConfig: TaskConfig): Promise<TrainStage | { failure: string }> {
    const { config, registry } = this.deps;
    const holderId = this.ckksKey?.holder ?? config.ckksKeyHolder ?? [...participants].sort((a, b) => a.id.localeCompare(b.id))[0]?.id;
    const keyHolder = holderId ? registry.get(holderId) : undefined;
    if (!keyHolder) return { failure: `round ${round}: the CKKS key holder ${holderId ?? '(none)'} is not connected` };
    const collection = new CkksCollection({
      runId: this.runId, round, participants, keyHolder, key: this.ckksKey, dimension: this.global.length,
      weightCap: weightCapFor(participants.map((p) => this.roundWeights.get(p.id) ?? 1)), minReports: config.minClients, board: this.deps.board,
      makeTask: (kind) => this.task(kind, { config: trainConfig, modelVersion: this.modelVersion }),
      roundDeadlineMs: config.roundTimeoutMs, phaseDeadlineMs: config.phaseTimeoutMs,
      checkHeader: (institution, header) => this.checkUpdateHeader(institution, header),
    });
    this.ckks = collection;
    const outcome = await collection.run();
    this.ckks = null;
    this.ckksKey = outcome.key;
    const noisy = this.policy.noise === 'distributed-share';
    if (!outcome.ok) {
      // A sum the key holder decrypted is revealed even when the round then fails.
      if (outcome.revealed && noisy) this.recordRevealed(round, new Map(), this.policy.realNoiseMultiplier(outcome.revealed.reported, participants.length));
      return { failure: `round ${round}: CKKS aggregation failed: ${outcome.reason}` };
    }
    this.recordRevealed(round, outcome.events, noisy ? this.policy.realNoiseMultiplier(outcome.reported.length, participants.length) : undefined);
    const next = this.fromSum(round, outcome.weightedDeltaSum, outcome.totalWeight, participants.length, outcome.reported.length);
    return {
      next,
      reported: outcome.reported,
      participants: participants.map((p) => {
        const o = outcome.outcomes.get(p.id) ?? 'dropped: not sampled';
        return o === 'reported'
          ? { institutionId: p.id, status: 'reported' as const, numExamples: 0, detail: 'example count hidden by CKKS' }
          : { institutionId: p.id, status: o.startsWith('rejected') ? ('rejected' as const) : o.startsWith('declined') ? ('declined' as const) : ('dropped' as const), numExamples: 0, detail: o };
      }),
      metrics: [],
    };
  }

  private async evaluateSecure(round: number, evaluators: string[], trainConfig: TaskConfig): Promise<EvalStage> {
    const { config, registry } = this.deps;
    const { bins, logitRange } = config.task.evaluation;
    const participants = evaluators.map((id) => registry.get(id)).filter((p): p is Institution => Boolean(p));
    const empty = this.noEvaluation();
    if (participants.length < 3) return empty;
    // Private evaluation: each institution adds a share σ/√t of the noise (t = the threshold: a completed
    // sum has at least t survivors) and sends only its two noisy histograms.
    const privateEvaluation = config.task.evaluation.private;
    const graph = this.secureGraph(participants.length);
    const collection = new SecureCollection({
      runId: this.runId, round, collection: 'evaluation', participants, ...graph,
      // Private evaluation: each institution's noise share relies on `threshold` shares in the sum, so the
      // threshold is never lowered for it; otherwise it follows the participants who advertised keys.
      ...(privateEvaluation ? {} : { thresholdFor: (n: number) => this.secureGraph(n).threshold }),
      vectorLength: privateEvaluation ? 2 * bins : evaluationVectorLength(bins), quantisationJson: '',
      clientNoiseSigma: privateEvaluation ? privateEvaluation.noiseSigma / Math.sqrt(graph.threshold) : 0,
      board: this.deps.board, makeTask: (kind) => this.task(kind, { config: trainConfig, modelVersion: round }), firstKind: 'EVALUATE',
      firstDeadlineMs: config.phaseTimeoutMs, phaseDeadlineMs: config.phaseTimeoutMs,
      checkHeader: (institution, header) => {
        this.checkRound(header.envelope, round);
        if (header.kind !== 'EVALUATE_RESULT') throw invalidArgument('header.kind: expected EVALUATE_RESULT in the evaluation secure sum');
        if (privateEvaluation) this.deps.privacy?.checkEvaluationEvent(institution, round, header.privacyEvent);
      },
    });
    this.secure = collection;
    const outcome = await collection.run();
    this.secure = null;
    if (!outcome.ok) {
      this.emit('evaluation-aborted', { round, reason: outcome.reason });
      return { ...empty, metrics: [{ institutionId: '', name: 'evaluation_aborted', value: 1 }] };
    }
    if (privateEvaluation) {
      // Each survivor's event records the multiplier of t shares of its σ_c (≈ σ_c·√t): the sum carries Σ σ_c².
      let variance = 0;
      for (const event of outcome.events.values()) variance += (event.noiseMultiplier * EVALUATION_SENSITIVITY) ** 2 / graph.threshold;
      // The noisy histogram sum is revealed: record its events first, as a training sum's.
      this.deps.privacy?.recordEvaluationEvents(round, outcome.events);
      const totals = totalsFromNoisyHistograms(decodeNoisyHistograms(outcome.sum, bins, logitRange), Math.sqrt(variance));
      return { totals, metrics: [], perInstitution: [], evaluators: new Set(outcome.survivors), events: outcome.events };
    }
    return { totals: decodeEvaluation(outcome.sum, bins, logitRange), metrics: [], perInstitution: [], evaluators: new Set(outcome.survivors), events: new Map() };
  }

  private async waitAndSample(round: number): Promise<Institution[] | null> {
    const { config, registry, board } = this.deps;
    // The first round this coordinator runs (a new run, or one resumed after a restart) waits for
    // --wait-for institutions, so the federation assembles before it starts; later rounds need --min-clients.
    const needed = this.roundsRun === 0 ? Math.max(config.minClients, config.waitFor ?? 0) : config.minClients;
    let announced = false;
    while (!this.stopped) {
      let live = registry.live((id) => board.isWaiting(id));
      if (this.deps.privacy) live = this.deps.privacy.admissible(round, live);
      if (live.length >= needed) {
        this.roundsRun++;
        live.sort((a, b) => a.id.localeCompare(b.id));
        // Client-level DP: the round is offered to every live admissible institution; each joins it by its
        // own secret coin, so the recorded q is the true probability whatever the cohort flags say.
        if (this.policy.participation === 'secret-coin') return live;
        const wanted = config.sampleCount > 0 ? config.sampleCount : Math.ceil(config.sampleFraction * live.length);
        const k = Math.min(live.length, Math.max(config.minClients, wanted));
        const random = new SeededRandom(`${config.seed}:sample:${this.runId}:${round}`);
        random.shuffle(live);
        return live.slice(0, k);
      }
      if (!announced) {
        this.emit('waiting', { round, live: live.length, needed });
        announced = true;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return null;
  }

  private taskConfig(round: number): TaskConfig {
    const { config, strategy } = this.deps;
    return { ...config.task, strategy: strategy.name, proximalMu: strategy.configureFit(round).proximalMu, seed: `${config.seed}:${round}` };
  }

  private task(kind: TaskKind, o: { config?: TaskConfig; modelVersion?: number; message?: string; retryAfterMs?: number }): TaskMsg {
    return {
      envelope: { runId: this.runId, round: this.round, modelVersion: o.modelVersion ?? this.modelVersion, institutionId: '', session: Buffer.alloc(0) },
      kind,
      modelSpecJson: this.specJson,
      configJson: o.config ? JSON.stringify(o.config) : '',
      retryAfterMs: o.retryAfterMs ?? 0,
      message: o.message ?? '',
      secagg: null,
      modelId: (o.modelVersion ?? this.modelVersion) === this.modelVersion ? this.globalId : this.candidate && o.modelVersion === this.round ? this.candidateId : '',
    };
  }

  // ---------------- calls from the gRPC service ----------------

  async pullTask(institution: Institution, waitMs: number, onCancel: (cb: () => void) => void): Promise<TaskMsg> {
    if (this.phase === 'done') return this.task('DONE', { message: 'run complete' });
    if (institution.excludedReason) return this.task('DONE', { message: `excluded: ${institution.excludedReason}` });
    this.deps.registry.showedLife(institution);
    const wait = Math.min(Math.max(waitMs, 0), 60_000);
    const task = await this.deps.board.next(institution.id, wait, onCancel);
    if (task) return { ...task, envelope: { ...task.envelope, institutionId: institution.id } };
    if ((this.phase as Phase) === 'done') return this.task('DONE', { message: 'run complete' });
    // A poll that asked not to wait is told when to ask again (a long poll has waited already).
    return this.task('WAIT', { message: `${this.phase} (round ${this.round})`, retryAfterMs: wait > 0 ? 0 : 1_000 });
  }

  /** The id of the model an envelope asks for ('' when it is none of the current ones). */
  modelIdOf(envelope: Envelope): string {
    if (envelope.runId !== this.runId) return '';
    if (envelope.modelVersion === this.modelVersion) return this.globalId;
    if (this.candidate && envelope.modelVersion === this.round) return this.candidateId;
    return '';
  }

  /** The model a task refers to: the committed global model, or the round's candidate under evaluation. */
  modelTensors(envelope: Envelope, institution?: Institution, artifact = ''): NamedTensor[] {
    this.checkRun(envelope);
    if (artifact === 'ckks-sum') {
      if (!this.ckks || !institution || envelope.round !== this.round) throw failedPrecondition('artifact: no CKKS sum is awaiting decryption in this round');
      return this.ckks.summedCiphertexts(institution);
    }
    if (artifact !== '') throw invalidArgument(`artifact: unknown artifact "${artifact}"`);
    let flat: Float32Array;
    if (envelope.modelVersion === this.modelVersion) flat = this.global;
    else if (this.candidate && envelope.modelVersion === this.round) flat = this.candidate;
    else throw failedPrecondition(`envelope.model_version: version ${envelope.modelVersion} is not available (current ${this.modelVersion})`);
    const views = unflattenParameters(this.spec, flat);
    return this.shapes.map(({ name, shape }) => ({ name, shape, dtype: 'FLOAT32', data: views.get(name)! }));
  }

  private checkRun(envelope: Envelope): void {
    if (envelope.runId !== this.runId) throw failedPrecondition(`envelope.run_id: "${envelope.runId}" is not the current run "${this.runId}"`);
  }

  private checkRound(envelope: Envelope, modelVersion: number): void {
    this.checkRun(envelope);
    if (envelope.round !== this.round) throw failedPrecondition(`envelope.round: round ${envelope.round} is closed (current round ${this.round})`);
    if (envelope.modelVersion !== modelVersion) {
      throw failedPrecondition(`envelope.model_version: expected ${modelVersion} for this phase, got ${envelope.modelVersion}`);
    }
  }

  /** Opens the receipt of a result stream after checking its header. */
  openResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    this.deps.registry.showedLife(institution);
    if (this.crossSite?.collecting && header.kind === 'EVALUATE_RESULT') return this.crossSite.openResult(institution, header);
    if (header.encrypted || header.kind === 'CKKS_DECRYPTED_SUM') {
      if (!this.ckks) throw failedPrecondition(`envelope.round: round ${this.round} is not collecting CKKS results (phase ${this.phase})`);
      this.checkRun(header.envelope);
      if (header.envelope.round !== this.round) throw failedPrecondition(`envelope.round: round ${header.envelope.round} is closed (current round ${this.round})`);
      return this.ckks.openResult(institution, header);
    }
    if (header.masked) {
      if (!this.secure) throw failedPrecondition(`envelope.round: round ${this.round} is not running a secure sum (phase ${this.phase})`);
      return this.secure.openMasked(institution, header);
    }
    if (this.deps.config.task.aggregation !== 'plain' && header.kind === 'TRAIN_RESULT') {
      throw invalidArgument(`header.masked: this run uses ${this.deps.config.task.aggregation} aggregation; updates must be ${this.deps.config.task.aggregation === 'ckks' ? 'encrypted' : 'masked'}`);
    }
    if (header.kind === 'TRAIN_RESULT') return this.openTrainResult(institution, header);
    if (header.kind === 'EVALUATE_RESULT') return this.openEvalResult(institution, header);
    throw invalidArgument(`header.kind: unknown result kind ${header.kind}`);
  }

  private openTrainResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const phase = this.trainPhase;
    this.checkRound(header.envelope, this.modelVersion);
    if (!phase || this.phase !== 'training') throw failedPrecondition(`envelope.round: round ${this.round} is not collecting training results (phase ${this.phase})`);
    const why = phase.refusal(institution.id);
    if (why) throw failedPrecondition(why);
    if (header.tensorCount !== this.shapes.length) throw invalidArgument(`header.tensor_count: expected ${this.shapes.length} tensors, got ${header.tensorCount}`);
    if (this.policy.noise === 'local-dp-sgd') this.deps.privacy?.checkResultEvent(institution, this.round, this.modelVersion, header.privacyEvent);
    // The update is received straight into one flat vector (no copy after the stream).
    const delta = this.updateVectors.take(this.global.length);
    const offsets: number[] = [];
    this.shapes.reduce((offset, p) => (offsets.push(offset), offset + p.size), 0);
    const reject = (reason: string) => {
      this.deps.board.clear(institution.id);
      phase.reject(institution.id, 'rejected', reason);
    };
    return {
      tensorCount: this.shapes.length,
      expectTensor: (name, shape, dtype, index) => {
        const want = this.shapes[index];
        if (!want || name !== want.name) throw invalidArgument(`tensor.name: expected "${want?.name}" at position ${index}, got "${name}"`);
        if (shape.length !== want.shape.length || shape.some((d, i) => d !== want.shape[i])) {
          throw invalidArgument(`tensor.shape: "${name}" must be [${want.shape.join(',')}], got [${shape.join(',')}]`);
        }
        if (dtype !== 'FLOAT32') throw invalidArgument(`tensor.dtype: "${name}" must be FLOAT32, got ${dtype}`);
      },
      place: (index, dtype, byteLength) => {
        const want = this.shapes[index];
        if (!want || dtype !== 'FLOAT32' || byteLength !== want.size * 4) return undefined; // expectTensor refuses it
        return delta.subarray(offsets[index], offsets[index] + want.size);
      },
      finish: () => {
        try {
          validateUpdate(delta, this.global.length);
        } catch (error) {
          throw invalidArgument(`tensor.data: ${(error as Error).message}`);
        }
        // Bounded influence: an update above the bound is clipped to it (counted in the round's metrics);
        // header.num_examples is ignored (an update weighs what its institution declared, capped).
        if (l2Norm(delta) > this.policy.updateBound) {
          clipToNorm(delta, this.policy.updateBound);
          this.clippedUpdates++;
        }
        this.deps.board.clear(institution.id);
        const arrivals = this.arrivals;
        phase.report(institution.id, {
          delta: arrivals ? null : delta,
          numExamples: 0,
          metrics: { ...header.metrics },
          privacyEvent: header.privacyEvent ?? null,
        });
        arrivals?.add(delta, this.roundWeights.get(institution.id) ?? 1);
      },
      fail: reject,
    };
  }

  private openEvalResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const phase = this.evalPhase;
    this.checkRound(header.envelope, this.round);
    if (!phase || this.phase !== 'evaluating') throw failedPrecondition(`envelope.round: round ${this.round} is not collecting evaluations (phase ${this.phase})`);
    const why = phase.refusal(institution.id);
    if (why) throw failedPrecondition(why);
    const bins = this.deps.config.task.evaluation.bins;
    if (header.tensorCount !== 2) throw invalidArgument(`header.tensor_count: an evaluation carries 2 histograms, got ${header.tensorCount}`);
    if (this.deps.config.task.evaluation.private) return this.openPrivateEvalResult(institution, header, phase);
    for (const key of ['loss', 'accuracy']) {
      const v = header.metrics[key];
      if (v === undefined || !Number.isFinite(v)) throw invalidArgument(`header.metrics.${key}: required finite number`);
    }
    // figures no evaluation produces: a negative loss, an accuracy outside [0, 1]
    if (header.metrics.loss < 0) throw invalidArgument(`header.metrics.loss: ${header.metrics.loss} is negative`);
    if (header.metrics.accuracy > 1 || header.metrics.accuracy < 0) throw invalidArgument(`header.metrics.accuracy: ${header.metrics.accuracy} is outside [0, 1]`);
    return {
      tensorCount: 2,
      expectTensor: expectHistogramTensor(bins),
      finish: (tensors) => {
        const histogram: ScoreHistogram = {
          bins,
          logitRange: this.deps.config.task.evaluation.logitRange,
          positive: tensors[0].data as Uint32Array,
          negative: tensors[1].data as Uint32Array,
        };
        let n = 0;
        for (let i = 0; i < bins; i++) n += histogram.positive[i] + histogram.negative[i];
        if (n !== header.numExamples) throw invalidArgument(`header.num_examples: ${header.numExamples} does not match the histogram total ${n}`);
        this.deps.board.clear(institution.id);
        phase.report(institution.id, { histogram, numExamples: n, metrics: { ...header.metrics } });
      },
      fail: (reason) => {
        this.deps.board.clear(institution.id);
        phase.reject(institution.id, 'rejected', reason);
      },
    };
  }

  /** A private evaluation under plain aggregation: two noisy histograms (signed counts as 32-bit words) and the signed event. */
  private openPrivateEvalResult(institution: Institution, header: ResultHeaderMsg, phase: PhaseCollector<EvalReport>): ResultSink {
    const { bins, logitRange } = this.deps.config.task.evaluation;
    const round = this.round;
    this.deps.privacy?.checkEvaluationEvent(institution, round, header.privacyEvent);
    const event = header.privacyEvent;
    if (!event) throw invalidArgument('header.privacy_event: a private evaluation must carry its signed evaluation event');
    return {
      tensorCount: 2,
      expectTensor: expectHistogramTensor(bins),
      finish: (tensors) => {
        const vector = new Uint32Array(2 * bins);
        vector.set(tensors[0].data as Uint32Array, 0);
        vector.set(tensors[1].data as Uint32Array, bins);
        const noisy = decodeNoisyHistograms(vector, bins, logitRange);
        const floor = noisyCellFloor(event.noiseMultiplier);
        for (const [name, cells] of [[HISTOGRAM_NAMES[0], noisy.positive], [HISTOGRAM_NAMES[1], noisy.negative]] as const) {
          const i = cells.findIndex((v) => v < floor);
          if (i >= 0) throw invalidArgument(`tensor.data: "${name}" cell ${i} is ${cells[i]}, below ${floor.toFixed(1)}: no count plus the recorded noise goes that low`);
        }
        this.deps.board.clear(institution.id);
        phase.report(institution.id, { histogram: null, numExamples: 0, metrics: {}, noisy, privacyEvent: event });
      },
      fail: (reason) => {
        this.deps.board.clear(institution.id);
        phase.reject(institution.id, 'rejected', reason);
      },
    };
  }

  /** A secure-aggregation message (advertise keys, share keys, unmask). */
  receiveSecAgg(institution: Institution, message: SecAggMessageMsg): void {
    this.checkRun(message.envelope);
    this.deps.registry.showedLife(institution);
    if (message.ckksPublicKey) {
      if (!this.ckks) throw failedPrecondition(`envelope.round: round ${this.round} is not setting up CKKS keys`);
      this.ckks.receive(institution, message);
      return;
    }
    if (!this.secure) throw failedPrecondition(`envelope.round: round ${this.round} is not running a secure sum (phase ${this.phase})`);
    if (message.envelope.round !== this.round) throw failedPrecondition(`envelope.round: round ${message.envelope.round} is closed (current round ${this.round})`);
    if (message.collection !== this.secure.collection) throw failedPrecondition(`collection: "${message.collection}" is not the open secure sum ("${this.secure.collection}")`);
    this.secure.receive(institution, message);
  }

  /** An institution declines its task (e.g. its own budget would be exceeded): stop sampling it. */
  decline(institution: Institution, request: DeclineRequestMsg): void {
    this.checkRun(request.envelope);
    const reason = request.reason || 'declined';
    if (reason === 'budget') {
      this.deps.registry.exclude(institution.id, `budget: projected ε ${request.projectedEpsilon} > budget ${request.budgetEpsilon}`);
      this.deps.store.recordSchedulingRefusal(this.runId, request.envelope.round, institution.id, `institution declined: ${request.detail || 'privacy budget'}`,
        request.projectedEpsilon, request.budgetEpsilon);
    }
    this.emit('declined', { institution: institution.id, reason, detail: request.detail });
    this.crossSite?.decline(institution, request);
    // A decline of an earlier round's task changes nothing in this one.
    if (request.envelope.round !== this.round) return;
    this.trainPhase?.reject(institution.id, 'declined', `${reason}: ${request.detail}`);
    this.secure?.decline(institution.id, `${reason}: ${request.detail}`);
    this.evalPhase?.reject(institution.id, 'declined', `${reason}: ${request.detail}`);
    // no task is posted to it again in this round (a decliner is not asked again and again)
    this.deps.board.block(institution.id);
  }
}
