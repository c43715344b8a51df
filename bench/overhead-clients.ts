// The institutions of the round-overhead bench, in their own process: `node --import tsx
// bench/overhead-clients.ts HOST:PORT COUNT`. Each runs the real FederationClient with a learner that does
// no training, until the coordinator says DONE.
import { FederationClient } from '../client-sdk/federation-client.ts';
import type { EvalOutcome, Learner, TaskContext, TrainOutcome } from '../client-sdk/learner.ts';
import { emptyHistogram } from '../privacy/auc-histogram.ts';
import { generateIdentity } from '../privacy/identity.ts';

/** Returns global + a tiny delta at once, and a fixed histogram: the round does no learning work. */
export class NoTrainingLearner implements Learner {
  readonly numTrainExamples = 1000;

  async train(global: Float32Array, _task: TaskContext): Promise<TrainOutcome> {
    const params = new Float32Array(global.length);
    for (let i = 0; i < global.length; i++) params[i] = global[i] + 1e-4;
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


const [address, count] = process.argv.slice(2);
if (!address || !(Number(count) > 0)) {
  process.stderr.write('usage: node --import tsx bench/overhead-clients.ts HOST:PORT COUNT\n');
  process.exit(2);
}
const clients = Array.from({ length: Number(count) }, (_, k) => new FederationClient({
  coordinator: address,
  institutionId: `bank-${k + 1}`,
  identity: generateIdentity(),
  learner: new NoTrainingLearner(),
}));
try {
  await Promise.all(clients.map((c) => c.run()));
} finally {
  for (const c of clients) c.close();
}
