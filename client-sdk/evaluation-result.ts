// An evaluation result as it goes on the wire: the two class histograms (positives, then negatives, `bins`
// cells each) as UINT32 tensors, and the header of an exact (privacy off) evaluation. The round's
// evaluation and the run's cross-site evaluation both send these.
import { histogramToVector } from '@dpfed/privacy/auc-histogram';
import { TENSOR_NAMES } from '@dpfed/proto/shared-names';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { ResultHeaderMsg } from '@dpfed/proto/wire';
import type { EvalOutcome } from './learner.ts';

/** The histogram vector (positives then negatives) as the two tensors of an evaluation result. */
export function histogramTensors(vector: Uint32Array, bins: number): NamedTensor[] {
  return [
    { name: TENSOR_NAMES.histogramPositive, shape: [bins], dtype: 'UINT32', data: vector.subarray(0, bins) },
    { name: TENSOR_NAMES.histogramNegative, shape: [bins], dtype: 'UINT32', data: vector.subarray(bins, 2 * bins) },
  ];
}

/** An exact evaluation (privacy off): its header without the envelope, and its histogram tensors. */
export function exactEvaluationResult(outcome: EvalOutcome): { header: Omit<ResultHeaderMsg, 'envelope'>; tensors: NamedTensor[] } {
  return {
    header: {
      kind: 'EVALUATE_RESULT',
      numExamples: outcome.numExamples,
      metrics: { loss: outcome.loss, accuracy: outcome.accuracy },
      privacyEvent: undefined,
      tensorCount: 2,
      masked: false,
      encrypted: false,
    },
    tensors: histogramTensors(histogramToVector(outcome.histogram), outcome.histogram.bins),
  };
}
