// FedProx (Li et al. 2020): the server aggregates exactly as FedAvg; what changes is local training,
// where each institution adds (mu/2)·||w − w_global||² to its loss. configureFit sends that mu.
import type { FitConfig } from '../strategy.ts';
import { FedAvgStrategy } from './fedavg.ts';

export const DEFAULT_PROXIMAL_MU = 0.01;

export class FedProxStrategy extends FedAvgStrategy {
  override readonly name: string = 'fedprox';
  readonly proximalMu: number;

  constructor(proximalMu: number = DEFAULT_PROXIMAL_MU) {
    super();
    if (typeof proximalMu !== 'number' || !Number.isFinite(proximalMu) || proximalMu < 0) {
      throw new Error(`fedprox: proximalMu must be a finite number >= 0, got ${proximalMu}`);
    }
    this.proximalMu = proximalMu;
  }

  override configureFit(_round: number): FitConfig {
    return { proximalMu: this.proximalMu };
  }
}
