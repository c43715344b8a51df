// The strategy: a few hooks the round loop calls (as in Flower's Strategy: configure, aggregate,
// evaluate); the loop itself stays in coordinator/round-machine.ts. Updates are flat parameter deltas
// (local − global) in spec order.
import { aucFromHistogram, aucStandardError } from '@dpfed/privacy/auc-histogram';
import type { EvaluationTotals } from '@dpfed/privacy/evaluation-vector';
import type { Contribution } from './round-types.ts';

export interface ClientUpdate {
  institutionId: string;
  /** Weight of the update in a weighted mean (example count, or 1 for uniform weighting). */
  weight: number;
  /** local parameters − global parameters, flat, in parameter-spec order. */
  delta: Float32Array;
}

/**
 * What secure aggregation reveals: only the weighted sum of deltas and the total weight. Plain rounds
 * hand strategies that work on sums the same, summed in float64 as the updates arrived.
 */
export interface AggregatedSum {
  weightedDeltaSum: Float32Array | Float64Array;
  totalWeight: number;
  count: number;
}

/** A round's global evaluation of the new model, from its evaluators' summed results. NaN when nobody evaluated. */
export interface RoundMetrics {
  auc: number;
  loss: number;
  accuracy: number;
  /** Validation examples behind the figures (under private evaluation: the clamped noisy total). */
  examples: number;
  /** Private evaluation: the AUC's expected error due to the evaluation noise (absent for exact evaluation). */
  aucStderr?: number;
}

export interface FitConfig {
  /** FedProx proximal coefficient (0 = plain local SGD). */
  proximalMu: number;
}

export interface Strategy {
  readonly name: string;
  /** True when the strategy can work from the weighted sum alone (required under secure aggregation). */
  readonly worksOnSums: boolean;
  /** Per-round settings sent to the clients with their training task. */
  configureFit(round: number): FitConfig;
  /** The new global parameters from the current ones and the round's updates. Never mutates `global`. */
  aggregateFit(round: number, global: Float32Array, updates: readonly ClientUpdate[]): Float32Array;
  /** The same from the secure sum only; throws for strategies that need the individual updates. */
  aggregateFitFromSum(round: number, global: Float32Array, sum: AggregatedSum): Float32Array;
  /**
   * The round's global metrics from what its evaluators sent, summed (plainly or by secure aggregation):
   * score histograms per class, loss and correct counts. The coordinator holds no records, so this is
   * the only evaluation there is (Flower's aggregate_evaluate; its server-side evaluate has no data here).
   */
  evaluate(round: number, totals: EvaluationTotals): RoundMetrics;
  /** Server-side optimiser state to persist with the round (FedAdam moments), and its restore. */
  saveState(): Uint8Array | null;
  loadState(state: Uint8Array | null): void;
}

export type StrategyName = 'fedavg' | 'fedprox' | 'fedadam' | 'trimmed-mean';
export const STRATEGY_NAMES: readonly StrategyName[] = ['fedavg', 'fedprox', 'fedadam', 'trimmed-mean'];

export interface StrategyOptions {
  proximalMu?: number; // fedprox, default 0.01
  serverLearningRate?: number; // fedadam, default 0.01
  beta1?: number; // fedadam, default 0.9
  beta2?: number; // fedadam, default 0.99
  tau?: number; // fedadam adaptivity, default 1e-3
  trimFraction?: number; // trimmed-mean, fraction cut at each end, default 0.1
}

/**
 * The evaluation every strategy here uses: AUC from the summed ROC, and the example-weighted loss and
 * accuracy. Under private evaluation (totals.noiseSigma set) the histogram is the clamped noisy sum, and
 * the AUC's standard error from re-noising it with the same σ comes with it.
 */
export function metricsFromTotals(totals: EvaluationTotals): RoundMetrics {
  const noisy = totals.noiseSigma !== undefined && totals.noiseSigma > 0;
  if (!(totals.n > 0)) return { auc: Number.NaN, loss: Number.NaN, accuracy: Number.NaN, examples: 0, ...(noisy ? { aucStderr: Number.NaN } : {}) };
  const metrics: RoundMetrics = { auc: aucFromHistogram(totals.histogram), loss: totals.lossSum / totals.n, accuracy: totals.correct / totals.n, examples: totals.n };
  if (noisy) metrics.aucStderr = aucStandardError(totals.histogram, totals.noiseSigma!);
  return metrics;
}

/**
 * The aggregate phase of a round: the strategy's new global model from what the round collected, the
 * updates' weighted sum or the updates themselves (whose vectors go back to their pool afterwards).
 */
export function aggregateContribution(strategy: Strategy, round: number, global: Float32Array, contribution: Contribution): Float32Array {
  if ('sum' in contribution) return strategy.aggregateFitFromSum(round, global, contribution.sum);
  const next = strategy.aggregateFit(round, global, contribution.updates);
  contribution.release();
  return next;
}
