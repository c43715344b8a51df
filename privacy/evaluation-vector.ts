// An institution's evaluation as one integer vector, so it can go through the secure sum like an update:
// [positive histogram (bins), negative histogram (bins), Σ loss · 1000 (rounded), correct predictions, n].
// Sums of these vectors decode to the federation's histogram, mean loss and accuracy; no institution's
// own figures are seen.
import type { ScoreHistogram } from './auc-histogram.ts';

export const LOSS_SCALE = 1000;

export interface EvaluationTotals {
  histogram: ScoreHistogram;
  lossSum: number;
  correct: number;
  n: number;
}

export function evaluationVectorLength(bins: number): number {
  return 2 * bins + 3;
}

export function encodeEvaluation(histogram: ScoreHistogram, loss: number, accuracy: number, n: number): Uint32Array {
  if (!Number.isFinite(loss) || loss < 0) throw new Error(`evaluation: loss must be a finite non-negative number, got ${loss}`);
  const out = new Uint32Array(evaluationVectorLength(histogram.bins));
  out.set(histogram.positive, 0);
  out.set(histogram.negative, histogram.bins);
  out[2 * histogram.bins] = Math.round(loss * n * LOSS_SCALE);
  out[2 * histogram.bins + 1] = Math.round(accuracy * n);
  out[2 * histogram.bins + 2] = n;
  return out;
}

/** The inverse of encodeEvaluation, for a single vector or a sum of them. */
export function decodeEvaluation(vector: Uint32Array, bins: number, logitRange: number): EvaluationTotals {
  if (vector.length !== evaluationVectorLength(bins)) throw new Error(`evaluation: vector length ${vector.length}, expected ${evaluationVectorLength(bins)}`);
  return {
    histogram: { bins, logitRange, positive: vector.slice(0, bins), negative: vector.slice(bins, 2 * bins) },
    lossSum: vector[2 * bins] / LOSS_SCALE,
    correct: vector[2 * bins + 1],
    n: vector[2 * bins + 2],
  };
}
