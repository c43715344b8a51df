// Private evaluation as pure logic: the released histograms' sensitivity and noise, the privacy bound the
// recorded event claims (exactly for the discrete Gaussian, and empirically on many releases of a dataset
// and of the same dataset with one validation row removed), the institution's noise plan and budget split,
// the figures derived from noisy histograms, the AUC's standard error, and evaluation events in the ledger.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import type { TaskContext } from '@dpfed/client/learner';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { projectedRoundsLeft } from '@dpfed/privacy/budget';
import { aucFromHistogram, aucStandardError, emptyHistogram, histogramOfScores, type ScoreHistogram } from '@dpfed/privacy/auc-histogram';
import { sampleDiscreteGaussian } from '@dpfed/privacy/discrete-gaussian';
import {
  calibrateEvaluationSigma,
  distributedEvaluationMultiplier,
  evaluationMechanism,
  isEvaluationRound,
  noisyHistogramVector,
  planEvaluationNoise,
  planInstitutionNoise,
  plannedEvaluationCount,
} from '@dpfed/privacy/evaluation-mechanism';
import { decodeNoisyHistograms, totalsFromNoisyHistograms } from '@dpfed/privacy/evaluation-vector';
import { generateIdentity } from '@dpfed/privacy/identity';
import { signEvent, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { BudgetExceededError, PrivacyLedger } from '@dpfed/privacy/ledger';
import { runConfig } from './helpers/federation-fixture.ts';

const DELTA = 1e-5;
const rdp = makeAccountant('rdp');

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

/** A histogram with a few positives and more negatives, the positives scored higher. */
function validationHistogram(bins = 8): ScoreHistogram {
  const h = emptyHistogram(bins, 8);
  [0, 1, 2, 3, 1, 4, 6, 9].slice(0, bins).forEach((c, i) => (h.positive[i] = c));
  [40, 55, 30, 12, 6, 3, 1, 0].slice(0, bins).forEach((c, i) => (h.negative[i] = c));
  return h;
}

/** N releases of cell `cell` of `h` at noise σ. */
function releasesOfCell(h: ScoreHistogram, sigma: number, cell: number, draws: number): Int32Array {
  const out = new Int32Array(draws);
  for (let d = 0; d < draws; d++) out[d] = decodeNoisyHistograms(noisyHistogramVector(h, sigma), h.bins, h.logitRange).positive[cell];
  return out;
}

/** The largest δ(ε) = Σ_x max(0, P(x) − e^ε Q(x)) of N_Z(0, σ²) against N_Z(1, σ²), both directions (exact, by summation). */
function exactDiscreteGaussianDelta(sigma: number, epsilon: number): number {
  const limit = Math.ceil(40 * sigma) + 2;
  const weight = (x: number) => Math.exp((-x * x) / (2 * sigma * sigma));
  let mass = 0;
  for (let x = -limit; x <= limit; x++) mass += weight(x);
  let forward = 0;
  let backward = 0;
  for (let x = -limit; x <= limit + 1; x++) {
    const p = weight(x) / mass;
    const q = weight(x - 1) / mass;
    forward += Math.max(0, p - Math.exp(epsilon) * q);
    backward += Math.max(0, q - Math.exp(epsilon) * p);
  }
  return Math.max(forward, backward);
}

describe('private evaluation mechanism', () => {
  it('removing one validation row moves exactly one released cell by 1 in expectation; every cell carries noise of the recorded σ', () => {
    const d = validationHistogram();
    const dPrime = validationHistogram();
    dPrime.positive[5]--; // one positive validation row removed (it scored in bin 5)
    const plan = planEvaluationNoise({ required: calibrateEvaluationSigma({ epsilon: 1, delta: DELTA, evaluations: 1 }), requested: 0, bins: 8 });
    const draws = 4000;
    const sum = new Float64Array(16);
    const sumPrime = new Float64Array(16);
    const residualSquares = new Float64Array(16);
    for (let k = 0; k < draws; k++) {
      const a = decodeNoisyHistograms(noisyHistogramVector(d, plan.sigma), 8, 8);
      const b = decodeNoisyHistograms(noisyHistogramVector(dPrime, plan.sigma), 8, 8);
      for (let i = 0; i < 8; i++) {
        sum[i] += a.positive[i];
        sum[8 + i] += a.negative[i];
        sumPrime[i] += b.positive[i];
        sumPrime[8 + i] += b.negative[i];
        residualSquares[i] += (a.positive[i] - d.positive[i]) ** 2;
        residualSquares[8 + i] += (a.negative[i] - d.negative[i]) ** 2;
      }
    }
    const se = (plan.sigma * Math.SQRT2) / Math.sqrt(draws);
    for (let i = 0; i < 16; i++) {
      const shift = (sum[i] - sumPrime[i]) / draws;
      expect(Math.abs(shift - (i === 5 ? 1 : 0)), `cell ${i}`).toBeLessThan(5 * se);
      const std = Math.sqrt(residualSquares[i] / draws);
      expect(std / plan.sigma, `noise of cell ${i}`).toBeGreaterThan(0.93);
      expect(std / plan.sigma, `noise of cell ${i}`).toBeLessThan(1.07);
    }
    expect(plan.recordedMultiplier).toBe(plan.sigma); // Δ = 1
  });

  it("the recorded event bounds the release: exact δ of the discrete Gaussian, and empirical frequencies on D and D' within e^ε·P + δ", () => {
    const required = calibrateEvaluationSigma({ epsilon: 1, delta: DELTA, evaluations: 1 });
    const plan = planEvaluationNoise({ required, requested: 0, bins: 8 });
    const event = evaluationMechanism(plan.recordedMultiplier, 1);
    const { epsilon } = rdp.epsilon([event], DELTA);
    expect(epsilon).toBeLessThanOrEqual(1 + 1e-9);
    // exactly: one cell shifted by the sensitivity 1 under N_Z(0, σ²)
    expect(exactDiscreteGaussianDelta(plan.sigma, epsilon)).toBeLessThanOrEqual(DELTA);

    // empirically, on the released cell that the removed row changes
    const d = validationHistogram();
    const dPrime = validationHistogram();
    dPrime.positive[7]--;
    const draws = 30_000;
    const a = releasesOfCell(d, plan.sigma, 7, draws);
    const b = releasesOfCell(dPrime, plan.sigma, 7, draws);
    const frequency = (xs: Int32Array, test: (x: number) => boolean) => xs.reduce((n, x) => n + (test(x) ? 1 : 0), 0) / draws;
    const worst = (sigma: number, xs: Int32Array, ys: Int32Array) => {
      let excess = -Infinity;
      for (let t = -Math.ceil(3 * sigma) + 9; t <= Math.ceil(3 * sigma) + 9; t++) {
        for (const test of [(x: number) => x >= t, (x: number) => x <= t, (x: number) => x === t]) {
          for (const [p, q] of [
            [frequency(xs, test), frequency(ys, test)],
            [frequency(ys, test), frequency(xs, test)],
          ]) {
            const slack = 5 * Math.sqrt((p * (1 - p) + Math.exp(2 * epsilon) * q * (1 - q)) / draws);
            excess = Math.max(excess, p - (Math.exp(epsilon) * q + DELTA + slack));
          }
        }
      }
      return excess;
    };
    expect(worst(plan.sigma, a, b)).toBeLessThanOrEqual(0);
    // the same check refuses a release with far less noise than the event claims (it can fail)
    const weak = 0.3;
    expect(worst(weak, releasesOfCell(d, weak, 7, draws), releasesOfCell(dPrime, weak, 7, draws))).toBeGreaterThan(0);
  });

  it('a "model" equal to one feature gives that feature\'s per-class histogram only under noise of the recorded σ', () => {
    // feature values of 300 validation rows; the coordinator's model scores each row by its feature value
    const feature = new Float64Array(300);
    const labels = new Uint8Array(300);
    const words = new Int32Array(600);
    sampleDiscreteGaussian(3, words);
    for (let i = 0; i < 300; i++) {
      labels[i] = i % 10 === 0 ? 1 : 0;
      feature[i] = words[i] / 3 + (labels[i] ? 2 : 0);
    }
    const exact = histogramOfScores(feature, labels, 32, 16);
    const plan = planEvaluationNoise({ required: calibrateEvaluationSigma({ epsilon: 0.3, delta: DELTA, evaluations: 10 }), requested: 0, bins: 32 });
    const released = decodeNoisyHistograms(noisyHistogramVector(exact, plan.sigma), 32, 16);
    let squares = 0;
    let exactCells = 0;
    for (let i = 0; i < 32; i++) {
      for (const [noisy, truth] of [
        [released.positive[i], exact.positive[i]],
        [released.negative[i], exact.negative[i]],
      ]) {
        squares += (noisy - truth) ** 2;
        if (noisy === truth) exactCells++;
      }
    }
    const std = Math.sqrt(squares / 64);
    expect(std).toBeGreaterThan(0.7 * plan.sigma);
    expect(std).toBeLessThan(1.35 * plan.sigma);
    expect(exactCells).toBeLessThan(6); // with σ ≈ 39, a cell read back exactly is a rare coincidence
  });

  it("the institution adds at least its own plan's noise, whatever the task asks for; secure shares rely on t shares", () => {
    const required = 20;
    const less = planEvaluationNoise({ required, requested: 2, bins: 32 });
    expect(less.sigma).toBe(20);
    expect(less.overridden).toMatch(/asked for noise 2\.000.*requires 20\.000/);
    const more = planEvaluationNoise({ required, requested: 25, bins: 32 });
    expect(more.sigma).toBe(25);
    expect(more.recordedMultiplier).toBe(25);
    expect(more.overridden).toBeUndefined();
    const secure = planEvaluationNoise({ required, requested: 1, bins: 32, secure: { threshold: 3 } });
    expect(secure.overridden).toMatch(/noise share of 1\.000/);
    expect(secure.sigma).toBeGreaterThanOrEqual(required / Math.sqrt(3));
    expect(secure.recordedMultiplier).toBeGreaterThanOrEqual(required);
    expect(secure.recordedMultiplier).toBeLessThan(required * 1.02);
    expect(distributedEvaluationMultiplier(secure.sigma, 3, 64)).toBe(secure.recordedMultiplier);
    // relying on t shares: one share alone is a much weaker multiplier than recorded
    expect(distributedEvaluationMultiplier(secure.sigma, 1, 64)).toBeLessThan(secure.recordedMultiplier / 1.7);
  });

  it("the run's target covers training and evaluation: the plan composes to min(target, budget), evaluation to its share", () => {
    const training = { sampleRate: 0.028, steps: 36, rounds: 10 };
    for (const budget of [5, 2]) {
      const plan = planInstitutionNoise({ targetEpsilon: 3, budget: { epsilon: budget, delta: DELTA }, training, evaluation: { epsilon: 0.3, every: 1 } });
      const own = Math.min(3, budget);
      const evaluation = evaluationMechanism(plan.evaluation!.multiplier, plan.evaluation!.count);
      expect(plan.evaluation!.count).toBe(10);
      const all = rdp.epsilon([{ sampleRate: training.sampleRate, noiseMultiplier: plan.trainingMultiplier, steps: training.steps * training.rounds }, evaluation], DELTA).epsilon;
      expect(all).toBeLessThanOrEqual(own);
      expect(all).toBeGreaterThan(own - 0.02);
      expect(rdp.epsilon([evaluation], DELTA).epsilon).toBeLessThanOrEqual(0.3 * Math.min(1, budget / 3) + 1e-9);
      // training alone at the training multiplier would fit more rounds than planned: evaluation took a share
      const trainingOnly = planInstitutionNoise({ targetEpsilon: 3, budget: { epsilon: budget, delta: DELTA }, training });
      expect(trainingOnly.evaluation).toBeNull();
      expect(plan.trainingMultiplier).toBeGreaterThan(trainingOnly.trainingMultiplier);
    }
  });

  it('evaluate-every: every K rounds and always the last', () => {
    expect([1, 2, 3, 4, 5, 6, 7].filter((r) => isEvaluationRound(r, 7, 3))).toEqual([3, 6, 7]);
    expect(plannedEvaluationCount(7, 3)).toBe(3);
    expect(plannedEvaluationCount(6, 3)).toBe(2);
    expect(plannedEvaluationCount(10, 1)).toBe(10);
    expect(plannedEvaluationCount(10, 20)).toBe(1);
    expect(() => plannedEvaluationCount(10, 0)).toThrow(/every must be a positive integer/);
  });

  it('loss and accuracy from noiseless histograms at bin centres; the threshold 0 on a bin edge; odd bins refused', () => {
    const logits = new Float64Array([-3.2, -0.4, 0.3, 2.7, -1.9, 1.1, 0.6, -0.2]);
    const labels = new Uint8Array([0, 0, 0, 1, 0, 1, 1, 1]);
    const h = histogramOfScores(logits, labels, 16, 8); // bins of width 1
    const vector = new Uint32Array(32);
    vector.set(h.positive, 0);
    vector.set(h.negative, 16);
    const totals = totalsFromNoisyHistograms(decodeNoisyHistograms(vector, 16, 8), 1);
    expect(totals.n).toBe(8);
    const exactCorrect = Array.from(logits).filter((z, i) => (z > 0 ? 1 : 0) === labels[i]).length;
    expect(totals.correct).toBe(exactCorrect);
    const centre = (z: number) => Math.floor(z) + 0.5;
    const softplus = (x: number) => Math.log1p(Math.exp(x));
    const expectedLoss = Array.from(logits).reduce((s, z, i) => s + (labels[i] ? softplus(-centre(z)) : softplus(centre(z))), 0);
    expect(totals.lossSum).toBeCloseTo(expectedLoss, 10);
    expect(totals.noiseSigma).toBe(1);
    expect(aucFromHistogram(totals.histogram)).toBe(aucFromHistogram(h));
    // negative noisy cells are clamped at 0 (a word of 2^32 − 3 decodes to −3)
    vector[0] = 0xfffffffd;
    expect(decodeNoisyHistograms(vector, 16, 8).positive[0]).toBe(-3);
    expect(totalsFromNoisyHistograms(decodeNoisyHistograms(vector, 16, 8), 1).histogram.positive[0]).toBe(0);
    expect(() => totalsFromNoisyHistograms(decodeNoisyHistograms(new Uint32Array(30), 15, 8), 1)).toThrow(/even number of bins/);
  });

  it('auc_stderr: the re-noised standard error matches the spread of the AUC over independent releases', () => {
    const h = emptyHistogram(32, 16);
    for (let i = 0; i < 32; i++) {
      h.negative[i] = Math.round(2000 * Math.exp(-((i - 10) ** 2) / 18));
      h.positive[i] = Math.round(40 * Math.exp(-((i - 22) ** 2) / 12));
    }
    const sigma = 8;
    const aucs: number[] = [];
    let firstRelease: ScoreHistogram | null = null;
    for (let k = 0; k < 200; k++) {
      const totals = totalsFromNoisyHistograms(decodeNoisyHistograms(noisyHistogramVector(h, sigma), 32, 16), sigma);
      firstRelease ??= totals.histogram;
      aucs.push(aucFromHistogram(totals.histogram));
    }
    const mean = aucs.reduce((a, b) => a + b, 0) / aucs.length;
    const spread = Math.sqrt(aucs.reduce((a, b) => a + (b - mean) ** 2, 0) / (aucs.length - 1));
    const stderr = aucStandardError(firstRelease!, sigma);
    expect(stderr).toBeGreaterThan(0.5 * spread);
    expect(stderr).toBeLessThan(2 * spread);
    expect(() => aucStandardError(h, 0)).toThrow(/noiseSigma/);
  });
});

describe('evaluation events in the ledgers', () => {
  it('a training and an evaluation event of the same round are two rows; both compose into ε; a second evaluation of the round is refused', () => {
    dir = mkdtempSync(join(tmpdir(), 'dpfed-eval-ledger-'));
    const db = new Database(join(dir, 'ledger.sqlite'));
    const identity = generateIdentity();
    const ledger = new PrivacyLedger(db, { countersigner: identity });
    ledger.registerInstitution('bank-1', identity.publicKey, { epsilon: 5, delta: DELTA });
    const base = { institutionId: 'bank-1', runId: 'run-1', round: 1, delta: DELTA, time: '2026-01-01T00:00:00.000Z' };
    const training: LedgerEvent = { ...base, mode: 'record', sampleRate: 0.03, noiseMultiplier: 1.1, steps: 36, clipNorm: 1, modelVersion: 0 };
    const evaluation: LedgerEvent = { ...base, mode: 'evaluation', sampleRate: 1, noiseMultiplier: 20, steps: 1, clipNorm: 1, modelVersion: 1 };
    ledger.append(training, signEvent(training, identity));
    ledger.append(evaluation, signEvent(evaluation, identity));
    expect(ledger.events({ institutionId: 'bank-1' }).map((r) => r.event.mode)).toEqual(['record', 'evaluation']);
    const spent = ledger.spent('bank-1', rdp).epsilon;
    expect(spent).toBeCloseTo(rdp.epsilon([training, evaluation], DELTA).epsilon, 12);
    expect(spent).toBeGreaterThan(rdp.epsilon([training], DELTA).epsilon);
    // rounds left project one more training release AND one more evaluation per round (not just the latest row)
    const [summary] = ledger.summary({ institutionId: 'bank-1' }, rdp);
    expect(summary.projectedRoundsLeft).toBe(projectedRoundsLeft([training, evaluation], [training, evaluation], { epsilon: 5, delta: DELTA }, rdp));
    expect(summary.projectedRoundsLeft).toBeLessThan(projectedRoundsLeft([training, evaluation], [evaluation], { epsilon: 5, delta: DELTA }, rdp));
    const again = { ...evaluation, noiseMultiplier: 30 };
    expect(() => ledger.append(again, signEvent(again, identity))).toThrow(/different evaluation event is already recorded/);
    expect(ledger.verify().ok).toBe(true);
    db.close();
  });

  it('InstitutionPrivacy: overrides a request below its plan, records before release, declines a second release and one past its budget', () => {
    dir = mkdtempSync(join(tmpdir(), 'dpfed-eval-institution-'));
    const config = runConfig(['--rounds', '4', '--privacy', 'record', '--epsilon', '3', '--delta', String(DELTA)]);
    const task = (round: number): TaskContext => ({
      runId: 'run-1',
      round,
      modelVersion: round,
      spec: config.modelSpec,
      config: { ...config.task, strategy: 'fedavg', proximalMu: 0, seed: '1' },
    });
    const identity = generateIdentity();
    const privacy = new InstitutionPrivacy({ institutionId: 'bank-1', identity, budget: { epsilon: 3, delta: DELTA }, ledgerPath: join(dir, 'own.sqlite') });
    try {
      const share = config.task.evaluation.private!;
      expect(share.epsilon).toBeCloseTo(0.6, 12); // the default share: 20 % of the target
      const required = calibrateEvaluationSigma({ epsilon: share.epsilon, delta: DELTA, evaluations: 4 });
      const decision = privacy.beforeEvaluation(task(1), { requested: 1 });
      expect(decision.allowed).toBe(true);
      expect(decision.noise!.sigma).toBeCloseTo(required, 9);
      expect(decision.noise!.overridden).toMatch(/asked for noise 1\.000/);
      const event = privacy.recordEvaluation(task(1), decision.noise!);
      expect(event).toMatchObject({ mode: 'evaluation', round: 1, sampleRate: 1, steps: 1, clipNorm: 1, modelVersion: 1 });
      expect(event.noiseMultiplier).toBeCloseTo(required, 9);
      const again = privacy.beforeEvaluation(task(1), { requested: share.noiseSigma });
      expect(again).toMatchObject({ allowed: false, reason: 'already-released' });
      // the planned evaluations alone stay within the share; a far noisier-than-needed budget check refuses
      for (const round of [2, 3, 4]) privacy.recordEvaluation(task(round), privacy.beforeEvaluation(task(round), { requested: share.noiseSigma }).noise!);
      expect(privacy.spent().epsilon).toBeLessThanOrEqual(share.epsilon + 1e-9);
      // spending elsewhere that leaves no room: the next evaluation would pass the budget, so it is declined
      // (a release far past the budget is refused whole, inside the append's own transaction)
      expect(() => privacy.recordRelease({ ...task(1), runId: 'earlier-study' }, { sampleRate: 1, noiseMultiplier: 0.8, steps: 3, clipNorm: 1 })).toThrow(BudgetExceededError);
      const evaluations = [1, 2, 3, 4].map(() => evaluationMechanism(required, 1));
      const epsilonWith = (z: number) => makeAccountant('rdp').epsilon([...evaluations, { sampleRate: 1, noiseMultiplier: z, steps: 3 }], DELTA).epsilon;
      let [tight, loose] = [1, 20]; // epsilonWith(tight) > 3 > epsilonWith(loose)
      for (let i = 0; i < 60; i++) {
        const mid = (tight + loose) / 2;
        if (epsilonWith(mid) > 3) tight = mid;
        else loose = mid;
      }
      expect(3 - epsilonWith(loose)).toBeLessThan(1e-3); // less room than one more evaluation needs
      privacy.recordRelease({ ...task(1), runId: 'earlier-study' }, { sampleRate: 1, noiseMultiplier: loose, steps: 3, clipNorm: 1 });
      const over = privacy.beforeEvaluation(task(5), { requested: share.noiseSigma });
      expect(over).toMatchObject({ allowed: false, reason: 'budget' });
      expect(over.projectedEpsilon).toBeGreaterThan(3);
    } finally {
      privacy.close();
    }
    // an institution with almost no budget left declines
    const tight = new InstitutionPrivacy({ institutionId: 'bank-2', identity, budget: { epsilon: 0.001, delta: DELTA }, ledgerPath: join(dir, 'tight.sqlite') });
    try {
      const refused = tight.beforeEvaluation(task(1), { requested: 0.5 });
      expect(refused).toMatchObject({ allowed: false, reason: 'budget' });
      expect(refused.detail).toMatch(/evaluation/);
    } finally {
      tight.close();
    }
  });
});
