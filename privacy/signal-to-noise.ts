// Does differential privacy drown the training signal? An estimate from the run's public plan, before the
// run, and a watch over the private evaluations during it.
//
// Record level (DP-SGD). One step sums the clipped per-example gradients of a Poisson batch (expected size
// E[B] = q·n), adds Gaussian noise of std σ·C per coordinate and divides by the public batch size B. The
// clipped mean gradient has L2 norm at most C, so spread over d parameters its per-coordinate scale is at
// most C/√d (a gradient concentrated on fewer coordinates is larger there, but most coordinates of a model
// then carry no signal at all). Per coordinate and step:
//     noise std  σ·C/B,   best-case signal  (E[B]/B)·C/√d,   ratio  ρ = σ·√d / E[B].
// ρ is the noise-to-signal ratio of one step in the best case (every example's clipped gradient pointing the
// same way); real gradients disagree across examples, so the true ratio is larger. Averaging T independent
// steps divides it by √T at best, so a step ratio of 4 needs 16 perfectly aligned steps before one
// coordinate's accumulated signal matches one step's noise, and Adam, which scales each coordinate by its
// running RMS (dominated by the noise when ρ > 1), moves every coordinate by about the learning rate in a
// direction that is mostly noise. Beyond STEP_RATIO_LIMIT the run is reported as hopeless. The run ratio
// ρ / √(steps·rounds·institutions) is the ideal averaging over the whole run; above 1 even that cannot help.
// What lowers ρ: fewer parameters d (a logistic model has inputs + 1), a larger expected batch (more rows
// or a larger sampling rate q; under a fixed ε a larger q also raises σ, but more slowly than q·n grows),
// a smaller σ (fewer planned rounds or steps for the same ε).
//
// Client level (DP-FedAvg). A round sums K updates clipped to S and adds noise of std z·S per coordinate:
//     ρ = z·√d / K   with K = institutions × client sample rate (expected participants).
//
// The coordinator does not know an institution's row count; without one the expected batch is taken to be
// the public batch size B (the plan assumes q·n ≈ B). The demo knows its banks' row counts and passes them.

import type { TaskConfig } from '@dpfed/proto/task-config';
import { planInstitutionNoise } from './evaluation-mechanism.ts';

/** Above this best-case noise-to-signal ratio per step (per round in client mode), the plan is hopeless. */
export const STEP_RATIO_LIMIT = 4;
/** Evaluations without improvement before the run watch warns. */
export const STALLED_AFTER_EVALUATIONS = 3;

export interface RecordPlan {
  mode: 'record';
  /** σ calibrated for the planned rounds and target ε. */
  noiseMultiplier: number;
  /** Public Poisson sampling rate q. */
  sampleRate: number;
  /** Public batch size B the noisy sum is divided by. */
  batchSize: number;
  /** Training rows per institution, when known (else E[B] = B). */
  rowsPerInstitution?: number;
  stepsPerRound: number;
  rounds: number;
  /** Institutions whose updates are summed each round. */
  institutions: number;
  /** Model parameters d. */
  parameters: number;
  optimizer: 'sgd' | 'adam';
  /** True for a logistic model (no hidden layer). */
  logistic: boolean;
}

export interface ClientPlan {
  mode: 'client';
  noiseMultiplier: number;
  clientSampleRate: number;
  institutions: number;
  rounds: number;
  parameters: number;
  logistic: boolean;
}

export interface SignalToNoise {
  /** Best-case noise-to-signal ratio of one step (record) or one round (client). */
  stepRatio: number;
  /** The step ratio after ideal averaging over the whole run. */
  runRatio: number;
  /** The expected batch E[B] used (record mode). */
  expectedBatch?: number;
  hopeless: boolean;
  /** A warning with concrete suggestions, when hopeless. */
  warning: string | null;
}

function checkPositive(name: string, v: number): void {
  if (!(Number.isFinite(v) && v > 0)) throw new Error(`signal-to-noise: ${name} must be a positive finite number, got ${v}`);
}

/** The plan's estimate (see the top of this file); a warning naming what to change when it is hopeless. */
export function estimateSignalToNoise(plan: RecordPlan | ClientPlan): SignalToNoise {
  checkPositive('noiseMultiplier', plan.noiseMultiplier);
  checkPositive('parameters', plan.parameters);
  checkPositive('institutions', plan.institutions);
  checkPositive('rounds', plan.rounds);
  const rootD = Math.sqrt(plan.parameters);
  if (plan.mode === 'client') {
    checkPositive('clientSampleRate', plan.clientSampleRate);
    const expected = plan.institutions * plan.clientSampleRate;
    const stepRatio = (plan.noiseMultiplier * rootD) / expected;
    const runRatio = stepRatio / Math.sqrt(plan.rounds);
    const hopeless = stepRatio > STEP_RATIO_LIMIT || runRatio > 1;
    const suggestions = [
      ...(plan.logistic ? [] : [`a logistic model (${plan.parameters} parameters now; noise per coordinate grows with √parameters)`]),
      `more institutions per round (about ${expected.toFixed(1)} expected now)`,
      'fewer rounds or a larger --epsilon (a smaller noise multiplier)',
    ];
    return {
      stepRatio,
      runRatio,
      hopeless,
      warning: hopeless
        ? `client-level DP noise drowns the signal: noise multiplier ${plan.noiseMultiplier.toFixed(2)} over ${plan.parameters} parameters and ${expected.toFixed(1)} expected participants gives a noise-to-signal ratio of at least ${stepRatio.toFixed(1)} per round (${runRatio.toFixed(2)} over the run); the model will hardly learn. Consider: ${suggestions.join('; ')}`
        : null,
    };
  }
  checkPositive('sampleRate', plan.sampleRate);
  checkPositive('batchSize', plan.batchSize);
  checkPositive('stepsPerRound', plan.stepsPerRound);
  const expectedBatch = plan.rowsPerInstitution !== undefined ? plan.sampleRate * plan.rowsPerInstitution : plan.batchSize;
  if (!(expectedBatch > 0)) throw new Error(`signal-to-noise: rowsPerInstitution must be positive, got ${plan.rowsPerInstitution}`);
  const stepRatio = (plan.noiseMultiplier * rootD) / expectedBatch;
  const runRatio = stepRatio / Math.sqrt(plan.stepsPerRound * plan.rounds * plan.institutions);
  const hopeless = stepRatio > STEP_RATIO_LIMIT || runRatio > 1;
  const suggestions: string[] = [];
  if (!plan.logistic || plan.optimizer !== 'sgd')
    suggestions.push(`--model logistic --optimizer sgd (${plan.parameters} parameters now: the noise per coordinate grows with √parameters, and Adam rescales every coordinate to the noise)`);
  suggestions.push(
    `a larger expected batch: more rows per institution or a larger --sample-rate (expected batch ${expectedBatch.toFixed(1)} now${plan.rowsPerInstitution !== undefined ? `: q ${plan.sampleRate} × ${plan.rowsPerInstitution} rows` : ''})`,
  );
  suggestions.push(`fewer --rounds or --local-steps for the same ε (σ ${plan.noiseMultiplier.toFixed(2)} now, calibrated for ${plan.rounds} rounds of ${plan.stepsPerRound} steps)`);
  suggestions.push('more data');
  return {
    stepRatio,
    runRatio,
    expectedBatch,
    hopeless,
    warning: hopeless
      ? `DP noise drowns the signal: σ ${plan.noiseMultiplier.toFixed(2)} over ${plan.parameters} parameters with an expected batch of ${expectedBatch.toFixed(1)} gives a noise-to-signal ratio of at least ${stepRatio.toFixed(1)} per step and coordinate (σ·√parameters / expected batch; above ${STEP_RATIO_LIMIT} the model hardly learns). Consider: ${suggestions.join('; ')}`
      : null,
  };
}

/**
 * Watches the global model's private evaluations during a run: after STALLED_AFTER_EVALUATIONS evaluations
 * (counting the first) whose AUC stays within the first one's auc_stderr of it, it warns once that the
 * model is not improving. Exact evaluations (no auc_stderr) are compared with a zero margin.
 */
export class EvaluationWatch {
  private first: { auc: number; stderr: number; round: number } | null = null;
  private count = 0;
  private warned = false;

  constructor(private readonly after = STALLED_AFTER_EVALUATIONS) {}

  /** Feeds one committed round; returns the warning the first time the run looks stalled, else null. */
  observe(round: { round: number; evaluated?: boolean; auc: number; aucStderr?: number }): string | null {
    if (round.evaluated === false || !Number.isFinite(round.auc)) return null;
    this.count++;
    if (!this.first) {
      this.first = { auc: round.auc, stderr: round.aucStderr ?? 0, round: round.round };
      return null;
    }
    if (round.auc > this.first.auc + this.first.stderr) {
      this.warned = true; // improving: no warning for this run
      return null;
    }
    if (this.warned || this.count < this.after) return null;
    this.warned = true;
    return (
      `no improvement after ${this.count} evaluations: global AUC ${round.auc.toFixed(4)} at round ${round.round} is within the first evaluation's ` +
      `${this.first.stderr ? `auc_stderr (${this.first.auc.toFixed(4)} ± ${this.first.stderr.toFixed(4)} at round ${this.first.round})` : `AUC (${this.first.auc.toFixed(4)} at round ${this.first.round})`}; ` +
      'the privacy noise may drown the signal: consider a logistic model with --optimizer sgd, a larger --batch-size or --sample-rate, fewer rounds, or more data'
    );
  }
}

/**
 * The estimate for a run's plan: σ as an institution whose budget covers the run's target calibrates it
 * (training beside the planned private evaluations), `institutions` summed per round (--min-clients, or
 * the demo's banks), and the rows per institution when known. Null with privacy off.
 */
export function estimateForTask(
  task: Pick<TaskConfig, 'privacy' | 'evaluation' | 'localSteps' | 'batchSize' | 'optimizer'>,
  o: { parameters: number; logistic: boolean; institutions: number; rowsPerInstitution?: number },
): SignalToNoise | null {
  const { privacy } = task;
  if (privacy.mode === 'client' && privacy.client) {
    const c = privacy.client;
    return estimateSignalToNoise({
      mode: 'client',
      noiseMultiplier: c.noiseMultiplier,
      clientSampleRate: c.clientSampleRate,
      institutions: o.institutions,
      rounds: c.plannedRounds,
      parameters: o.parameters,
      logistic: o.logistic,
    });
  }
  if (privacy.mode !== 'record' || !privacy.record) return null;
  const r = privacy.record;
  const share = task.evaluation.private;
  const { trainingMultiplier } = planInstitutionNoise({
    targetEpsilon: r.targetEpsilon,
    budget: { epsilon: r.targetEpsilon, delta: r.delta },
    accountant: r.accountant,
    training: { sampleRate: r.sampleRate, steps: task.localSteps, rounds: r.plannedRounds },
    evaluation: share ? { epsilon: share.epsilon, every: task.evaluation.every ?? 1, crossSite: task.evaluation.crossSite } : null,
  });
  return estimateSignalToNoise({
    mode: 'record',
    noiseMultiplier: trainingMultiplier,
    sampleRate: r.sampleRate,
    batchSize: task.batchSize,
    rowsPerInstitution: o.rowsPerInstitution,
    stepsPerRound: task.localSteps,
    rounds: r.plannedRounds,
    institutions: o.institutions,
    parameters: o.parameters,
    optimizer: task.optimizer,
    logistic: o.logistic,
  });
}
