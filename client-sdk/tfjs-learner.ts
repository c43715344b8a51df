// The default Learner: TensorFlow.js training (LocalTrainer, DP-SGD in record mode) and evaluation on the
// institution's own standardised train/validation splits.
import type { Dataset } from './csv-dataset.ts';
import type { EvalOutcome, Learner, TaskContext, TrainOutcome } from './learner.ts';
import { LocalTrainer } from './local-trainer.ts';

type Tf = typeof import('@tensorflow/tfjs');

export class TfjsLearner implements Learner {
  private trainer: { key: string; trainer: LocalTrainer } | null = null;

  constructor(
    private readonly tf: Tf,
    private readonly train_: Dataset,
    private readonly validation: Dataset,
  ) {}

  get numTrainExamples(): number {
    return this.train_.n;
  }

  private trainerFor(task: TaskContext): LocalTrainer {
    const key = JSON.stringify(task.spec);
    if (this.trainer?.key !== key) {
      this.trainer?.trainer.dispose();
      if (task.spec.inputDim !== this.train_.dim) {
        throw new Error(`the model expects ${task.spec.inputDim} features, this institution's data has ${this.train_.dim}`);
      }
      this.trainer = { key, trainer: new LocalTrainer(this.tf, task.spec) };
    }
    return this.trainer.trainer;
  }

  plannedMechanism(task: TaskContext): { sampleRate: number; steps: number } | null {
    if (task.config.privacy.mode !== 'record') return null;
    const sampleRate = Math.min(1, task.config.batchSize / this.train_.n);
    return { sampleRate, steps: Math.max(1, Math.round(task.config.localEpochs / sampleRate)) };
  }

  async train(global: Float32Array, task: TaskContext, noiseMultiplier: number | null): Promise<TrainOutcome> {
    const result = this.trainerFor(task).train(global, this.train_, { config: task.config, noiseMultiplier: noiseMultiplier ?? undefined, round: task.round });
    return {
      params: result.params,
      numExamples: result.numExamples,
      metrics: { loss: result.loss, steps: result.steps },
      mechanism:
        task.config.privacy.mode === 'record'
          ? { sampleRate: result.sampleRate, noiseMultiplier: result.noiseMultiplier, steps: result.steps, clipNorm: result.clipNorm }
          : undefined,
    };
  }

  async evaluate(model: Float32Array, task: TaskContext): Promise<EvalOutcome> {
    const { bins, logitRange } = task.config.evaluation;
    const r = this.trainerFor(task).evaluate(model, this.validation, { bins, logitRange });
    return { histogram: r.histogram, numExamples: r.n, loss: r.loss, accuracy: r.accuracy, auc: r.auc };
  }
}
