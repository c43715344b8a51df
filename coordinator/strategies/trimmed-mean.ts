// Coordinate-wise trimmed mean (Yin et al. 2018): for every parameter, sort the n institutions' delta
// values, drop the floor(trimFraction·n) smallest and as many largest, and average the rest. Robust to a
// minority of wild or malicious updates. Weights are ignored: an order statistic has no weighted form
// that keeps the robustness (a big weight would let one institution dominate again).
// It needs every individual update, so it cannot run from a secure-aggregation sum.
import type { EvaluationTotals } from '@dpfed/privacy/evaluation-vector';
import { metricsFromTotals, type AggregatedSum, type ClientUpdate, type FitConfig, type Strategy, type RoundMetrics } from '../strategy.ts';
import { checkUpdatesForAggregation } from '../update-validation.ts';

export const DEFAULT_TRIM_FRACTION = 0.1;

export class TrimmedMeanStrategy implements Strategy {
  readonly name = 'trimmed-mean';
  readonly worksOnSums = false;
  readonly trimFraction: number;

  constructor(trimFraction: number = DEFAULT_TRIM_FRACTION) {
    if (typeof trimFraction !== 'number' || !Number.isFinite(trimFraction) || trimFraction < 0 || trimFraction >= 0.5) {
      throw new Error(`trimmed-mean: trimFraction must be in [0, 0.5), got ${trimFraction}`);
    }
    this.trimFraction = trimFraction;
  }

  /** How many values are cut at each end for n updates. */
  trimCount(n: number): number {
    return Math.floor(this.trimFraction * n);
  }

  configureFit(_round: number): FitConfig {
    return { proximalMu: 0 };
  }

  aggregateFit(_round: number, global: Float32Array, updates: readonly ClientUpdate[]): Float32Array {
    checkUpdatesForAggregation(updates, global.length);
    const n = updates.length;
    const cut = this.trimCount(n);
    const kept = n - 2 * cut; // >= 1 because trimFraction < 0.5
    const deltas = updates.map((u) => u.delta);
    const column = new Float64Array(n);
    const out = new Float32Array(global.length);
    for (let i = 0; i < global.length; i++) {
      for (let k = 0; k < n; k++) column[k] = deltas[k][i];
      insertionSort(column);
      let sum = 0;
      for (let k = cut; k < n - cut; k++) sum += column[k];
      out[i] = global[i] + sum / kept;
    }
    return out;
  }

  aggregateFitFromSum(_round: number, _global: Float32Array, _sum: AggregatedSum): Float32Array {
    throw new Error(
      'trimmed-mean needs the individual updates (it sorts each coordinate across institutions) and cannot run from a sum: ' +
        'it cannot be used under secure aggregation (secagg or ckks). Use fedavg, fedprox or fedadam, or --aggregation plain.',
    );
  }

  evaluate(_round: number, totals: EvaluationTotals): RoundMetrics {
    return metricsFromTotals(totals);
  }

  saveState(): Uint8Array | null {
    return null;
  }

  loadState(state: Uint8Array | null): void {
    if (state !== null && state.length > 0) throw new Error(`trimmed-mean: has no server state, got ${state.length} bytes`);
  }
}

/** In place; n is the number of institutions in a round (small), where insertion sort is fastest. */
function insertionSort(a: Float64Array): void {
  for (let i = 1; i < a.length; i++) {
    const x = a[i];
    let j = i - 1;
    while (j >= 0 && a[j] > x) {
      a[j + 1] = a[j];
      j--;
    }
    a[j + 1] = x;
  }
}
