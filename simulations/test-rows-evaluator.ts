// A coordinator's candidate evaluator over rows held in this process (the `--evaluation-data` mode of
// coordinator/candidate-evaluator.ts), with the same network code the institutions run: the common test
// rows of a simulated federation, or the operator's own evaluation file (cli/evaluation-data.ts).
import type { CandidateEvaluator } from '@dpfed/coordinator/candidate-evaluator';
import type { Dataset } from '@dpfed/client/csv-dataset';
import { LocalTrainer } from '@dpfed/client/local-trainer';
import type { ModelSpec } from '@dpfed/proto/model-spec';

type Tf = typeof import('@dpfed/client/tfjs');

/** Scores each candidate on `rows`; `source` names them in the run's records, `what` in its errors. */
export function rowsEvaluator(tf: Tf, spec: ModelSpec, rows: Dataset, source: string, what: string): CandidateEvaluator {
  const trainer = new LocalTrainer(tf, spec, { noiseWorker: false });
  return {
    source,
    async evaluate(model, modelSpec, evaluation) {
      if (JSON.stringify(modelSpec) !== JSON.stringify(spec)) throw new Error(`${what}: the run's model differs from the one the evaluator was built for`);
      const r = trainer.evaluate(model, rows, { bins: evaluation.bins, logitRange: evaluation.logitRange });
      return { histogram: r.histogram, lossSum: r.loss * r.n, correct: Math.round(r.accuracy * r.n), n: r.n };
    },
    close() {
      trainer.dispose();
    },
  };
}

/** The evaluator of a simulated federation: its common test rows. */
export function testRowsEvaluator(tf: Tf, spec: ModelSpec, rows: Dataset): CandidateEvaluator {
  return rowsEvaluator(tf, spec, rows, "the simulation's common test rows", 'test rows');
}
