// AUC without moving records. Each institution bins its validation scores per class on the LOGIT scale
// (clamped to [-logitRange, logitRange]); histograms add up across institutions (in clear or through secure
// aggregation, as one flat Uint32Array), and the global AUC comes from the summed ROC. Binning logits rather
// than probabilities keeps resolution where fraud-like scores crowd near 0 and 1.
//
// exactAuc is the sort-based reference the histogram AUC is tested against (and an institution's own AUC).
// aucStandardError: the error of an AUC computed from noisy (privately released) histograms.
import { sampleDiscreteGaussian } from './discrete-gaussian.ts';

export interface ScoreHistogram {
  bins: number;
  logitRange: number;
  /** Counts of positive examples per bin, lowest logits first. */
  positive: Uint32Array;
  /** Counts of negative examples per bin, lowest logits first. */
  negative: Uint32Array;
}

function checkShape(bins: number, logitRange: number): void {
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`histogram: bins must be a positive integer, got ${bins}`);
  if (typeof logitRange !== 'number' || !Number.isFinite(logitRange) || logitRange <= 0) {
    throw new Error(`histogram: logitRange must be a positive finite number, got ${logitRange}`);
  }
}

function isPositiveLabel(labels: ArrayLike<number>, i: number): boolean {
  const label = labels[i];
  if (label === 1) return true;
  if (label === 0) return false;
  throw new Error(`labels[${i}] must be 0 or 1, got ${label}`);
}

/** The bin of one logit: clamped to [-range, range], bins of equal width, the top edge in the last bin. */
export function binOfLogit(logit: number, bins: number, logitRange: number): number {
  const clamped = logit < -logitRange ? -logitRange : logit > logitRange ? logitRange : logit;
  const bin = Math.floor(((clamped + logitRange) / (2 * logitRange)) * bins);
  return bin >= bins ? bins - 1 : bin;
}

export function emptyHistogram(bins = 1024, logitRange = 16): ScoreHistogram {
  checkShape(bins, logitRange);
  return { bins, logitRange, positive: new Uint32Array(bins), negative: new Uint32Array(bins) };
}

/** Histogram of logits per class. Labels are 0 or 1; a NaN logit is refused. */
export function histogramOfScores(logits: Float32Array | Float64Array, labels: Float32Array | Uint8Array, bins = 1024, logitRange = 16): ScoreHistogram {
  if (logits.length !== labels.length) throw new Error(`histogram: ${logits.length} logits but ${labels.length} labels`);
  const h = emptyHistogram(bins, logitRange);
  for (let i = 0; i < logits.length; i++) {
    const logit = logits[i];
    if (Number.isNaN(logit)) throw new Error(`histogram: logits[${i}] is NaN`);
    const bin = binOfLogit(logit, bins, logitRange);
    if (isPositiveLabel(labels, i)) h.positive[bin]++;
    else h.negative[bin]++;
  }
  return h;
}

/** The sum of two histograms of the same shape. */
export function addHistograms(a: ScoreHistogram, b: ScoreHistogram): ScoreHistogram {
  if (a.bins !== b.bins) throw new Error(`addHistograms: bins differ (${a.bins} vs ${b.bins})`);
  if (a.logitRange !== b.logitRange) throw new Error(`addHistograms: logitRange differs (${a.logitRange} vs ${b.logitRange})`);
  const out = emptyHistogram(a.bins, a.logitRange);
  for (let i = 0; i < a.bins; i++) {
    const p = a.positive[i] + b.positive[i];
    const n = a.negative[i] + b.negative[i];
    if (p > 0xffffffff || n > 0xffffffff) throw new Error(`addHistograms: count in bin ${i} overflows 32 bits`);
    out.positive[i] = p;
    out.negative[i] = n;
  }
  return out;
}

/**
 * Area under the ROC curve from summed counts: the probability that a random positive scores above a random
 * negative, pairs in the same bin counting half. NaN when either class is empty (AUC is undefined).
 */
export function aucFromHistogram(h: ScoreHistogram): number {
  checkShape(h.bins, h.logitRange);
  if (h.positive.length !== h.bins || h.negative.length !== h.bins) throw new Error('aucFromHistogram: count arrays do not match bins');
  let positives = 0;
  let negatives = 0;
  for (let i = 0; i < h.bins; i++) {
    positives += h.positive[i];
    negatives += h.negative[i];
  }
  if (positives === 0 || negatives === 0) return NaN;
  // Walk bins from low to high; `negativesBelow` counts negatives in lower bins.
  let negativesBelow = 0;
  let wins = 0;
  for (let i = 0; i < h.bins; i++) {
    wins += h.positive[i] * (negativesBelow + 0.5 * h.negative[i]);
    negativesBelow += h.negative[i];
  }
  return wins / (positives * negatives);
}

/**
 * Exact AUC by sorting: scores split into positive and negative typed arrays, numeric sort, merge count;
 * ties count half. NaN when either class is empty. Works on logits or probabilities alike (rank-based).
 */
export function exactAuc(scores: Float32Array | Float64Array, labels: Float32Array | Uint8Array): number {
  if (scores.length !== labels.length) throw new Error(`exactAuc: ${scores.length} scores but ${labels.length} labels`);
  let positives = 0;
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i])) throw new Error(`exactAuc: scores[${i}] is NaN`);
    if (isPositiveLabel(labels, i)) positives++;
  }
  const negatives = scores.length - positives;
  if (positives === 0 || negatives === 0) return NaN;
  const pos = new Float64Array(positives);
  const neg = new Float64Array(negatives);
  for (let i = 0, p = 0, n = 0; i < scores.length; i++) {
    if (labels[i] === 1) pos[p++] = scores[i];
    else neg[n++] = scores[i];
  }
  pos.sort();
  neg.sort();
  // For each positive (ascending), `below` = negatives strictly lower, `upTo` = negatives lower or equal.
  let below = 0;
  let upTo = 0;
  let wins = 0;
  for (let i = 0; i < positives; i++) {
    const score = pos[i];
    while (below < negatives && neg[below] < score) below++;
    if (upTo < below) upTo = below;
    while (upTo < negatives && neg[upTo] <= score) upTo++;
    wins += below + 0.5 * (upTo - below);
  }
  return wins / (positives * negatives);
}

/** Flat form for secure aggregation: positive counts, then negative counts (length 2·bins). */
export function histogramToVector(h: ScoreHistogram): Uint32Array {
  const out = new Uint32Array(2 * h.bins);
  out.set(h.positive, 0);
  out.set(h.negative, h.bins);
  return out;
}

/** The inverse of histogramToVector; counts must be non-negative integers below 2^32. */
export function histogramFromVector(vector: Uint32Array | ArrayLike<number>, logitRange = 16): ScoreHistogram {
  if (vector.length === 0 || vector.length % 2 !== 0) throw new Error(`histogramFromVector: length must be even and positive, got ${vector.length}`);
  const bins = vector.length / 2;
  const h = emptyHistogram(bins, logitRange);
  for (let i = 0; i < vector.length; i++) {
    const count = vector[i];
    if (!Number.isInteger(count) || count < 0 || count > 0xffffffff) throw new Error(`histogramFromVector: entry ${i} is not a count (${count})`);
    if (i < bins) h.positive[i] = count;
    else h.negative[i - bins] = count;
  }
  return h;
}

/**
 * The expected error of an AUC computed from noisy histograms whose every cell carries noise of standard
 * deviation `noiseSigma` (negative cells clamped at 0): a parametric bootstrap. The released histogram is
 * noised again `draws` times with the same σ (discrete Gaussian, CSPRNG), clamped, and the AUC's standard
 * deviation over the draws is returned. It is post-processing of released figures (no privacy cost);
 * NaN when fewer than two draws have a defined AUC.
 */
export function aucStandardError(h: ScoreHistogram, noiseSigma: number, draws = 300): number {
  checkShape(h.bins, h.logitRange);
  if (!(noiseSigma > 0) || !Number.isFinite(noiseSigma)) throw new Error(`aucStandardError: noiseSigma must be a positive number, got ${noiseSigma}`);
  if (!Number.isInteger(draws) || draws < 2) throw new Error(`aucStandardError: draws must be an integer >= 2, got ${draws}`);
  const noise = sampleDiscreteGaussian(noiseSigma, new Int32Array(2 * h.bins * draws));
  const redrawn = emptyHistogram(h.bins, h.logitRange);
  let count = 0;
  let mean = 0;
  let m2 = 0;
  for (let d = 0, k = 0; d < draws; d++) {
    for (let i = 0; i < h.bins; i++) {
      redrawn.positive[i] = Math.max(0, h.positive[i] + noise[k++]);
      redrawn.negative[i] = Math.max(0, h.negative[i] + noise[k++]);
    }
    const auc = aucFromHistogram(redrawn);
    if (Number.isNaN(auc)) continue;
    count++;
    const step = auc - mean;
    mean += step / count;
    m2 += step * (auc - mean);
  }
  return count < 2 ? Number.NaN : Math.sqrt(m2 / (count - 1));
}
