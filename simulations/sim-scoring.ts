// Scores a model (flat parameters) on rows the way `dpfed evaluate` does: exact, sort-based AUC and
// PR-AUC (average precision) and the accuracy at probability 0.5 (client-sdk/classification-metrics.ts).
// A figure that is undefined on the rows (one class only) is NaN.
import type { Dataset } from '@dpfed/client/csv-dataset';
import { averagePrecision, rocAuc, thresholdMetrics } from '@dpfed/client/classification-metrics';
import type { LocalTrainer } from '@dpfed/client/local-trainer';

export interface Scores {
  auc: number;
  prAuc: number;
  accuracy: number;
}

export function scoreModel(trainer: LocalTrainer, params: Float32Array, rows: Dataset): Scores {
  return scoreLogits(trainer.logits(params, rows), rows);
}

/** The scores of a model whose logits on `rows` (row order) are `modelLogits` (not modified). */
export function scoreLogits(modelLogits: Float32Array, rows: Dataset): Scores {
  const logits = Float32Array.from(modelLogits);
  // a diverged model's NaN logits score as ties (the metrics need finite scores); ±Infinity keeps its order
  for (let i = 0; i < logits.length; i++) if (!Number.isFinite(logits[i])) logits[i] = Number.isNaN(logits[i]) ? 0 : Math.sign(logits[i]) * 3e38;
  const probabilities = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) probabilities[i] = 1 / (1 + Math.exp(-logits[i]));
  return {
    auc: rocAuc(logits, rows.y) ?? Number.NaN,
    prAuc: averagePrecision(logits, rows.y) ?? Number.NaN,
    accuracy: thresholdMetrics(probabilities, rows.y, 0.5).accuracy,
  };
}
