// `--evaluation-data FILE`: the coordinator's own labelled rows, scored with the same network code the
// institutions run (client-sdk/local-trainer.ts). The features are standardised with the file's own
// mean and standard deviation, as each institution standardises with its own statistics.
import type { CandidateEvaluator } from '../coordinator/candidate-evaluator.ts';
import { loadCsv } from '../client-sdk/csv-dataset.ts';
import { LocalTrainer } from '../client-sdk/local-trainer.ts';
import { fitStandardiser, standardise } from '../client-sdk/standardiser.ts';
import { selectBackend } from '../client-sdk/tf-backend.ts';
import type { ModelSpec } from '../proto/model-spec.ts';
import { UsageError } from './flags.ts';

/** Loads the file (refusing it with a UsageError naming the flag) and returns an evaluator for `spec`. */
export async function evaluationDataEvaluator(path: string, labelColumn: string, spec: ModelSpec): Promise<CandidateEvaluator> {
  let data;
  try {
    data = loadCsv(path, labelColumn);
  } catch (error) {
    throw new UsageError(`--evaluation-data: ${(error as Error).message}`);
  }
  if (data.dim !== spec.inputDim) throw new UsageError(`--evaluation-data: ${path} has ${data.dim} feature columns, the model expects ${spec.inputDim} (--features)`);
  let positives = 0;
  for (let i = 0; i < data.n; i++) positives += data.y[i];
  if (positives === 0 || positives === data.n) throw new UsageError(`--evaluation-data: ${path} needs rows of both classes in column "${labelColumn}" for an AUC`);
  const rows = standardise(data, fitStandardiser(data));
  const { tf } = await selectBackend('auto');
  const trainer = new LocalTrainer(tf, spec, { noiseWorker: false });
  return {
    source: path,
    async evaluate(model, modelSpec, evaluation) {
      if (JSON.stringify(modelSpec) !== JSON.stringify(spec)) throw new Error('evaluation data: the run\'s model differs from the one the evaluator was built for');
      const r = trainer.evaluate(model, rows, { bins: evaluation.bins, logitRange: evaluation.logitRange });
      return { histogram: r.histogram, lossSum: r.loss * r.n, correct: Math.round(r.accuracy * r.n), n: r.n };
    },
    close() {
      trainer.dispose();
    },
  };
}
