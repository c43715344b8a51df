// The strategy factory: a --strategy name and its options to a Strategy instance.
import { STRATEGY_NAMES, type Strategy, type StrategyName, type StrategyOptions } from '../strategy.ts';
import { FedAdamStrategy } from './fedadam.ts';
import { FedAvgStrategy } from './fedavg.ts';
import { FedProxStrategy } from './fedprox.ts';
import { TrimmedMeanStrategy } from './trimmed-mean.ts';

export { FedAdamStrategy, FedAvgStrategy, FedProxStrategy, TrimmedMeanStrategy };

export function createStrategy(name: StrategyName, opts: StrategyOptions = {}): Strategy {
  switch (name) {
    case 'fedavg':
      return new FedAvgStrategy();
    case 'fedprox':
      return new FedProxStrategy(opts.proximalMu);
    case 'fedadam':
      return new FedAdamStrategy({ serverLearningRate: opts.serverLearningRate, beta1: opts.beta1, beta2: opts.beta2, tau: opts.tau });
    case 'trimmed-mean':
      return new TrimmedMeanStrategy(opts.trimFraction);
    default:
      throw new Error(`unknown strategy ${JSON.stringify(name)}; valid strategies are: ${STRATEGY_NAMES.join(', ')}`);
  }
}
