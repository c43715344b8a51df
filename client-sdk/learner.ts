// What an institution plugs into the FederationClient: local training and local evaluation on data that
// never leaves it. TfjsLearner (client-sdk/tfjs-learner.ts) is the default; a bank may bring its own.
import type { ScoreHistogram } from '@dpfed/privacy/auc-histogram';
import type { DataSchema } from '@dpfed/proto/data-schema';
import type { ModelSpec } from '@dpfed/proto/model-spec';
import type { TaskConfig } from '@dpfed/proto/task-config';

export interface TaskContext {
  runId: string;
  round: number;
  modelVersion: number;
  spec: ModelSpec;
  config: TaskConfig;
  /** The coordinator's id of the exact model of this task ('' when none). */
  modelId?: string;
}

/** The mechanism a record-level DP training run executed, as the institution accounts it. */
export interface MechanismReport {
  sampleRate: number;
  /** The noise multiplier to account: after the discretisation's charge (privacy/discretisation-cost.ts) when the noise was snapped. */
  noiseMultiplier: number;
  steps: number;
  clipNorm: number;
  /** Total-variation distance of the run's noise draws from exact ones (the sampler's cut tail), charged to delta; 0 or absent when none. */
  samplerTailMass?: number;
}

/** What a round will run, before it runs: for the budget check and the noise calibration. */
export interface PlannedMechanism {
  sampleRate: number;
  steps: number;
  /** Values in each noisy vector (the model's parameter count), when the noise is snapped to a grid that depends on it. */
  dimension?: number;
}

export interface TrainOutcome {
  /**
   * The new local parameters, flat, in parameter-spec order. The client turns them into the update in
   * place (trained − global) and keeps that as the round's release until the next round's training
   * starts (a re-issued task of the same round re-sends it), so a learner may return an array again once
   * it has returned another one after it.
   */
  params: Float32Array;
  /** Examples the learner holds; stays inside the institution (never sent: weights come from declared public sizes). */
  numExamples: number;
  metrics: Record<string, number>;
  /** Present when record-level DP-SGD ran. */
  mechanism?: MechanismReport;
}

export interface EvalOutcome {
  histogram: ScoreHistogram;
  numExamples: number;
  loss: number;
  accuracy: number;
  /** The exact AUC on the validation rows (sort-based), for the institution's own log; never sent. */
  auc?: number;
  /** The model's logits on the validation rows with their labels, for the institution's own metrics (client-sdk/local-metrics.ts); never sent. */
  validation?: ValidationScores;
}

/** A model's logits on the institution's validation rows, in row order, with the rows' 0/1 labels. */
export interface ValidationScores {
  logits: Float32Array;
  labels: ArrayLike<number>;
}

export interface Learner {
  /** `global` and `model` are shared with the client's model cache: read them, never modify them. */
  train(global: Float32Array, task: TaskContext, noiseMultiplier: number | null): Promise<TrainOutcome>;
  evaluate(model: Float32Array, task: TaskContext): Promise<EvalOutcome>;
  /**
   * The model's logits on the validation rows (for the institution's own metrics of a model it trains
   * from without evaluating it; client-sdk/local-metrics.ts). Optional: a learner without it gets local
   * metrics only of the models it evaluates, and only when its evaluate returns `validation`.
   */
  validationScores?(model: Float32Array, task: TaskContext): Promise<ValidationScores>;
  /** Local DP-SGD steps and sample rate a round of this task would take (for budget projection). */
  plannedMechanism?(task: TaskContext): PlannedMechanism | null;
  /**
   * Before the run's first round (client-sdk/run-preparation.ts): make ready what a round of `task` will
   * need (the model, the noise source of `noiseMultiplier`), so the round does not pay for it. Releases
   * nothing and changes no state a round reads. Optional.
   */
  prepare?(task: TaskContext, noiseMultiplier: number | null): void;
  /**
   * SHA-256 (64 hex characters) of the public data schema this learner's data went through
   * (proto/data-schema.ts schemaHash), or null / absent when there is none. Registration signs it and
   * sends it as RegisterRequest.schema_hash.
   */
  readonly schemaHash?: string | null;
  /** The public data schema itself (when the learner has it): compared with the run's before registering. */
  readonly schema?: DataSchema | null;
}
