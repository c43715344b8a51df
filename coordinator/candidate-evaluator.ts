// Scoring candidates on data the coordinator holds itself (`--evaluation-data`), Flower's server-side
// evaluate: the round's candidate is scored by the operator's own code on the operator's own rows, so no
// EVALUATE task goes to institutions and their validation rows are not used (they spend no ε on it). The
// figures are exact: they are about the coordinator's data, which is not the institutions' to protect.
import type { EvaluationTotals } from '@dpfed/privacy/evaluation-vector';
import type { ModelSpec } from '@dpfed/proto/model-spec';
import type { EvaluationConfig } from '@dpfed/proto/task-config';

export interface CandidateEvaluator {
  /** Where the rows come from (a file path), for messages. */
  readonly source: string;
  /** Exact histograms per class, summed loss, correct count and rows of `model` (flat, spec order) on the coordinator's data. */
  evaluate(model: Float32Array, spec: ModelSpec, evaluation: EvaluationConfig): Promise<EvaluationTotals>;
  /** Frees what the evaluator holds (e.g. its network). */
  close?(): void;
}
