// The check of an evaluation result's two tensors, exact or noisy, in a round or in the cross-site
// evaluation: the class histograms "histogram/positive" then "histogram/negative", `bins` UINT32 cells each.
import type { ResultSink } from './round-machine.ts';
import { invalidArgument } from './rpc-error.ts';

export const HISTOGRAM_NAMES = ['histogram/positive', 'histogram/negative'] as const;

export function expectHistogramTensor(bins: number): ResultSink['expectTensor'] {
  return (name, shape, dtype, index) => {
    if (name !== HISTOGRAM_NAMES[index]) throw invalidArgument(`tensor.name: expected "${HISTOGRAM_NAMES[index]}", got "${name}"`);
    if (shape.length !== 1 || shape[0] !== bins) throw invalidArgument(`tensor.shape: "${name}" must be [${bins}]`);
    if (dtype !== 'UINT32') throw invalidArgument(`tensor.dtype: "${name}" must be UINT32`);
  };
}
