// An institution's evaluation as one integer vector, so it can go through the secure sum like an update:
// [positive histogram (bins), negative histogram (bins), Σ loss · 1000 (rounded), correct predictions, n].
// Sums of these vectors decode to the federation's histogram, mean loss and accuracy; no institution's
// own figures are seen. That exact form is used only with privacy off (nothing is claimed then).
//
// A private evaluation (privacy/evaluation-mechanism.ts) releases only the two class histograms, noisy;
// decodeNoisyHistograms reads them (or their sum) back as signed counts, and totalsFromNoisyHistograms
// derives approximate loss and accuracy from them.
import type { ScoreHistogram } from './auc-histogram.ts';

export const LOSS_SCALE = 1000;

export interface EvaluationTotals {
  histogram: ScoreHistogram;
  lossSum: number;
  correct: number;
  n: number;
  /** Private evaluation: standard deviation of the noise in every histogram cell of the sum (absent: exact). */
  noiseSigma?: number;
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

/** The two class histograms of a private evaluation as the coordinator receives them: noisy, possibly negative. */
export interface NoisyHistograms {
  bins: number;
  logitRange: number;
  positive: Float64Array;
  negative: Float64Array;
}

/**
 * A released histogram vector (one institution's, or a sum of them mod 2^32) read as signed counts:
 * [positive (bins), negative (bins)], each word in two's complement (noise can make a cell negative).
 */
export function decodeNoisyHistograms(vector: Uint32Array, bins: number, logitRange: number): NoisyHistograms {
  if (vector.length !== 2 * bins) throw new Error(`evaluation: noisy histogram vector length ${vector.length}, expected ${2 * bins}`);
  const signed = new Int32Array(vector.buffer, vector.byteOffset, vector.length);
  return { bins, logitRange, positive: Float64Array.from(signed.subarray(0, bins)), negative: Float64Array.from(signed.subarray(bins)) };
}

/** Cell-wise sum of noisy histograms of one shape. */
export function addNoisyHistograms(a: NoisyHistograms, b: NoisyHistograms): NoisyHistograms {
  if (a.bins !== b.bins || a.logitRange !== b.logitRange) throw new Error('evaluation: noisy histograms of different shapes');
  const out: NoisyHistograms = { bins: a.bins, logitRange: a.logitRange, positive: new Float64Array(a.bins), negative: new Float64Array(a.bins) };
  for (let i = 0; i < a.bins; i++) {
    out.positive[i] = a.positive[i] + b.positive[i];
    out.negative[i] = a.negative[i] + b.negative[i];
  }
  return out;
}

/** softplus(x) = log(1 + e^x), computed stably. */
function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

/**
 * Evaluation totals derived from noisy histograms only (post-processing, no further privacy cost): the
 * cells clamped at 0 (rounded to integers), n = the clamped total, the loss of every example taken at its
 * bin's centre logit (binary cross-entropy), and the accuracy at threshold logit 0, which lies on a bin
 * edge (bins must be even, the range symmetric): bins >= bins/2 predict positive. `noiseSigma` is the
 * total noise standard deviation per cell of the sum, kept with the totals for the AUC's error.
 */
export function totalsFromNoisyHistograms(noisy: NoisyHistograms, noiseSigma: number): EvaluationTotals {
  const { bins, logitRange } = noisy;
  if (bins % 2 !== 0) throw new Error(`evaluation: a private evaluation needs an even number of bins (threshold 0 on a bin edge), got ${bins}`);
  const histogram: ScoreHistogram = { bins, logitRange, positive: new Uint32Array(bins), negative: new Uint32Array(bins) };
  let lossSum = 0;
  let correct = 0;
  let n = 0;
  const width = (2 * logitRange) / bins;
  for (let i = 0; i < bins; i++) {
    const p = Math.max(0, Math.round(noisy.positive[i]));
    const q = Math.max(0, Math.round(noisy.negative[i]));
    histogram.positive[i] = p;
    histogram.negative[i] = q;
    const centre = -logitRange + (i + 0.5) * width;
    lossSum += p * softplus(-centre) + q * softplus(centre);
    correct += i >= bins / 2 ? p : q;
    n += p + q;
  }
  return { histogram, lossSum, correct, n, noiseSigma };
}
