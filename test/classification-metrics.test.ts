// The exact metrics of client-sdk/classification-metrics.ts against reference numbers. scikit-learn is not
// installed on the machine these tests were written on, so the references are (a) outputs scikit-learn's
// own documentation prints for its examples, and (b) numbers computed once by an independent exact method
// (python3 with fractions.Fraction: AUC as the share of positive-negative pairs ranked right, ties one
// half; average precision as Σ (R_n − R_{n−1}) P_n over the distinct thresholds from the top; log loss as
// the mean of −ln p of the true class), plus the same brute force run here on random vectors with ties.
import { describe, expect, it } from 'vitest';
import { averagePrecision, calibration, classificationReport, logLoss, rocAuc, thresholdMetrics } from '@dpfed/client/classification-metrics';

/** AUC by brute force over every positive-negative pair. */
function pairwiseAuc(scores: number[], labels: number[]): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      wins += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return wins / pairs;
}

/** Average precision by the step-wise definition, thresholds taken one distinct score at a time. */
function stepwiseAp(scores: number[], labels: number[]): number {
  const positives = labels.filter((l) => l === 1).length;
  let ap = 0;
  let previous = 0;
  for (const t of [...new Set(scores)].sort((a, b) => b - a)) {
    let tp = 0;
    let fp = 0;
    scores.forEach((s, i) => {
      if (s >= t) labels[i] === 1 ? tp++ : fp++;
    });
    ap += (tp / positives - previous) * (tp / (tp + fp));
    previous = tp / positives;
  }
  return ap;
}

describe('classification metrics', () => {
  it("scikit-learn's documented examples", () => {
    // average_precision_score docs: y_true [0, 0, 1, 1], y_score [0.1, 0.4, 0.35, 0.8] → 0.83…
    // (exactly 5/6); roc_auc_score of the same vectors: 3 of 4 pairs ranked right → 0.75.
    expect(averagePrecision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBeCloseTo(5 / 6, 15);
    expect(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])).toBe(0.75);
    // log_loss docs: log_loss(["spam", "ham", "ham", "spam"], [[.1, .9], [.9, .1], [.8, .2], [.35, .65]])
    // → 0.21616… (spam = 1; its probabilities are the second column).
    expect(logLoss([0.9, 0.1, 0.2, 0.65], [1, 0, 0, 1])).toBeCloseTo(0.21616187468057912, 14);
  });

  it('a fixed vector with ties: the references computed exactly once', () => {
    const scores = [0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.6, 0.3, 0.2, 0.1, 0.05, 0.99];
    const labels = [1, 0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0];
    expect(rocAuc(scores, labels)).toBeCloseTo(9 / 14, 15); // Fraction: 9/14
    expect(averagePrecision(scores, labels)).toBeCloseTo(13 / 25, 15); // Fraction: 13/25
    expect(logLoss(scores, labels)).toBeCloseTo(0.9471634052721226, 14);
    expect(thresholdMetrics(scores, labels, 0.5)).toMatchObject({ truePositives: 4, falsePositives: 4, trueNegatives: 3, falseNegatives: 1, precision: 0.5, recall: 0.8, accuracy: 7 / 12 });
    expect(thresholdMetrics(scores, labels, 0.5).f1).toBeCloseTo((2 * 0.5 * 0.8) / 1.3, 15);
    const c = calibration(scores, labels, 10);
    expect(c.ece).toBeCloseTo(0.32, 12);
    expect(c.bins.map((b) => b.count)).toEqual([1, 1, 1, 1, 0, 0, 3, 1, 2, 2]);
    expect(c.bins[6]).toMatchObject({ from: 0.6, count: 3, observedRate: 1 / 3 });
    expect(c.bins[6].meanPredicted).toBeCloseTo(0.6, 15);
    expect(c.bins[4].meanPredicted).toBeNull();
  });

  it('random vectors with many ties agree with the brute-force definitions', () => {
    for (let trial = 0; trial < 20; trial++) {
      const n = 50 + trial * 7;
      const scores = Array.from({ length: n }, () => Math.round(Math.random() * 20) / 20);
      const labels = scores.map((s) => (Math.random() < 0.2 + 0.6 * s ? 1 : 0));
      labels[0] = 1;
      labels[1] = 0;
      expect(rocAuc(scores, labels)).toBeCloseTo(pairwiseAuc(scores, labels), 12);
      expect(averagePrecision(scores, labels)).toBeCloseTo(stepwiseAp(scores, labels), 12);
    }
  });

  it('edge cases: one class, certain scores, bad input', () => {
    expect(rocAuc([0.2, 0.4], [1, 1])).toBeNull();
    expect(averagePrecision([0.2, 0.4], [0, 0])).toBeNull();
    expect(Number.isFinite(logLoss([0, 1], [1, 0]))).toBe(true); // clipped at the float64 epsilon, as sklearn
    expect(logLoss([0, 1], [1, 0])).toBeCloseTo(-Math.log(2 ** -52), 10);
    expect(thresholdMetrics([0.1, 0.2], [1, 0], 0.5)).toMatchObject({ precision: 0, recall: 0, f1: 0, accuracy: 0.5 });
    expect(() => rocAuc([0.1], [2])).toThrow(/label 0 is 2/);
    expect(() => rocAuc([0.1, 0.2], [1])).toThrow(/2 scores but 1 labels/);
    expect(() => calibration([1.5], [1])).toThrow(/\[0, 1\]/);
    const report = classificationReport([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]);
    expect(report).toMatchObject({ rows: 4, positives: 2, negatives: 2, auc: 0.75 });
  });
});
