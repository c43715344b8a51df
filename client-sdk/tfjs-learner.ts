// The default Learner: TensorFlow.js training (LocalTrainer, DP-SGD in record mode) and evaluation on the
// institution's own train/validation splits, preprocessed by the public data schema.
//
// The learner carries the schema its data went through (`schema`, `schemaHash`) so that registration can
// tell the coordinator which preprocessing this institution uses. A schema inferred from the data itself
// (`schemaInferred`) is refused for any task with privacy record or client: its bounds are a statistic
// of the rows, so the privacy claim would not hold.
import { featureColumns, schemaHash, type DataSchema } from '@dpfed/proto/data-schema';
import type { Dataset } from './csv-dataset.ts';
import type { EvalOutcome, Learner, PlannedMechanism, TaskContext, TrainOutcome, ValidationScores } from './learner.ts';
import { LocalTrainer, type LocalTrainerOptions } from './local-trainer.ts';
import type { NoisePoolStats } from '@dpfed/privacy/noise-pool';

type Tf = typeof import('./tfjs.ts');

export interface LearnerSchemaOptions {
  /** The public schema the data was preprocessed with. */
  schema?: DataSchema;
  /** True when the schema was inferred from the data (allowed with privacy off only). */
  schemaInferred?: boolean;
  /**
   * Options of the local trainer: `noiseWorker: false` draws DP noise in the training thread instead of a
   * worker thread of its own (for many learners in one process, e.g. a simulation, where a thread each costs more than it saves).
   */
  trainer?: LocalTrainerOptions;
}

/** A task asked for privacy while the schema was inferred from the data. */
export class SchemaRequiredError extends Error {}

export class TfjsLearner implements Learner {
  private trainer: { key: string; trainer: LocalTrainer } | null = null;
  /** The schema the data went through (null when the caller preprocessed the data itself). */
  readonly schema: DataSchema | null;
  /** SHA-256 of the schema's canonical encoding (proto/data-schema.ts schemaHash), or null. */
  readonly schemaHash: string | null;
  readonly schemaInferred: boolean;
  private readonly trainerOptions: LocalTrainerOptions;

  constructor(
    private readonly tf: Tf,
    private readonly train_: Dataset,
    private readonly validation: Dataset,
    options: LearnerSchemaOptions = {},
  ) {
    this.schema = options.schema ?? null;
    this.schemaHash = options.schema ? schemaHash(options.schema) : null;
    this.schemaInferred = Boolean(options.schemaInferred);
    this.trainerOptions = options.trainer ?? {};
    if (this.schema && featureColumns(this.schema).length !== train_.dim) {
      throw new Error(`the schema declares ${featureColumns(this.schema).length} features, the training data has ${train_.dim}`);
    }
  }

  /** The number of model inputs (the schema's feature columns). */
  get featureCount(): number {
    return this.train_.dim;
  }

  private checkPrivacy(task: TaskContext): void {
    if (this.schemaInferred && task.config.privacy.mode !== 'off') {
      throw new SchemaRequiredError(
        `this run uses privacy ${task.config.privacy.mode}: a public data schema is required (--schema FILE); ` +
          "the schema in use was inferred from this institution's own rows, whose bounds are not public. " +
          'Draft one with `dpfed schema infer --data FILE --label-column COL --out schema.json`, review its bounds and make them public.',
      );
    }
  }

  get numTrainExamples(): number {
    return this.train_.n;
  }

  private trainerFor(task: TaskContext): LocalTrainer {
    this.checkPrivacy(task);
    const key = JSON.stringify(task.spec);
    if (this.trainer?.key !== key) {
      this.trainer?.trainer.dispose();
      if (task.spec.inputDim !== this.train_.dim) {
        throw new Error(`the model expects ${task.spec.inputDim} features, this institution's ${this.schema ? 'schema declares' : 'data has'} ${this.train_.dim}`);
      }
      this.trainer = { key, trainer: new LocalTrainer(this.tf, task.spec, this.trainerOptions) };
    }
    return this.trainer.trainer;
  }

  plannedMechanism(task: TaskContext): PlannedMechanism | null {
    this.checkPrivacy(task);
    if (task.config.privacy.mode !== 'record') return null;
    // Both are public parameters of the plan: the institution's row count shapes neither.
    return { sampleRate: task.config.privacy.record!.sampleRate, steps: task.config.localSteps, dimension: this.trainerFor(task).network.size };
  }

  /** Where the DP noise of the rounds so far came from (null before the first private round or its preparation). */
  get noiseStats(): NoisePoolStats | null {
    return this.trainer?.trainer.noisePool?.stats ?? null;
  }

  prepare(task: TaskContext, noiseMultiplier: number | null): void {
    this.trainerFor(task).prepare(this.train_, { config: task.config, noiseMultiplier: noiseMultiplier ?? undefined, round: task.round });
  }

  async train(global: Float32Array, task: TaskContext, noiseMultiplier: number | null): Promise<TrainOutcome> {
    const result = this.trainerFor(task).train(global, this.train_, { config: task.config, noiseMultiplier: noiseMultiplier ?? undefined, round: task.round });
    return {
      params: result.params,
      numExamples: result.numExamples,
      metrics: { loss: result.loss, steps: result.steps },
      mechanism:
        task.config.privacy.mode === 'record'
          ? { sampleRate: result.sampleRate, noiseMultiplier: result.chargedNoiseMultiplier, steps: result.steps, clipNorm: result.clipNorm, samplerTailMass: result.samplerTailMass }
          : undefined,
    };
  }

  /** Frees the trainer's tensors and stops its noise worker; a later task builds a fresh trainer. */
  dispose(): void {
    this.trainer?.trainer.dispose();
    this.trainer = null;
  }

  async evaluate(model: Float32Array, task: TaskContext): Promise<EvalOutcome> {
    const { bins, logitRange } = task.config.evaluation;
    const r = this.trainerFor(task).evaluate(model, this.validation, { bins, logitRange });
    return { histogram: r.histogram, numExamples: r.n, loss: r.loss, accuracy: r.accuracy, auc: r.auc, validation: { logits: r.logits, labels: this.validation.y } };
  }

  async validationScores(model: Float32Array, task: TaskContext): Promise<ValidationScores> {
    if (this.validation.n === 0) return { logits: new Float32Array(0), labels: this.validation.y };
    return { logits: this.trainerFor(task).logits(model, this.validation), labels: this.validation.y };
  }
}
