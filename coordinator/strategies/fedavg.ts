// FedAvg (McMahan et al. 2017): the new global model is the global plus the weighted mean of the
// institutions' deltas, weights being example counts (or 1 each under uniform weighting). It needs only
// Σ w_k·Δ_k and Σ w_k, so it runs unchanged on a secure-aggregation sum.
import type { EvaluationTotals } from '@dpfed/privacy/evaluation-vector';
import { metricsFromTotals, type AggregatedSum, type ClientUpdate, type FitConfig, type Strategy, type RoundMetrics } from '../strategy.ts';
import { checkUpdatesForAggregation, validateAggregatedSum } from '../update-validation.ts';
import { WeightedSumBuffer, scaleAndAdd } from '../weighted-sum.ts';

export class FedAvgStrategy implements Strategy {
  readonly name: string = 'fedavg';
  readonly worksOnSums = true;
  protected readonly accumulator = new WeightedSumBuffer();

  configureFit(_round: number): FitConfig {
    return { proximalMu: 0 };
  }

  aggregateFit(_round: number, global: Float32Array, updates: readonly ClientUpdate[]): Float32Array {
    checkUpdatesForAggregation(updates, global.length);
    const sum = this.accumulator.weightedSum(
      updates.map((u) => u.delta),
      updates.map((u) => u.weight),
      global.length,
    );
    return scaleAndAdd(global, sum, 1 / totalWeight(updates));
  }

  aggregateFitFromSum(_round: number, global: Float32Array, sum: AggregatedSum): Float32Array {
    validateAggregatedSum(sum, global.length);
    return scaleAndAdd(global, this.accumulator.load(sum.weightedDeltaSum), 1 / sum.totalWeight);
  }

  evaluate(_round: number, totals: EvaluationTotals): RoundMetrics {
    return metricsFromTotals(totals);
  }

  saveState(): Uint8Array | null {
    return null;
  }

  loadState(state: Uint8Array | null): void {
    if (state !== null && state.length > 0) throw new Error(`${this.name}: has no server state, got ${state.length} bytes`);
  }
}

export function totalWeight(updates: readonly ClientUpdate[]): number {
  let total = 0;
  for (const u of updates) total += u.weight;
  return total;
}
