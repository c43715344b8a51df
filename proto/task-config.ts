// What the coordinator tells an institution with each task (Task.config, the TaskConfig message of
// proto/dpfed/v1/federation.proto). Both sides use this one definition: the coordinator plans with it and
// sends it as that message (taskConfigMessage), the institution reads the decoded message with
// parseTaskConfig, which checks every field and names the one at fault.
import type { TaskConfigMsg } from './wire.ts';
import { taskConfigFromMessage } from './task-config-message.ts';

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
  /**
   * Public Poisson sampling rate q of DP-SGD: every example joins a step's batch with probability q. It is
   * a parameter of the plan, never derived from an institution's row count, so the event the institution
   * signs carries no count. The noisy gradient sum is divided by the plan's public batchSize.
   */
  sampleRate: number;
}

export interface ClientPrivacyConfig {
  /** L2 clip norm S of each institution's model update. */
  updateClipNorm: number;
  /** Noise multiplier z the coordinator calibrated: the sum receives noise of standard deviation z·S. */
  noiseMultiplier: number;
  /**
   * Probability q with which each institution joins a round, decided by its own secret coin
   * (node:crypto); the coordinator offers every round to every live admissible institution.
   */
  clientSampleRate: number;
  /** Target (ε, δ) of the federation over the planned rounds; each institution checks z against its own calibration. */
  targetEpsilon: number;
  delta: number;
  plannedRounds: number;
  accountant: 'rdp' | 'pld';
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
  /**
   * No evaluation at all: client-level DP without coordinator-held data. Its ledger accounts each
   * institution as a whole, and no evaluation mechanism is built at that level, so exact validation
   * figures would leave unprotected: nothing is evaluated instead (rounds commit without AUC).
   */
  none?: boolean;
  /**
   * Cross-site evaluation at the end of the run: after the last round commits, every institution scores
   * the final model on its own validation rows and releases that institution's own class histograms (not
   * a sum): exact with privacy off, through the private evaluation mechanism under record-level DP, where
   * it is one more planned evaluation release in each institution's ε plan (privacy/evaluation-mechanism.ts).
   * Not defined under client-level DP (the institutions do not evaluate there).
   */
  crossSite?: boolean;
  private?: {
    /** The run's evaluation share of the target ε, spread over the planned evaluations (and the cross-site release, when the run has one). */
    epsilon: number;
    /** Noise standard deviation per cell the coordinator asks the released sum to carry (plain: each institution's own). */
    noiseSigma: number;
  };
}

export interface TaskConfig {
  strategy: string;
  /** Local optimiser steps per round (public: the same for every institution, independent of its row count). */
  localSteps: number;
  /** L2 bound of every update: the institution clips to it, the coordinator enforces it (clips in plain aggregation). */
  maxUpdateNorm: number;
  /** Public cap on a declared example count used as a FedAvg weight. */
  weightCap: number;
  batchSize: number;
  learningRate: number;
  optimizer: 'sgd' | 'adam';
  /** FedProx proximal term coefficient; 0 disables it. */
  proximalMu: number;
  /** Weight of an update in the mean: its declared public example count capped at weightCap, or 1 (client-level DP needs uniform). */
  weighting: 'examples' | 'uniform';
  privacy: { mode: PrivacyMode; record?: RecordPrivacyConfig; client?: ClientPrivacyConfig };
  aggregation: AggregationMode;
  evaluation: EvaluationConfig;
  /** Seed for reproducible local choices (data order); never used for privacy noise. */
  seed: string;
  /**
   * Public per-class weights of the per-example loss (absent: both 1). The weight scales an example's
   * gradient before it is clipped, so the clip norm (the sensitivity) and the DP accounting are unchanged.
   */
  classWeight?: ClassWeight;
  /** Decoupled L2 weight decay λ: each optimiser step also takes params −= lr·λ·params (data-independent). */
  weightDecay?: number;
  /** Learning rate over the rounds (absent: constant). */
  lrSchedule?: LrSchedule;
}

export interface ClassWeight {
  positive: number;
  negative: number;
}

/**
 * The learning rate of round r (1-based) out of R planned: constant; cosine lr·½(1 + cos(π·(r−1)/R));
 * step lr·γ^⌊(r−1)/K⌋.
 */
export type LrSchedule = { kind: 'constant' } | { kind: 'cosine'; rounds: number } | { kind: 'step'; every: number; gamma: number };

/** The learning rate a round trains with under the schedule (round 0 or absent: the first round's). */
export function scheduledLearningRate(base: number, schedule: LrSchedule | undefined, round: number | undefined): number {
  const r = Math.max(1, round ?? 1);
  if (!schedule || schedule.kind === 'constant') return base;
  if (schedule.kind === 'cosine') return base * 0.5 * (1 + Math.cos((Math.PI * Math.min(r - 1, schedule.rounds)) / schedule.rounds));
  return base * schedule.gamma ** Math.floor((r - 1) / schedule.every);
}

/** The domain configuration of a decoded TaskConfig message, checked; throws an Error naming the field at fault. */
export function parseTaskConfig(message: TaskConfigMsg | undefined): TaskConfig {
  if (!message) throw new Error('task config: config is required in a TRAIN or EVALUATE task');
  return checkTaskConfig(taskConfigFromMessage(message));
}

/** Checks ranges and required fields of a configuration (as converted from the message: an unset enum is undefined). */
export function checkTaskConfig(value: TaskConfig): TaskConfig {
  if (typeof value.strategy !== 'string' || value.strategy === '') throw new Error('task config: strategy is required');
  const positive = (x: unknown, name: string) => {
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw new Error(`task config: ${name} must be a positive number`);
  };
  positive(value.batchSize, 'batchSize');
  positive(value.learningRate, 'learningRate');
  positive(value.localSteps, 'localSteps');
  positive(value.maxUpdateNorm, 'maxUpdateNorm');
  positive(value.weightCap, 'weightCap');
  if (!['sgd', 'adam'].includes(value.optimizer)) throw new Error('task config: optimizer must be sgd|adam');
  if (!['examples', 'uniform'].includes(value.weighting)) throw new Error('task config: weighting must be examples|uniform');
  if (!(typeof value.proximalMu === 'number' && Number.isFinite(value.proximalMu) && value.proximalMu >= 0)) throw new Error('task config: proximalMu must be a number >= 0');
  if (!value.privacy) throw new Error('task config: privacy is required');
  if (!['off', 'record', 'client'].includes(value.privacy.mode)) throw new Error('task config: privacy.mode must be off|record|client');
  if (value.privacy.mode === 'record') {
    const r = value.privacy.record;
    if (!r) throw new Error('task config: privacy.record is required in record mode');
    positive(r.clipNorm, 'privacy.record.clipNorm');
    positive(r.targetEpsilon, 'privacy.record.targetEpsilon');
    positive(r.delta, 'privacy.record.delta');
    positive(r.plannedRounds, 'privacy.record.plannedRounds');
    if (!(r.delta < 1)) throw new Error('task config: privacy.record.delta must be in (0, 1)');
    if (!['rdp', 'pld'].includes(r.accountant)) throw new Error('task config: privacy.record.accountant must be rdp|pld');
    if (!(r.sampleRate > 0 && r.sampleRate <= 1)) throw new Error('task config: privacy.record.sampleRate must be in (0, 1]');
  }
  if (value.privacy.mode === 'client') {
    const c = value.privacy.client;
    if (!c) throw new Error('task config: privacy.client is required in client mode');
    positive(c.updateClipNorm, 'privacy.client.updateClipNorm');
    positive(c.noiseMultiplier, 'privacy.client.noiseMultiplier');
    positive(c.targetEpsilon, 'privacy.client.targetEpsilon');
    positive(c.plannedRounds, 'privacy.client.plannedRounds');
    positive(c.delta, 'privacy.client.delta');
    if (!(c.delta < 1)) throw new Error('task config: privacy.client.delta must be in (0, 1)');
    if (!['rdp', 'pld'].includes(c.accountant)) throw new Error('task config: privacy.client.accountant must be rdp|pld');
    if (!(c.clientSampleRate > 0 && c.clientSampleRate <= 1)) throw new Error('task config: privacy.client.clientSampleRate must be in (0, 1]');
  }
  if (value.classWeight !== undefined) {
    positive(value.classWeight?.positive, 'classWeight.positive');
    positive(value.classWeight?.negative, 'classWeight.negative');
  }
  if (value.weightDecay !== undefined && !(typeof value.weightDecay === 'number' && value.weightDecay >= 0 && Number.isFinite(value.weightDecay)))
    throw new Error('task config: weightDecay must be a number >= 0');
  const schedule = value.lrSchedule;
  if (schedule !== undefined) {
    if (schedule?.kind === 'cosine') positive(schedule.rounds, 'lrSchedule.rounds');
    else if (schedule?.kind === 'step') {
      if (!Number.isInteger(schedule.every) || schedule.every < 1) throw new Error('task config: lrSchedule.every must be a positive integer');
      if (!(schedule.gamma > 0 && schedule.gamma <= 1)) throw new Error('task config: lrSchedule.gamma must be in (0, 1]');
    } else if (schedule?.kind !== 'constant') throw new Error('task config: lrSchedule.kind must be constant|cosine|step');
  }
  if (!['plain', 'secagg', 'ckks'].includes(value.aggregation)) throw new Error('task config: aggregation must be plain|secagg|ckks');
  const evaluation = value.evaluation;
  if (!evaluation || typeof evaluation !== 'object') throw new Error('task config: evaluation is required');
  if (!Number.isInteger(evaluation.bins) || evaluation.bins < 1) throw new Error('task config: evaluation.bins must be a positive integer');
  positive(evaluation.logitRange, 'evaluation.logitRange');
  if (evaluation.every !== undefined && (!Number.isInteger(evaluation.every) || evaluation.every < 1)) throw new Error('task config: evaluation.every must be a positive integer');
  if (evaluation.crossSite !== undefined && typeof evaluation.crossSite !== 'boolean') throw new Error('task config: evaluation.crossSite must be a boolean');
  if (evaluation.crossSite && value.privacy.mode === 'client') throw new Error('task config: evaluation.crossSite is not defined under privacy.mode client (the institutions do not evaluate)');
  if (evaluation.crossSite && value.privacy.mode === 'record' && !evaluation.private)
    throw new Error('task config: evaluation.crossSite under privacy.mode record needs evaluation.private (its share of epsilon)');
  if (evaluation.private !== undefined) {
    if (value.privacy.mode !== 'record') throw new Error('task config: evaluation.private is only defined with privacy.mode record');
    positive(evaluation.private.epsilon, 'evaluation.private.epsilon');
    positive(evaluation.private.noiseSigma, 'evaluation.private.noiseSigma');
    if (evaluation.private.epsilon >= value.privacy.record!.targetEpsilon)
      throw new Error('task config: evaluation.private.epsilon must be below privacy.record.targetEpsilon (training needs a share too)');
    if (evaluation.bins % 2 !== 0) throw new Error('task config: evaluation.bins must be even under private evaluation (the threshold 0 lies on a bin edge)');
  }
  return value;
}
