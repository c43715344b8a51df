// The flags that define a run (coordinator and demo share them) and their translation into a RunConfig.
import type { RunConfig } from './run-config.ts';
import { STRATEGY_NAMES, type StrategyName } from './strategy.ts';
import { calibrateEvaluationSigma, DEFAULT_EVALUATION_EPSILON_SHARE, DEFAULT_PRIVATE_EVALUATION_BINS, plannedEvaluationReleases } from '@dpfed/privacy/evaluation-mechanism';
import { modelSpecFromShorthand } from '@dpfed/proto/model-spec';
import type { AggregationMode, PrivacyMode, TaskConfig } from '@dpfed/proto/task-config';
import { parameterCount } from '@dpfed/proto/model-spec';
import { calibrateClientNoise, defaultUpdateBound, releasePairRefusal } from '@dpfed/privacy/release-policy';
import { featureColumns, type DataSchema } from '@dpfed/proto/data-schema';
import { UsageError, type FlagSpec, type FlagValues } from '@dpfed/proto/command-flags';
import { schemaFromFlag } from '@dpfed/proto/schema-flag';

const positive = (v: number | string) => (Number(v) > 0 ? undefined : 'must be positive');
const fraction = (v: number | string) => (Number(v) > 0 && Number(v) <= 1 ? undefined : 'must be in (0, 1]');
const openUnit = (v: number | string) => (Number(v) > 0 && Number(v) < 1 ? undefined : 'must be in (0, 1)');
const nonNegative = (v: number | string) => (Number(v) >= 0 ? undefined : 'must be >= 0');

/** Score-histogram bins per class when --bins is 0: exact evaluation keeps fine bins, private evaluation coarse ones. */
const EXACT_EVALUATION_BINS = 1024;

export function runFlags(defaults: { rounds: number; minClients: number; privacy: PrivacyMode; aggregation: AggregationMode; evaluateEvery?: number }): FlagSpec[] {
  return [
    { name: 'rounds', type: 'int', default: defaults.rounds, help: 'federated rounds to run', check: positive },
    { name: 'min-clients', type: 'int', default: defaults.minClients, help: 'institutions needed to start and to complete a round', check: positive },
    { name: 'wait-for', type: 'int', default: 0, help: 'institutions to wait for before the first round (0 = --min-clients); later rounds need only --min-clients', check: nonNegative },
    { name: 'sample-fraction', type: 'number', default: 1, help: 'fraction of live institutions sampled per round', check: fraction },
    { name: 'sample-count', type: 'int', default: 0, help: 'exact number sampled per round (overrides --sample-fraction)', check: nonNegative },
    { name: 'round-timeout', type: 'number', default: 120, help: 'seconds to collect training results before the round closes', check: positive },
    {
      name: 'task-pickup-timeout',
      type: 'number',
      default: 10,
      help: 'seconds a sampled institution has to fetch a task before it is dropped from the round (and not sampled again until it pulls or sends a result)',
      check: positive,
    },
    { name: 'phase-timeout', type: 'number', default: 30, help: 'seconds for each later phase (evaluation, secure-aggregation phases)', check: positive },
    { name: 'strategy', type: 'string', default: 'fedavg', choices: STRATEGY_NAMES, help: 'aggregation strategy' },
    { name: 'proximal-mu', type: 'number', default: 0.01, help: 'FedProx proximal coefficient mu', check: nonNegative },
    { name: 'server-learning-rate', type: 'number', default: 0.01, help: 'FedAdam server learning rate', check: positive },
    { name: 'trim-fraction', type: 'number', default: 0.1, help: 'trimmed mean: fraction cut at each end', check: (v) => (Number(v) >= 0 && Number(v) < 0.5 ? undefined : 'must be in [0, 0.5)') },
    { name: 'model', type: 'string', default: 'mlp:64,32', help: 'model: "logistic" or "mlp:UNITS,UNITS[:relu|tanh|sigmoid]"' },
    {
      name: 'schema',
      type: 'string',
      help: "the run's public data schema (JSON, as dpfed schema): stored with the run, sent to institutions at registration (they compare their own before registering; a different schema_hash is refused), and the model's input count is its feature columns",
    },
    { name: 'features', type: 'int', help: 'number of input features of the model (default: the feature columns of --schema, else 30; with --schema it must agree)', check: positive },
    { name: 'local-steps', type: 'int', default: 36, help: 'local optimiser steps per round (the same for every institution)', check: positive },
    { name: 'batch-size', type: 'int', default: 64, help: 'local batch size; under DP-SGD the public constant the noisy gradient sum is divided by', check: positive },
    { name: 'sample-rate', type: 'number', default: 0.028, help: 'record mode: public Poisson sampling rate q of DP-SGD (each example joins a step with probability q)', check: fraction },
    {
      name: 'max-update-norm',
      type: 'number',
      default: 0,
      help: 'L2 bound of every update: institutions clip to it, the coordinator clips plain updates above it (0 = learning-rate x local-steps x sqrt(parameters); client mode: --update-clip-norm)',
      check: nonNegative,
    },
    { name: 'weight-cap', type: 'int', default: 100000, help: 'public cap on the example count an institution declares (its FedAvg weight); undeclared sizes mean equal weights', check: positive },
    { name: 'learning-rate', type: 'number', default: 0.05, help: 'local learning rate', check: positive },
    { name: 'optimizer', type: 'string', default: 'adam', choices: ['sgd', 'adam'], help: 'local optimiser' },
    {
      name: 'class-weight',
      type: 'string',
      default: 'none',
      help: "per-class weight of the per-example loss, applied before clipping (DP accounting unchanged): none, auto (balanced weights 1/(2p) and 1/(2(1-p)) from the public --positive-rate p; never from the institutions' label counts), or W (positives weigh W, negatives 1)",
      check: (v) => (v === 'none' || v === 'auto' || (Number(v) > 0 && Number.isFinite(Number(v))) ? undefined : 'expected none, auto or a positive number'),
    },
    {
      name: 'positive-rate',
      type: 'number',
      help: "with --class-weight auto: the public share of positive labels the weights balance (a published figure, not measured on the institutions' rows)",
      check: openUnit,
    },
    { name: 'weight-decay', type: 'number', default: 0, help: 'decoupled L2 weight decay lambda in the optimiser step (params -= lr*lambda*params; data-independent)', check: nonNegative },
    {
      name: 'lr-schedule',
      type: 'string',
      default: 'constant',
      help: 'learning rate over the rounds: constant, cosine (to 0 at the last planned round), or step:K:G (times G every K rounds)',
      check: (v) => lrScheduleProblem(String(v)) ?? undefined,
    },
    {
      name: 'keep',
      type: 'string',
      default: 'last',
      choices: ['best', 'last'],
      help: "the run's result model: the last committed round, or the best by the private evaluation's global AUC (recorded in the run; dpfed model export takes it by default)",
    },
    {
      name: 'privacy',
      type: 'string',
      default: defaults.privacy,
      choices: ['off', 'record', 'client'],
      help: 'differential privacy: off, record-level DP-SGD at each institution, or client-level DP-FedAvg',
    },
    { name: 'epsilon', type: 'number', default: 3, help: "target epsilon over the whole run (record: each institution's records; client: each institution as a whole)", check: positive },
    { name: 'delta', type: 'number', default: 1e-5, help: 'target delta', check: openUnit },
    { name: 'clip-norm', type: 'number', default: 1, help: 'record mode: per-example gradient clip norm C', check: positive },
    { name: 'accountant', type: 'string', default: 'rdp', choices: ['rdp', 'pld'], help: 'privacy accountant' },
    { name: 'update-clip-norm', type: 'number', default: 0.5, help: 'client mode: L2 clip norm S of each model update', check: positive },
    {
      name: 'client-sample-rate',
      type: 'number',
      default: 1,
      help: 'client mode: probability with which each institution joins a round, by its own secret coin (the noise multiplier z is calibrated from --epsilon, --delta, this rate and --rounds)',
      check: fraction,
    },
    { name: 'aggregation', type: 'string', default: defaults.aggregation, choices: ['plain', 'secagg', 'ckks'], help: 'how updates are summed: plain, SecAgg double masking, or CKKS homomorphic' },
    { name: 'secagg-threshold', type: 'number', default: 0.6, help: 'secure aggregation: Shamir threshold as a fraction of the round participants', check: fraction },
    {
      name: 'secagg-dropout-rate',
      type: 'number',
      default: 0.1,
      help: 'secure aggregation: dropout rate the masking graph (sparse above 64 participants) is sized to survive',
      check: (v) => (Number(v) >= 0 && Number(v) < 0.5 ? undefined : 'must be in [0, 0.5)'),
    },
    { name: 'ckks-key-holder', type: 'string', help: "CKKS: the institution that holds the secret key and decrypts only each round's sum (default: the first participant by id)" },
    {
      name: 'bins',
      type: 'int',
      default: 0,
      help: `score-histogram bins per class for AUC (0 = ${EXACT_EVALUATION_BINS} with exact evaluation, ${DEFAULT_PRIVATE_EVALUATION_BINS} with private evaluation under --privacy record, where it must be even)`,
      check: nonNegative,
    },
    {
      name: 'evaluate-every',
      type: 'int',
      default: defaults.evaluateEvery ?? 1,
      help: 'evaluate the global model every K rounds (the last round always); rounds in between commit without AUC',
      check: positive,
    },
    {
      name: 'evaluation-data',
      type: 'string',
      help: 'score each candidate on this CSV the coordinator holds itself (exact figures on its own rows; institutions get no evaluation task and spend no epsilon on evaluation)',
    },
    { name: 'evaluation-label-column', type: 'string', default: 'label', help: 'with --evaluation-data: the binary label column of that CSV' },
    {
      name: 'evaluation-schema',
      type: 'string',
      help: "with --evaluation-data: the run's public data schema (JSON), so the coordinator's rows are scaled as the institutions scale theirs (default: inferred from that CSV, with a warning)",
    },
    {
      name: 'evaluation-epsilon',
      type: 'number',
      default: 0,
      help: `record mode: the share of --epsilon spent on private evaluation over the run (0 = ${DEFAULT_EVALUATION_EPSILON_SHARE * 100} % of --epsilon); training gets the rest, composed by the accountant`,
      check: nonNegative,
    },
    {
      name: 'cross-site-evaluation',
      type: 'boolean',
      help: "after the last round, every institution scores the final model on its own validation rows and releases its own histograms (record mode: noisy, from the --evaluation-epsilon share, planned as one more evaluation; privacy off: exact); the coordinator records each institution's AUC (not with --privacy client)",
    },
    { name: 'seed', type: 'string', default: '1', help: 'seed for data splits, model initialisation and sampling (never for privacy noise or masks)' },
  ];
}

export function runConfigFromFlags(f: FlagValues): RunConfig {
  const privacy = f.privacy as PrivacyMode;
  const aggregation = f.aggregation as AggregationMode;
  const refusal = releasePairRefusal(privacy, aggregation);
  if (refusal) throw new UsageError(refusal);
  if (privacy === 'client' && (Number(f.sampleFraction) !== 1 || Number(f.sampleCount) > 0)) {
    throw new UsageError(
      '--sample-fraction and --sample-count cannot be used with --privacy client: every live institution is offered each round and joins it by its own secret coin (--client-sample-rate)',
    );
  }
  if (privacy === 'client' && f.strategy === 'trimmed-mean') throw new UsageError('--strategy trimmed-mean cannot be used with --privacy client (DP-FedAvg noises the sum)');
  if (aggregation !== 'plain' && f.strategy === 'trimmed-mean') throw new UsageError(`--strategy trimmed-mean needs individual updates; it cannot run with --aggregation ${aggregation}`);
  if (aggregation === 'secagg' && Number(f.minClients) < 3)
    throw new UsageError("--min-clients must be at least 3 with --aggregation secagg (with 2, each institution learns the other's update from the sum)");
  const schema = schemaFromFlags(f);
  let features = f.features === undefined ? DEFAULT_FEATURES : Number(f.features);
  if (schema) {
    const declared = featureColumns(schema).length;
    if (f.features !== undefined && Number(f.features) !== declared) {
      throw new UsageError(`--features: ${f.features} disagrees with --schema ${f.schema}, which has ${declared} feature columns (drop --features: the schema sets it)`);
    }
    features = declared;
  }
  let modelSpec: ReturnType<typeof modelSpecFromShorthand>;
  try {
    modelSpec = modelSpecFromShorthand(String(f.model), features);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const rounds = Number(f.rounds);
  const minClients = Number(f.minClients);
  const evaluation = evaluationFromFlags(f, privacy, rounds);
  const strategy = f.strategy as StrategyName;
  const localSteps = Number(f.localSteps);
  const learningRate = Number(f.learningRate);
  let clientNoise = 0;
  if (privacy === 'client') {
    try {
      clientNoise = calibrateClientNoise({
        targetEpsilon: Number(f.epsilon),
        delta: Number(f.delta),
        clientSampleRate: Number(f.clientSampleRate),
        plannedRounds: rounds,
        accountant: f.accountant as 'rdp' | 'pld',
      });
    } catch (error) {
      throw new UsageError(`--epsilon ${f.epsilon} with --delta ${f.delta}, --client-sample-rate ${f.clientSampleRate} and --rounds ${rounds}: ${(error as Error).message}`);
    }
  }
  const maxUpdateNorm = Number(f.maxUpdateNorm) > 0 ? Number(f.maxUpdateNorm) : defaultUpdateBound(learningRate, localSteps, parameterCount(modelSpec));
  return {
    rounds,
    minClients,
    waitFor: Number(f.waitFor),
    sampleFraction: Number(f.sampleFraction),
    sampleCount: Number(f.sampleCount),
    roundTimeoutMs: Number(f.roundTimeout) * 1000,
    phaseTimeoutMs: Number(f.phaseTimeout) * 1000,
    taskPickupTimeoutMs: Number(f.taskPickupTimeout) * 1000,
    strategy,
    strategyOptions: {
      proximalMu: strategy === 'fedprox' ? Number(f.proximalMu) : 0,
      serverLearningRate: Number(f.serverLearningRate),
      trimFraction: Number(f.trimFraction),
    },
    modelSpec,
    seed: String(f.seed),
    secaggThresholdFraction: Number(f.secaggThreshold),
    secaggDropoutRate: Number(f.secaggDropoutRate),
    ckksKeyHolder: f.ckksKeyHolder ? String(f.ckksKeyHolder) : undefined,
    ...(schema ? { schema } : {}),
    keep: f.keep === 'best' ? 'best' : 'last',
    task: {
      localSteps,
      maxUpdateNorm,
      weightCap: Number(f.weightCap),
      batchSize: Number(f.batchSize),
      learningRate,
      optimizer: f.optimizer as 'sgd' | 'adam',
      weighting: privacy === 'client' ? 'uniform' : 'examples',
      privacy: {
        mode: privacy,
        record:
          privacy === 'record'
            ? {
                clipNorm: Number(f.clipNorm),
                targetEpsilon: Number(f.epsilon),
                delta: Number(f.delta),
                plannedRounds: rounds,
                accountant: f.accountant as 'rdp' | 'pld',
                sampleRate: Number(f.sampleRate),
              }
            : undefined,
        client:
          privacy === 'client'
            ? {
                updateClipNorm: Number(f.updateClipNorm),
                noiseMultiplier: clientNoise,
                clientSampleRate: Number(f.clientSampleRate),
                targetEpsilon: Number(f.epsilon),
                delta: Number(f.delta),
                plannedRounds: rounds,
                accountant: f.accountant as 'rdp' | 'pld',
              }
            : undefined,
      },
      aggregation,
      evaluation,
      ...trainingOptionsFromFlags(f, rounds),
    },
  };
}

/** Why a --lr-schedule value is refused (null: accepted). */
function lrScheduleProblem(v: string): string | null {
  if (v === 'constant' || v === 'cosine') return null;
  const m = /^step:(\d+):([0-9.eE+-]+)$/.exec(v);
  if (!m) return 'expected constant, cosine or step:K:G (e.g. step:5:0.5)';
  if (!(Number(m[1]) >= 1)) return 'step:K:G needs K >= 1 rounds';
  const gamma = Number(m[2]);
  if (!(gamma > 0 && gamma <= 1)) return `step:K:G needs G in (0, 1], got ${m[2]}`;
  return null;
}

/** --class-weight, --weight-decay and --lr-schedule as the task carries them (absent when off). */
function trainingOptionsFromFlags(f: FlagValues, rounds: number): Pick<TaskConfig, 'classWeight' | 'weightDecay' | 'lrSchedule'> {
  const out: Pick<TaskConfig, 'classWeight' | 'weightDecay' | 'lrSchedule'> = {};
  const cw = String(f.classWeight ?? 'none');
  if (f.positiveRate !== undefined && cw !== 'auto') throw new UsageError('--positive-rate: only used with --class-weight auto');
  if (cw === 'auto') {
    if (f.positiveRate === undefined)
      throw new UsageError("--class-weight auto needs --positive-rate P: the public share of positives to balance (a published figure; the institutions' own label counts are private)");
    const p = Number(f.positiveRate);
    out.classWeight = { positive: 1 / (2 * p), negative: 1 / (2 * (1 - p)) };
  } else if (cw !== 'none') out.classWeight = { positive: Number(cw), negative: 1 };
  if (Number(f.weightDecay ?? 0) > 0) out.weightDecay = Number(f.weightDecay);
  const schedule = String(f.lrSchedule ?? 'constant');
  if (schedule === 'cosine') out.lrSchedule = { kind: 'cosine', rounds };
  else if (schedule.startsWith('step:')) {
    const [, every, gamma] = schedule.split(':');
    out.lrSchedule = { kind: 'step', every: Number(every), gamma: Number(gamma) };
  }
  return out;
}

/** The model's input count without --schema or --features. */
const DEFAULT_FEATURES = 30;

/** --schema read and validated; a bad file is a UsageError naming the flag, the column and the field. */
function schemaFromFlags(f: FlagValues): DataSchema | undefined {
  return schemaFromFlag(f.schema);
}

/**
 * The evaluation settings: bins, evaluate-every, and under record-level DP the private evaluation's ε
 * share and the noise it calibrates to (the planned evaluations composing to that share at --delta);
 * with --evaluation-data, exact scoring on the coordinator's own rows instead (no share is set aside).
 */
function evaluationFromFlags(f: FlagValues, privacy: PrivacyMode, rounds: number): RunConfig['task']['evaluation'] {
  const every = Number(f.evaluateEvery);
  const crossSite = Boolean(f.crossSiteEvaluation);
  // client-level DP: no evaluation mechanism at the institution level exists, so the institutions do not
  // evaluate at all (exact figures would leave unprotected)
  if (crossSite && privacy === 'client') {
    throw new UsageError(
      '--cross-site-evaluation cannot be used with --privacy client: under client-level DP the institutions do not evaluate (no evaluation mechanism is built at that level); use --privacy record or off',
    );
  }
  if (f.evaluationData) {
    if (Number(f.evaluationEpsilon) > 0) throw new UsageError('--evaluation-epsilon: with --evaluation-data the institutions spend nothing on evaluation; drop one of the two');
    if (crossSite && privacy === 'record')
      throw new UsageError('--cross-site-evaluation with --evaluation-data under --privacy record: the institutions set aside no evaluation share of epsilon for it; drop one of the two');
    return { bins: Number(f.bins) > 0 ? Number(f.bins) : EXACT_EVALUATION_BINS, logitRange: 16, every, coordinatorData: true, ...(crossSite ? { crossSite } : {}) };
  }
  const isPrivate = privacy === 'record';
  // --evaluation-data scores on the coordinator's rows under client-level DP
  if (privacy === 'client') {
    if (Number(f.evaluationEpsilon) > 0) throw new UsageError('--evaluation-epsilon: only meaningful with --privacy record');
    return { bins: Number(f.bins) > 0 ? Number(f.bins) : EXACT_EVALUATION_BINS, logitRange: 16, every, none: true };
  }
  const bins = Number(f.bins) > 0 ? Number(f.bins) : isPrivate ? DEFAULT_PRIVATE_EVALUATION_BINS : EXACT_EVALUATION_BINS;
  if (!isPrivate) {
    if (Number(f.evaluationEpsilon) > 0) throw new UsageError('--evaluation-epsilon: only meaningful with --privacy record');
    return { bins, logitRange: 16, every, ...(crossSite ? { crossSite } : {}) };
  }
  if (bins % 2 !== 0) throw new UsageError(`--bins: must be even under private evaluation (the threshold 0 lies on a bin edge), got ${bins}`);
  const target = Number(f.epsilon);
  const share = Number(f.evaluationEpsilon) > 0 ? Number(f.evaluationEpsilon) : DEFAULT_EVALUATION_EPSILON_SHARE * target;
  if (share >= target) throw new UsageError(`--evaluation-epsilon: ${share} must be below --epsilon ${target} (training needs a share too)`);
  // the cross-site release at the end is one more planned evaluation release of the same share
  const noiseSigma = calibrateEvaluationSigma({ epsilon: share, delta: Number(f.delta), evaluations: plannedEvaluationReleases(rounds, every, crossSite), accountant: f.accountant as 'rdp' | 'pld' });
  return { bins, logitRange: 16, every, ...(crossSite ? { crossSite } : {}), private: { epsilon: share, noiseSigma } };
}
