// A coordinator's candidate evaluator over rows held in this process (the `--evaluation-data` mode of
// coordinator/candidate-evaluator.ts), with the same network code the institutions run: the common test
// rows of a simulated federation, or the operator's own evaluation file (cli/evaluation-data.ts).
import type { CandidateEvaluator } from '@dpfed/coordinator/candidate-evaluator';
import type { Dataset } from '@dpfed/client/csv-dataset';
import { LocalTrainer } from '@dpfed/client/local-trainer';
import type { ModelSpec } from '@dpfed/proto/model-spec';
import { scoreLogits, scoreModel, type Scores } from './sim-scoring.ts';

type Tf = typeof import('@dpfed/client/tfjs');

export interface RowsEvaluator extends CandidateEvaluator {
  /**
   * Exact AUC, PR-AUC and accuracy of `params` on the rows (sim-scoring.ts): from the logits of the last
   * candidate evaluated when `params` are that candidate's (a committed model is the candidate the round
   * evaluated), else computed.
   */
  scores(params: Float32Array): Scores;
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/** Scores each candidate on `rows`; `source` names them in the run's records, `what` in its errors. */
export function rowsEvaluator(tf: Tf, spec: ModelSpec, rows: Dataset, source: string, what: string): RowsEvaluator {
  const trainer = new LocalTrainer(tf, spec, { noiseWorker: false });
  let last: { params: Float32Array; logits: Float32Array } | null = null;
  return {
    source,
    async evaluate(model, modelSpec, evaluation) {
      if (JSON.stringify(modelSpec) !== JSON.stringify(spec)) throw new Error(`${what}: the run's model differs from the one the evaluator was built for`);
      const r = trainer.evaluate(model, rows, { bins: evaluation.bins, logitRange: evaluation.logitRange });
      last = { params: Float32Array.from(model), logits: r.logits };
      return { histogram: r.histogram, lossSum: r.loss * r.n, correct: Math.round(r.accuracy * r.n), n: r.n };
    },
    scores(params) {
      return last && sameValues(last.params, params) ? scoreLogits(last.logits, rows) : scoreModel(trainer, params, rows);
    },
    close() {
      trainer.dispose();
      last = null;
    },
  };
}

/** The evaluator of a simulated federation: its common test rows. */
export function testRowsEvaluator(tf: Tf, spec: ModelSpec, rows: Dataset): RowsEvaluator {
  return rowsEvaluator(tf, spec, rows, "the simulation's common test rows", 'test rows');
}
