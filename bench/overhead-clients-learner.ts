// The learner of the round-overhead bench: no training at all, so a round's time is the protocol's.
import type { EvalOutcome, Learner, TaskContext, TrainOutcome } from '@dpfed/client/learner';
import { emptyHistogram } from '@dpfed/privacy/auc-histogram';

/**
 * Returns a copy of global with a tiny change to every 64th parameter at once, and a fixed histogram: the
 * round does no learning work (a copy, not a loop over every parameter, which on a small server's memory
 * costs about as much again as the copy). The copy goes into one of two arrays used in turn (the client
 * keeps a returned array only until the next round's training: TrainOutcome.params), so the bench does not
 * time fresh memory for a model per institution and round either. The update still travels, is validated
 * and aggregated in full.
 */
export class NoTrainingLearner implements Learner {
  readonly numTrainExamples = 1000;
  private readonly outputs: Float32Array[] = [];
  private turn = 0;

  async train(global: Float32Array, _task: TaskContext): Promise<TrainOutcome> {
    this.turn = 1 - this.turn;
    if (this.outputs[this.turn]?.length !== global.length) this.outputs[this.turn] = new Float32Array(global.length);
    const params = this.outputs[this.turn];
    params.set(global);
    for (let i = 0; i < params.length; i += 64) params[i] += 1e-4;
    return { params, numExamples: this.numTrainExamples, metrics: { loss: 0.1 } };
  }

  async evaluate(_model: Float32Array, task: TaskContext): Promise<EvalOutcome> {
    const { bins, logitRange } = task.config.evaluation;
    const histogram = emptyHistogram(bins, logitRange);
    histogram.positive[Math.floor(bins * 0.7)] = 10;
    histogram.negative[Math.floor(bins * 0.3)] = 190;
    return { histogram, numExamples: 200, loss: 0.1, accuracy: 0.95 };
  }
}
