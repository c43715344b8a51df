// The checks a result passes before it counts: the names, shapes and dtypes of its tensors as they
// arrive, then its values (finite update of the model's length, histogram totals, noisy cells within what
// the recorded noise allows, the figures an exact evaluation reports). Each refusal is an RpcError
// (INVALID_ARGUMENT) naming the field at fault, so that one result is refused and the round goes on.
import { noisyCellFloor } from '@dpfed/privacy/evaluation-mechanism';
import type { NoisyHistograms } from '@dpfed/privacy/evaluation-vector';
import { clipToNorm, l2Norm } from '@dpfed/privacy/update-clipping';
import type { TensorData } from '@dpfed/proto/tensor-stream';
import type { DTypeName } from '@dpfed/proto/wire';
import { invalidArgument } from './rpc-error.ts';
import type { ResultSink } from './round-types.ts';
import { validateUpdate } from './update-validation.ts';
import { HISTOGRAM_TENSORS } from '@dpfed/proto/shared-names';

/** The two tensors of an evaluation, exact or noisy: the score histogram of each class. */
export const HISTOGRAM_NAMES = HISTOGRAM_TENSORS;

/** One parameter tensor of the model, in spec order. */
export interface ParameterShape {
  name: string;
  shape: number[];
  size: number;
}

/** The check of an evaluation's two tensors, exact or noisy: the class histograms, `bins` UINT32 cells each. */
export function expectHistogramTensor(bins: number): ResultSink['expectTensor'] {
  return (name, shape, dtype, index) => {
    if (name !== HISTOGRAM_NAMES[index]) throw invalidArgument(`tensor.name: expected "${HISTOGRAM_NAMES[index]}", got "${name}"`);
    if (shape.length !== 1 || shape[0] !== bins) throw invalidArgument(`tensor.shape: "${name}" must be [${bins}]`);
    if (dtype !== 'UINT32') throw invalidArgument(`tensor.dtype: "${name}" must be UINT32`);
  };
}

/** The check of an update's tensors: the model's parameters in spec order, FLOAT32, each of its shape. */
export function expectParameterTensor(shapes: readonly ParameterShape[]): ResultSink['expectTensor'] {
  return (name, shape, dtype, index) => {
    const want = shapes[index];
    if (!want || name !== want.name) throw invalidArgument(`tensor.name: expected "${want?.name}" at position ${index}, got "${name}"`);
    if (shape.length !== want.shape.length || shape.some((d, i) => d !== want.shape[i])) {
      throw invalidArgument(`tensor.shape: "${name}" must be [${want.shape.join(',')}], got [${shape.join(',')}]`);
    }
    if (dtype !== 'FLOAT32') throw invalidArgument(`tensor.dtype: "${name}" must be FLOAT32, got ${dtype}`);
  };
}

/**
 * Where each parameter tensor of an update is received: its slice of one flat vector `into` (spec order),
 * so the update needs no copy after the stream. undefined for a tensor that does not fit (expectTensor
 * refuses it).
 */
export function parameterPlacement(shapes: readonly ParameterShape[], into: Float32Array): (index: number, dtype: DTypeName, byteLength: number) => TensorData | undefined {
  const offsets: number[] = [];
  let offset = 0;
  for (const p of shapes) {
    offsets.push(offset);
    offset += p.size;
  }
  return (index, dtype, byteLength) => {
    const want = shapes[index];
    if (!want || dtype !== 'FLOAT32' || byteLength !== want.size * 4) return undefined;
    return into.subarray(offsets[index], offsets[index] + want.size);
  };
}

/**
 * A received update: finite values of the model's length, else refused. Bounded influence: an update
 * above `bound` is clipped to it in place; returns whether it was.
 */
export function acceptUpdate(delta: Float32Array, length: number, bound: number): boolean {
  try {
    validateUpdate(delta, length);
  } catch (error) {
    throw invalidArgument(`tensor.data: ${(error as Error).message}`);
  }
  if (l2Norm(delta) <= bound) return false;
  clipToNorm(delta, bound);
  return true;
}

/** An exact evaluation reports a finite loss ≥ 0 and an accuracy in [0, 1]. */
export function checkEvaluationMetrics(metrics: Record<string, number>): void {
  for (const key of ['loss', 'accuracy']) {
    const v = metrics[key];
    if (v === undefined || !Number.isFinite(v)) throw invalidArgument(`header.metrics.${key}: required finite number`);
  }
  // figures no evaluation produces: a negative loss, an accuracy outside [0, 1]
  if (metrics.loss < 0) throw invalidArgument(`header.metrics.loss: ${metrics.loss} is negative`);
  if (metrics.accuracy > 1 || metrics.accuracy < 0) throw invalidArgument(`header.metrics.accuracy: ${metrics.accuracy} is outside [0, 1]`);
}

/** The examples an exact evaluation's histograms count; refused unless they are the `numExamples` its header declares. */
export function histogramTotal(positive: Uint32Array, negative: Uint32Array, numExamples: number): number {
  let n = 0;
  for (let i = 0; i < positive.length; i++) n += positive[i] + negative[i];
  if (n !== numExamples) throw invalidArgument(`header.num_examples: ${numExamples} does not match the histogram total ${n}`);
  return n;
}

/** Noisy histograms whose cells no count plus noise of `noiseMultiplier` goes below are refused. */
export function checkNoisyCells(noisy: NoisyHistograms, noiseMultiplier: number): void {
  const floor = noisyCellFloor(noiseMultiplier);
  for (const [name, cells] of [
    [HISTOGRAM_NAMES[0], noisy.positive],
    [HISTOGRAM_NAMES[1], noisy.negative],
  ] as const) {
    const i = cells.findIndex((v) => v < floor);
    if (i >= 0) throw invalidArgument(`tensor.data: "${name}" cell ${i} is ${cells[i]}, below ${floor.toFixed(1)}: no count plus the recorded noise goes that low`);
  }
}
