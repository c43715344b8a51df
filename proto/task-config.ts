// What the coordinator tells an institution with each task (Task.config_json). Both sides import this
// one definition; parseTaskConfig validates what arrives.

export type PrivacyMode = 'off' | 'record' | 'client';
export type AggregationMode = 'plain' | 'secagg' | 'ckks';

export interface RecordPrivacyConfig {
  /** Per-example L2 clip norm C of DP-SGD. */
  clipNorm: number;
  /** Target (ε, δ) over the whole run; each institution calibrates its own noise multiplier to it and to its own budget. */
  targetEpsilon: number;
  delta: number;
  /** Rounds planned for the run: the calibration spreads the target over all of them. */
  plannedRounds: number;
  accountant: 'rdp' | 'pld';
}

export interface ClientPrivacyConfig {
  /** L2 clip norm S of each institution's model update. */
  updateClipNorm: number;
  /** Noise multiplier z: the sum receives Gaussian noise of standard deviation z·S. */
  noiseMultiplier: number;
  /** Federation-level client sampling rate, for the accountant. */
  clientSampleRate: number;
  delta: number;
}

/**
 * How candidate models are scored. Without `private` (privacy off or client-level) institutions send exact
 * figures. With it (record-level DP), each institution releases only its two class histograms with
 * discrete-Gaussian noise and records the release in its ledger (privacy/evaluation-mechanism.ts).
 */
export interface EvaluationConfig {
  /** Score-histogram bins per class (even under private evaluation: the threshold 0 lies on a bin edge). */
  bins: number;
  logitRange: number;
  /** Evaluate every K rounds; the last round always evaluates (absent = 1). */
  every?: number;
  /** The coordinator scores candidates on its own data: no EVALUATE tasks go to institutions. */
  coordinatorData?: boolean;
  private?: {
    /** The run's evaluation share of the target ε, spread over the planned evaluations. */
    epsilon: number;
    /** Noise standard deviation per cell the coordinator asks the released sum to carry (plain: each institution's own). */
    noiseSigma: number;
  };
}

export interface TaskConfig {
  strategy: string;
  localEpochs: number;
  batchSize: number;
  learningRate: number;
  optimizer: 'sgd' | 'adam';
  /** FedProx proximal term coefficient; 0 disables it. */
  proximalMu: number;
  /** Weight of an update in the mean: its example count, or 1 (client-level DP needs uniform). */
  weighting: 'examples' | 'uniform';
  privacy: { mode: PrivacyMode; record?: RecordPrivacyConfig; client?: ClientPrivacyConfig };
  aggregation: AggregationMode;
  evaluation: EvaluationConfig;
  /** Seed for reproducible local choices (data order); never used for privacy noise. */
  seed: string;
}

export function parseTaskConfig(json: string): TaskConfig {
  let value: TaskConfig;
  try {
    value = JSON.parse(json) as TaskConfig;
  } catch (error) {
    throw new Error(`task config: not JSON (${(error as Error).message})`);
  }
  const positive = (x: unknown, name: string) => {
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw new Error(`task config: ${name} must be a positive number`);
  };
  positive(value.localEpochs, 'localEpochs');
  positive(value.batchSize, 'batchSize');
  positive(value.learningRate, 'learningRate');
  if (!['off', 'record', 'client'].includes(value.privacy?.mode)) throw new Error('task config: privacy.mode must be off|record|client');
  if (value.privacy.mode === 'record') {
    const r = value.privacy.record;
    if (!r) throw new Error('task config: privacy.record is required in record mode');
    positive(r.clipNorm, 'privacy.record.clipNorm');
    positive(r.targetEpsilon, 'privacy.record.targetEpsilon');
    positive(r.delta, 'privacy.record.delta');
    positive(r.plannedRounds, 'privacy.record.plannedRounds');
  }
  if (value.privacy.mode === 'client') {
    const c = value.privacy.client;
    if (!c) throw new Error('task config: privacy.client is required in client mode');
    positive(c.updateClipNorm, 'privacy.client.updateClipNorm');
    positive(c.noiseMultiplier, 'privacy.client.noiseMultiplier');
  }
  if (!['plain', 'secagg', 'ckks'].includes(value.aggregation)) throw new Error('task config: aggregation must be plain|secagg|ckks');
  const evaluation = value.evaluation;
  if (!evaluation || typeof evaluation !== 'object') throw new Error('task config: evaluation is required');
  if (!Number.isInteger(evaluation.bins) || evaluation.bins < 1) throw new Error('task config: evaluation.bins must be a positive integer');
  positive(evaluation.logitRange, 'evaluation.logitRange');
  if (evaluation.every !== undefined && (!Number.isInteger(evaluation.every) || evaluation.every < 1)) throw new Error('task config: evaluation.every must be a positive integer');
  if (evaluation.private !== undefined) {
    if (value.privacy.mode !== 'record') throw new Error('task config: evaluation.private is only defined with privacy.mode record');
    positive(evaluation.private.epsilon, 'evaluation.private.epsilon');
    positive(evaluation.private.noiseSigma, 'evaluation.private.noiseSigma');
    if (evaluation.private.epsilon >= value.privacy.record!.targetEpsilon) throw new Error('task config: evaluation.private.epsilon must be below privacy.record.targetEpsilon (training needs a share too)');
    if (evaluation.bins % 2 !== 0) throw new Error('task config: evaluation.bins must be even under private evaluation (the threshold 0 lies on a bin edge)');
  }
  return value;
}
