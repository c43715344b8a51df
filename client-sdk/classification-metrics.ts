// Metrics of a binary classifier's scores against 0/1 labels, exact (no histogram binning), with the
// definitions scikit-learn uses so that the figures can be compared with it:
//   auc         roc_auc_score: the area under the ROC curve over every distinct score, which equals the
//               probability that a random positive scores above a random negative, ties counting one half
//   prAuc       average_precision_score: Σ_n (R_n − R_{n−1}) · P_n over the distinct scores from the
//               highest down (a step function, not the trapezoid)
//   logLoss     log_loss: the mean of −[y·ln p + (1 − y)·ln(1 − p)], p clipped to [ε, 1 − ε] with ε the
//               float64 machine epsilon
//   at the threshold: a row is predicted positive when its score ≥ the threshold; precision (0 when no
//               row is predicted positive, as sklearn's zero_division default), recall, F1, accuracy
//   calibration equal-width bins of the score on [0, 1]: per bin its rows, mean score and observed rate;
//               ECE = Σ_b (n_b / N) · |mean score_b − observed rate_b|
// Pure functions of the two arrays.

export interface ThresholdMetrics {
  threshold: number;
  truePositives: number;
  falsePositives: number;
  trueNegatives: number;
  falseNegatives: number;
  precision: number;
  recall: number;
  f1: number;
  accuracy: number;
}

export interface CalibrationBin {
  /** [from, to) of the score; the last bin includes 1. */
  from: number;
  to: number;
  count: number;
  meanPredicted: number | null;
  observedRate: number | null;
}

export interface ClassificationReport extends ThresholdMetrics {
  rows: number;
  positives: number;
  negatives: number;
  auc: number | null;
  prAuc: number | null;
  logLoss: number;
  calibration: { bins: CalibrationBin[]; ece: number };
}

const EPSILON = 2 ** -52;

function checkInputs(scores: ArrayLike<number>, labels: ArrayLike<number>): void {
  if (scores.length !== labels.length) throw new Error(`metrics: ${scores.length} scores but ${labels.length} labels`);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] !== 0 && labels[i] !== 1) throw new Error(`metrics: label ${i} is ${labels[i]}, expected 0 or 1`);
    if (!Number.isFinite(scores[i])) throw new Error(`metrics: score ${i} is ${scores[i]}, expected a finite number`);
  }
}

/** Indices ordered by score, highest first. */
function byScoreDescending(scores: ArrayLike<number>): Uint32Array {
  const order = new Uint32Array(scores.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  return order.sort((a, b) => scores[b] - scores[a]);
}

/** Walks the distinct scores from the highest down: cumulative true and false positives after each group. */
function thresholdSteps(scores: ArrayLike<number>, labels: ArrayLike<number>): { tp: number[]; fp: number[] } {
  const order = byScoreDescending(scores);
  const tp: number[] = [];
  const fp: number[] = [];
  let t = 0;
  let f = 0;
  for (let k = 0; k < order.length; k++) {
    if (labels[order[k]] === 1) t++;
    else f++;
    if (k + 1 === order.length || scores[order[k + 1]] !== scores[order[k]]) {
      tp.push(t);
      fp.push(f);
    }
  }
  return { tp, fp };
}

/** ROC AUC; null when only one class is present (undefined, where sklearn raises). */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number | null {
  checkInputs(scores, labels);
  const { tp, fp } = thresholdSteps(scores, labels);
  const p = tp.length ? tp[tp.length - 1] : 0;
  const n = fp.length ? fp[fp.length - 1] : 0;
  if (p === 0 || n === 0) return null;
  let area = 0;
  let prevTp = 0;
  let prevFp = 0;
  for (let k = 0; k < tp.length; k++) {
    area += ((fp[k] - prevFp) * (tp[k] + prevTp)) / 2; // trapezoid: a tied group counts its pairs one half
    prevTp = tp[k];
    prevFp = fp[k];
  }
  return area / (p * n);
}

/** Average precision; null without a positive (undefined). */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number | null {
  checkInputs(scores, labels);
  const { tp, fp } = thresholdSteps(scores, labels);
  const p = tp.length ? tp[tp.length - 1] : 0;
  if (p === 0) return null;
  let ap = 0;
  let prevRecall = 0;
  for (let k = 0; k < tp.length; k++) {
    const recall = tp[k] / p;
    ap += (recall - prevRecall) * (tp[k] / (tp[k] + fp[k]));
    prevRecall = recall;
  }
  return ap;
}

export function logLoss(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkInputs(scores, labels);
  if (scores.length === 0) throw new Error('metrics: no rows');
  let sum = 0;
  for (let i = 0; i < scores.length; i++) {
    const p = Math.min(1 - EPSILON, Math.max(EPSILON, scores[i]));
    sum -= labels[i] === 1 ? Math.log(p) : Math.log(1 - p);
  }
  return sum / scores.length;
}

export function thresholdMetrics(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold = 0.5): ThresholdMetrics {
  checkInputs(scores, labels);
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const predicted = scores[i] >= threshold;
    if (labels[i] === 1) predicted ? tp++ : fn++;
    else predicted ? fp++ : tn++;
  }
  const precision = tp + fp === 0 ? 0 : tp / (tp + fp);
  const recall = tp + fn === 0 ? 0 : tp / (tp + fn);
  const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
  const total = tp + fp + tn + fn;
  return { threshold, truePositives: tp, falsePositives: fp, trueNegatives: tn, falseNegatives: fn, precision, recall, f1, accuracy: total === 0 ? 0 : (tp + tn) / total };
}

/** Reliability bins over [0, 1] and the expected calibration error. Scores must lie in [0, 1]. */
export function calibration(scores: ArrayLike<number>, labels: ArrayLike<number>, bins = 10): { bins: CalibrationBin[]; ece: number } {
  checkInputs(scores, labels);
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`metrics: bins must be a positive integer, got ${bins}`);
  const count = new Float64Array(bins);
  const predicted = new Float64Array(bins);
  const positive = new Float64Array(bins);
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i];
    if (s < 0 || s > 1) throw new Error(`metrics: score ${i} is ${s}, calibration needs probabilities in [0, 1]`);
    const b = Math.min(bins - 1, Math.floor(s * bins));
    count[b]++;
    predicted[b] += s;
    positive[b] += labels[i];
  }
  let ece = 0;
  const out: CalibrationBin[] = [];
  for (let b = 0; b < bins; b++) {
    const meanPredicted = count[b] ? predicted[b] / count[b] : null;
    const observedRate = count[b] ? positive[b] / count[b] : null;
    if (count[b]) ece += (count[b] / scores.length) * Math.abs(meanPredicted! - observedRate!);
    out.push({ from: b / bins, to: (b + 1) / bins, count: count[b], meanPredicted, observedRate });
  }
  return { bins: out, ece };
}

/** Every metric above in one report. */
export function classificationReport(scores: ArrayLike<number>, labels: ArrayLike<number>, o: { threshold?: number; bins?: number } = {}): ClassificationReport {
  checkInputs(scores, labels);
  let positives = 0;
  for (let i = 0; i < labels.length; i++) positives += labels[i];
  return {
    rows: labels.length,
    positives,
    negatives: labels.length - positives,
    auc: rocAuc(scores, labels),
    prAuc: averagePrecision(scores, labels),
    logLoss: logLoss(scores, labels),
    ...thresholdMetrics(scores, labels, o.threshold ?? 0.5),
    calibration: calibration(scores, labels, o.bins ?? 10),
  };
}
