// The coordinator's candidate evaluator of a simulated federation: it scores each round's candidate on
// the common test rows (the `--evaluation-data` mode of coordinator/candidate-evaluator.ts), with the
// same network code the institutions run.
import type { CandidateEvaluator } from '@dpfed/coordinator/candidate-evaluator';
import type { Dataset } from '@dpfed/client/csv-dataset';
import { LocalTrainer } from '@dpfed/client/local-trainer';
import type { ModelSpec } from '@dpfed/proto/model-spec';

type Tf = typeof import('@dpfed/client/tfjs');

export function testRowsEvaluator(tf: Tf, spec: ModelSpec, rows: Dataset): CandidateEvaluator {
  const trainer = new LocalTrainer(tf, spec, { noiseWorker: false });
  return {
    source: "the simulation's common test rows",
    async evaluate(model, modelSpec, evaluation) {
      if (JSON.stringify(modelSpec) !== JSON.stringify(spec)) throw new Error("test rows: the run's model differs from the one the evaluator was built for");
      const r = trainer.evaluate(model, rows, { bins: evaluation.bins, logitRange: evaluation.logitRange });
      return { histogram: r.histogram, lossSum: r.loss * r.n, correct: Math.round(r.accuracy * r.n), n: r.n };
    },
    close() {
      trainer.dispose();
    },
  };
}
