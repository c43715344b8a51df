// Private evaluation at the institution: what its validation rows may reveal about a candidate model.
//
// What is released: only the two class histograms of the candidate's validation logits (positive counts
// per bin, then negative counts per bin; `bins` per class, coarse, e.g. 32), as one integer vector. Adding
// or removing one validation row of the institution's CSV changes exactly one cell by 1, so the vector's
// L2 (and L1) sensitivity is Δ = 1, whatever model the coordinator sends: a "model" equal to one feature
// yields that feature's per-class histogram, and every cell of it carries the same noise. Loss and
// accuracy are not released; the coordinator derives them approximately from the noisy histograms at bin
// centres (privacy/evaluation-vector.ts), which is post-processing.
//
// Noise: discrete Gaussian N_Z(0, σ²) per cell from the CSPRNG (privacy/discrete-gaussian.ts). The
// discrete Gaussian with Δ = 1 satisfies ½(Δ/σ)²-concentrated DP, the guarantee of the continuous Gaussian
// mechanism (Canonne, Kamath, Steinke 2020, Thm 4), so one evaluation is accounted as the Gaussian
// mechanism with sample rate 1, one step and noise multiplier σ/Δ, in the institution's ledger under the
// release kind (ledger mode) "evaluation".
//
// Plain aggregation: the institution adds its full σ; the coordinator sees its own noisy histograms.
//
// Secure aggregation (distributed noise). TRUST ASSUMPTION, plainly: under SecAgg each institution adds
// only a share σ_c = σ/√t of the noise, where t is the secure sum's threshold: a sum that completes has at
// least t survivors, so, if the other survivors added their shares honestly, the released sum carries at
// least the noise of t shares. The event an institution records before its masked vector leaves is the
// noise it relies on: the Gaussian multiplier with the zCDP guarantee of t shares of σ_c (Kairouz, Liu and
// Steinke 2021, Thm 1, with Δ = 1 and no rounding). If other participants collude with the coordinator
// (add no noise, or reveal theirs), the noise protecting this institution is only its own share σ_c,
// i.e. a multiplier of σ/√t and a larger ε than recorded. SecAgg itself must also hold (the coordinator
// learns only the sum of at least t vectors).
//
// Cross-site evaluation (a run option): after the last round, each institution scores the final model
// on its validation rows and releases its own two noisy class histograms, alone (not in a secure sum),
// so that the coordinator can report every institution's own AUC of the final model. That is a release
// of its own: the same Gaussian mechanism on the same histograms (Δ = 1) with the institution's full
// planned σ (no share: nothing else is summed with it), recorded in its ledger as a "cross-site" event
// before the vector leaves. Its cost is planned, not found afterwards: it counts as one more planned
// evaluation release, so the evaluation share ε_e is spread over one more release and the run's total
// (training, evaluations and the cross-site release) still composes to the target.
//
// Budget: the run's target ε covers training and evaluation. The evaluation share ε_e is spread over the
// planned evaluation releases (every K rounds and always the last round, plus the cross-site release
// when the run has one); the evaluation σ is calibrated from it, then the training noise multiplier so
// that training and evaluation events compose (accountant, never adding ε's) to at most the target.
import { memoisedCalibration } from './calibration-memo.ts';
import type { AccountantKind } from './accountant.ts';
import { epsilonOfSigma } from './calibration-epsilon.ts';
import { calibrateNoiseMultiplier } from './calibrate.ts';
import { sampleDiscreteGaussian } from './discrete-gaussian.ts';
import type { ScoreHistogram } from './auc-histogram.ts';
import type { MechanismEvent } from './mechanism-event.ts';

/** L2 sensitivity of the released histogram vector to adding or removing one validation row. */
export const EVALUATION_SENSITIVITY = 1;
/** Default bins per class of a private evaluation (coarse: fewer cells, less total noise). */
export const DEFAULT_PRIVATE_EVALUATION_BINS = 32;
/** Default share of the run's target ε spent on evaluation when --evaluation-epsilon is not given. */
export const DEFAULT_EVALUATION_EPSILON_SHARE = 0.2;

function positiveInteger(x: number, name: string): void {
  if (!Number.isSafeInteger(x) || x < 1) throw new Error(`evaluation: ${name} must be a positive integer, got ${x}`);
}

function positiveNumber(x: number, name: string): void {
  if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) throw new Error(`evaluation: ${name} must be a positive number, got ${x}`);
}

/** True when round `round` (1-based) of a run of `rounds` evaluates: every `every` rounds, and the last round always. */
export function isEvaluationRound(round: number, rounds: number, every: number): boolean {
  positiveInteger(rounds, 'rounds');
  positiveInteger(every, 'every');
  return round === rounds || round % every === 0;
}

/** How many evaluations a run of `rounds` rounds with evaluate-every `every` plans. */
export function plannedEvaluationCount(rounds: number, every: number): number {
  positiveInteger(rounds, 'rounds');
  positiveInteger(every, 'every');
  return Math.floor(rounds / every) + (rounds % every === 0 ? 0 : 1);
}

/** The evaluation releases a run plans: its planned evaluations, plus one with cross-site evaluation at the end. */
export function plannedEvaluationReleases(rounds: number, every: number, crossSite = false): number {
  return plannedEvaluationCount(rounds, every) + (crossSite ? 1 : 0);
}

/** The noise multiplier (σ/Δ) of one evaluation when `evaluations` of them compose to (epsilon, delta). */
export function calibrateEvaluationSigma(o: { epsilon: number; delta: number; evaluations: number; accountant?: AccountantKind }): number {
  positiveNumber(o.epsilon, 'epsilon');
  positiveInteger(o.evaluations, 'evaluations');
  return (
    calibrateNoiseMultiplier({ targetEpsilon: o.epsilon, delta: o.delta, sampleRate: 1, steps: o.evaluations, accountant: o.accountant, tolerance: o.epsilon * 1e-3 }).noiseMultiplier *
    EVALUATION_SENSITIVITY
  );
}

/** The planned evaluations of a run as one mechanism event (sample rate 1, one step each). */
export function evaluationMechanism(sigma: number, evaluations: number): MechanismEvent {
  positiveNumber(sigma, 'sigma');
  positiveInteger(evaluations, 'evaluations');
  return { sampleRate: 1, noiseMultiplier: sigma / EVALUATION_SENSITIVITY, steps: evaluations };
}

/**
 * The training noise multiplier for which `steps` steps at sample rate `sampleRate`, composed with the
 * already planned `alongside` events (the evaluations), reach at most `targetEpsilon` at `delta`.
 * Bisection on σ (ε is decreasing in σ): the returned σ is the upper end of the final bracket.
 */
export function calibrateTrainingAlongside(o: { targetEpsilon: number; delta: number; sampleRate: number; steps: number; alongside: readonly MechanismEvent[]; accountant?: AccountantKind }): number {
  positiveNumber(o.targetEpsilon, 'targetEpsilon');
  const request = { ...o, alongside: o.alongside.map((e) => ({ sampleRate: e.sampleRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps })), accountant: o.accountant ?? 'rdp' };
  return memoisedCalibration('training-alongside', request, () => bisectTraining(request));
}

function bisectTraining(o: { targetEpsilon: number; delta: number; sampleRate: number; steps: number; alongside: readonly MechanismEvent[]; accountant: AccountantKind }, windowed = true): number {
  const search = epsilonOfSigma(o.accountant, (sigma) => [{ sampleRate: o.sampleRate, noiseMultiplier: sigma, steps: o.steps }, ...o.alongside], o.delta, windowed);
  let hi = 1;
  while (search.at(hi) > o.targetEpsilon) {
    if (hi >= 1e4) throw new Error(`evaluation: target epsilon ${o.targetEpsilon} is unreachable: the planned evaluations alone (or with noise multiplier 1e4 for training) exceed it`);
    hi *= 2;
  }
  let lo = hi / 2;
  while (lo > 1e-3 && search.at(lo) <= o.targetEpsilon) {
    hi = lo;
    lo /= 2;
  }
  // inside the bracket search.at() may read high (calibration-epsilon.ts): an accepted upper end is
  // exact-safe, and the final lower end is confirmed with every order
  let loFromWindow = false;
  for (let i = 0; i < 60 && hi - lo > hi * 1e-4; i++) {
    const mid = (lo + hi) / 2;
    if (search.at(mid) <= o.targetEpsilon) hi = mid;
    else {
      lo = mid;
      loFromWindow = true;
    }
  }
  if (loFromWindow && search.exact(lo) <= o.targetEpsilon) return bisectTraining(o, false);
  return hi;
}

/**
 * The Gaussian noise multiplier with the same zCDP guarantee as `survivors` independent N_Z(0, σ_c²)
 * shares summed, for a vector of `dimension` integer cells with L2 sensitivity Δ = 1 (Kairouz, Liu and
 * Steinke 2021, Thm 1): ε = min{√(Δ²/(nσ_c²) + ½τd), Δ/(√n σ_c) + τ√d}, multiplier = 1/ε.
 */
export function distributedEvaluationMultiplier(perClientSigma: number, survivors: number, dimension: number): number {
  positiveNumber(perClientSigma, 'perClientSigma');
  positiveInteger(survivors, 'survivors');
  positiveInteger(dimension, 'dimension');
  const variance = perClientSigma * perClientSigma;
  let tau = 0;
  for (let k = 1; k < survivors; k++) tau += Math.exp((-2 * Math.PI * Math.PI * variance * k) / (k + 1));
  tau *= 10;
  const n = survivors * variance;
  const d = EVALUATION_SENSITIVITY * EVALUATION_SENSITIVITY;
  const epsilon = Math.min(Math.sqrt(d / n + 0.5 * tau * dimension), EVALUATION_SENSITIVITY / Math.sqrt(n) + tau * Math.sqrt(dimension));
  return 1 / epsilon;
}

/**
 * The per-institution share σ_c under secure aggregation with threshold t: at least `requested` (what the
 * coordinator asked for) and large enough that t shares give at least the `requiredMultiplier` the
 * institution's own plan needs.
 */
export function distributedEvaluationShare(requiredMultiplier: number, threshold: number, dimension: number, requested = 0): number {
  positiveNumber(requiredMultiplier, 'requiredMultiplier');
  positiveInteger(threshold, 'threshold');
  let share = Math.max(requested, (requiredMultiplier * EVALUATION_SENSITIVITY) / Math.sqrt(threshold));
  for (let i = 0; i < 200 && distributedEvaluationMultiplier(share, threshold, dimension) < requiredMultiplier; i++) share *= 1.01;
  return share;
}

/** What an institution decided to add for one evaluation, and why. */
export interface EvaluationNoisePlan {
  /** Standard deviation of the noise this institution adds to every cell. */
  sigma: number;
  /** The noise multiplier its ledger records (σ/Δ, or the multiplier of t shares under secure aggregation). */
  recordedMultiplier: number;
  /** The multiplier the institution's own plan requires. */
  requiredMultiplier: number;
  /** Set when the coordinator asked for less noise than the plan requires (the plan's amount is added instead). */
  overridden?: string;
}

/**
 * Decides the noise of one evaluation. `required` is the multiplier the institution's own plan needs;
 * `requested` is what the task asks for (plain: the full σ; secure: the per-institution share); with
 * `secure`, the share relies on `secure.threshold` shares in the sum (see the trust assumption above).
 */
export function planEvaluationNoise(o: { required: number; requested: number; bins: number; secure?: { threshold: number } }): EvaluationNoisePlan {
  positiveNumber(o.required, 'required noise multiplier');
  const dimension = 2 * o.bins;
  if (o.secure) {
    const minimum = distributedEvaluationShare(o.required, o.secure.threshold, dimension);
    const sigma = Math.max(minimum, o.requested > 0 ? o.requested : 0);
    return {
      sigma,
      recordedMultiplier: distributedEvaluationMultiplier(sigma, o.secure.threshold, dimension),
      requiredMultiplier: o.required,
      overridden:
        o.requested < minimum
          ? `the coordinator asked for a noise share of ${o.requested.toFixed(3)}; this institution's plan requires ${minimum.toFixed(3)} (multiplier ${o.required.toFixed(3)} over ${o.secure.threshold} shares), which it adds instead`
          : undefined,
    };
  }
  const minimum = o.required * EVALUATION_SENSITIVITY;
  const sigma = Math.max(minimum, o.requested);
  return {
    sigma,
    recordedMultiplier: sigma / EVALUATION_SENSITIVITY,
    requiredMultiplier: o.required,
    overridden: o.requested < minimum ? `the coordinator asked for noise ${o.requested.toFixed(3)}; this institution's plan requires ${minimum.toFixed(3)}, which it adds instead` : undefined,
  };
}

/**
 * The released vector: [positive counts, negative counts] plus N_Z(0, σ²) per cell from the CSPRNG, as
 * 32-bit words (two's complement, so a negative noisy cell wraps and sums mod 2^32 decode signed).
 */
export function noisyHistogramVector(histogram: ScoreHistogram, sigma: number): Uint32Array {
  positiveNumber(sigma, 'sigma');
  const bins = histogram.bins;
  const noise = sampleDiscreteGaussian(sigma, new Int32Array(2 * bins));
  const out = new Uint32Array(2 * bins);
  for (let i = 0; i < bins; i++) {
    out[i] = (histogram.positive[i] + noise[i]) >>> 0;
    out[bins + i] = (histogram.negative[i] + noise[bins + i]) >>> 0;
  }
  return out;
}

/** An institution's noise plan for a run: its training noise multiplier and its planned evaluations. */
export interface InstitutionNoisePlan {
  trainingMultiplier: number;
  /** Null without private evaluation. */
  evaluation: { count: number; multiplier: number } | null;
}

/**
 * An institution's planned evaluation releases for a run and the noise multiplier each needs: the run's
 * evaluation share scaled by min(1, own budget / run target), spread over the planned evaluations (and
 * the cross-site release).
 */
export function planInstitutionEvaluations(o: {
  targetEpsilon: number;
  budget: { epsilon: number; delta: number };
  accountant?: AccountantKind;
  rounds: number;
  epsilon: number;
  every: number;
  crossSite?: boolean;
}): { count: number; multiplier: number } {
  const count = plannedEvaluationReleases(o.rounds, o.every, o.crossSite);
  const epsilon = o.epsilon * Math.min(1, o.budget.epsilon / o.targetEpsilon);
  return { count, multiplier: calibrateEvaluationSigma({ epsilon, delta: o.budget.delta, evaluations: count, accountant: o.accountant }) / EVALUATION_SENSITIVITY };
}

/**
 * How an institution splits its ε for a run: the evaluation share (the run's, scaled by
 * min(1, own budget / run target)) over the planned evaluations gives the evaluation noise multiplier;
 * the training multiplier is then calibrated so that all planned training steps and all planned
 * evaluations compose to min(run target, own budget).
 */
export function planInstitutionNoise(o: {
  targetEpsilon: number;
  budget: { epsilon: number; delta: number };
  accountant?: AccountantKind;
  training: { sampleRate: number; steps: number; rounds: number };
  evaluation?: { epsilon: number; every: number; crossSite?: boolean } | null;
}): InstitutionNoisePlan {
  const own = Math.min(o.targetEpsilon, o.budget.epsilon);
  const evaluation = o.evaluation ? planInstitutionEvaluations({ targetEpsilon: o.targetEpsilon, budget: o.budget, accountant: o.accountant, rounds: o.training.rounds, ...o.evaluation }) : null;
  const trainingMultiplier = calibrateTrainingAlongside({
    targetEpsilon: own,
    delta: o.budget.delta,
    sampleRate: o.training.sampleRate,
    steps: o.training.steps * o.training.rounds,
    alongside: evaluation ? [evaluationMechanism(evaluation.multiplier * EVALUATION_SENSITIVITY, evaluation.count)] : [],
    accountant: o.accountant,
  });
  return { trainingMultiplier, evaluation };
}

/**
 * The lowest value a released cell can take: a count (>= 0) plus discrete-Gaussian noise of standard
 * deviation σ = multiplier · Δ. Noise below -12σ has probability under e^-72 (about 5e-32) per cell, so a
 * cell below this floor is not something the mechanism produces: the sender is refused, not averaged in.
 */
export function noisyCellFloor(noiseMultiplier: number): number {
  return -12 * noiseMultiplier * EVALUATION_SENSITIVITY;
}
