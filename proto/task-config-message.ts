// The task configuration between its domain form (proto/task-config.ts TaskConfig: the names the code
// plans with) and the TaskConfig message of proto/dpfed/v1/federation.proto (enums, optional fields). The
// conversion keeps every value as it is; parseTaskConfig (task-config.ts) checks the result.
import type * as pb from './generated/dpfed/v1/federation.ts';
import type { AggregationMode, ClientPrivacyConfig, EvaluationConfig, LrSchedule, PrivacyMode, RecordPrivacyConfig, TaskConfig } from './task-config.ts';

/** A two-way table between a domain name and a proto enum name. */
function enumTable<Domain extends string, Wire extends string>(pairs: readonly (readonly [Domain, Wire])[]) {
  const toWire = new Map<string, Wire>(pairs);
  const toDomain = new Map<string, Domain>(pairs.map(([d, w]) => [w, d]));
  return {
    /** The enum name of `value`; the UNSPECIFIED name for a value the table lacks (the receiver's check names it). */
    wire: (value: Domain | undefined, unspecified: Wire): Wire => toWire.get(value as string) ?? unspecified,
    /** The domain name of `value`; undefined for UNSPECIFIED or an unknown value. */
    domain: (value: string): Domain => toDomain.get(value) as Domain,
  };
}

const OPTIMIZERS = enumTable<TaskConfig['optimizer'], pb.Optimizer>([
  ['sgd', 'OPTIMIZER_SGD'],
  ['adam', 'OPTIMIZER_ADAM'],
]);
const WEIGHTINGS = enumTable<TaskConfig['weighting'], pb.Weighting>([
  ['examples', 'WEIGHTING_EXAMPLES'],
  ['uniform', 'WEIGHTING_UNIFORM'],
]);
const AGGREGATIONS = enumTable<AggregationMode, pb.Aggregation>([
  ['plain', 'AGGREGATION_PLAIN'],
  ['secagg', 'AGGREGATION_SECAGG'],
  ['ckks', 'AGGREGATION_CKKS'],
]);
const PRIVACY_MODES = enumTable<PrivacyMode, pb.PrivacyMode>([
  ['off', 'PRIVACY_MODE_OFF'],
  ['record', 'PRIVACY_MODE_RECORD'],
  ['client', 'PRIVACY_MODE_CLIENT'],
]);
const ACCOUNTANTS = enumTable<RecordPrivacyConfig['accountant'], pb.Accountant>([
  ['rdp', 'ACCOUNTANT_RDP'],
  ['pld', 'ACCOUNTANT_PLD'],
]);

/** The TaskConfig message of a configuration. */
export function taskConfigMessage(config: TaskConfig): pb.TaskConfig {
  const { record, client } = config.privacy;
  return {
    strategy: config.strategy,
    localSteps: config.localSteps,
    maxUpdateNorm: config.maxUpdateNorm,
    weightCap: config.weightCap,
    batchSize: config.batchSize,
    learningRate: config.learningRate,
    optimizer: OPTIMIZERS.wire(config.optimizer, 'OPTIMIZER_UNSPECIFIED'),
    proximalMu: config.proximalMu,
    weighting: WEIGHTINGS.wire(config.weighting, 'WEIGHTING_UNSPECIFIED'),
    privacy: {
      mode: PRIVACY_MODES.wire(config.privacy.mode, 'PRIVACY_MODE_UNSPECIFIED'),
      record: record && { ...record, accountant: ACCOUNTANTS.wire(record.accountant, 'ACCOUNTANT_UNSPECIFIED') },
      client: client && { ...client, accountant: ACCOUNTANTS.wire(client.accountant, 'ACCOUNTANT_UNSPECIFIED') },
    },
    aggregation: AGGREGATIONS.wire(config.aggregation, 'AGGREGATION_UNSPECIFIED'),
    evaluation: evaluationMessage(config.evaluation),
    seed: config.seed,
    classWeight: config.classWeight && { ...config.classWeight },
    weightDecay: config.weightDecay ?? 0,
    lrSchedule: config.lrSchedule && lrScheduleMessage(config.lrSchedule),
  };
}

function evaluationMessage(e: EvaluationConfig): pb.EvaluationConfig {
  return {
    bins: e.bins,
    logitRange: e.logitRange,
    every: e.every ?? 0,
    coordinatorData: e.coordinatorData === true,
    none: e.none === true,
    crossSite: e.crossSite === true,
    private: e.private && { ...e.private },
  };
}

function lrScheduleMessage(schedule: LrSchedule): pb.LrSchedule {
  if (schedule.kind === 'cosine') return { cosine: { rounds: schedule.rounds } };
  if (schedule.kind === 'step') return { step: { every: schedule.every, gamma: schedule.gamma } };
  return { constant: {} };
}

/**
 * The configuration a decoded TaskConfig message holds, unchecked: an UNSPECIFIED enum becomes undefined, an
 * absent message field undefined, and the fields whose 0 means "none" (weight_decay, evaluation.every) are
 * left out when 0.
 */
export function taskConfigFromMessage(m: pb.TaskConfig): TaskConfig {
  // absent messages stay undefined here; the check names them
  const config: TaskConfig = {
    strategy: m.strategy,
    localSteps: m.localSteps,
    maxUpdateNorm: m.maxUpdateNorm,
    weightCap: m.weightCap,
    batchSize: m.batchSize,
    learningRate: m.learningRate,
    optimizer: OPTIMIZERS.domain(m.optimizer),
    proximalMu: m.proximalMu,
    weighting: WEIGHTINGS.domain(m.weighting),
    privacy: (m.privacy && {
      mode: PRIVACY_MODES.domain(m.privacy.mode),
      ...(m.privacy.record && { record: { ...(m.privacy.record as Omit<RecordPrivacyConfig, 'accountant'>), accountant: ACCOUNTANTS.domain(m.privacy.record.accountant) } }),
      ...(m.privacy.client && { client: { ...(m.privacy.client as Omit<ClientPrivacyConfig, 'accountant'>), accountant: ACCOUNTANTS.domain(m.privacy.client.accountant) } }),
    }) as TaskConfig['privacy'],
    aggregation: AGGREGATIONS.domain(m.aggregation),
    evaluation: (m.evaluation && evaluationFromMessage(m.evaluation)) as EvaluationConfig,
    seed: m.seed,
  };
  if (m.classWeight) config.classWeight = { positive: m.classWeight.positive, negative: m.classWeight.negative };
  if (m.weightDecay !== 0) config.weightDecay = m.weightDecay;
  if (m.lrSchedule) config.lrSchedule = lrScheduleFromMessage(m.lrSchedule);
  return config;
}

function evaluationFromMessage(e: pb.EvaluationConfig): EvaluationConfig {
  const evaluation: EvaluationConfig = { bins: e.bins, logitRange: e.logitRange };
  if (e.every !== 0) evaluation.every = e.every;
  if (e.coordinatorData) evaluation.coordinatorData = true;
  if (e.none) evaluation.none = true;
  if (e.crossSite) evaluation.crossSite = true;
  if (e.private) evaluation.private = { epsilon: e.private.epsilon, noiseSigma: e.private.noiseSigma };
  return evaluation;
}

/** The schedule of a message; a schedule with none of its kinds set comes back as kind undefined (refused by the check). */
function lrScheduleFromMessage(s: pb.LrSchedule): LrSchedule {
  if (s.cosine) return { kind: 'cosine', rounds: s.cosine.rounds };
  if (s.step) return { kind: 'step', every: s.step.every, gamma: s.step.gamma };
  if (s.constant) return { kind: 'constant' };
  return { kind: undefined } as unknown as LrSchedule;
}
