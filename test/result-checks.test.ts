import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { checkRound, checkRun } from '@dpfed/coordinator/envelope-checks';
import {
  acceptUpdate,
  checkEvaluationMetrics,
  checkNoisyCells,
  expectHistogramTensor,
  expectParameterTensor,
  histogramTotal,
  parameterPlacement,
  type ParameterShape,
} from '@dpfed/coordinator/result-checks';
import { notCollecting, resultRoute, secAggRoute } from '@dpfed/coordinator/result-routing';
import type { RpcError } from '@dpfed/coordinator/rpc-error';
import { noisyCellFloor } from '@dpfed/privacy/evaluation-mechanism';
import type { Envelope, ResultHeaderMsg, SecAggMessageMsg } from '@dpfed/proto/wire';

/** The RpcError `fn` throws (fails the test when it throws none). */
function refusal(fn: () => unknown): RpcError {
  try {
    fn();
  } catch (error) {
    return error as RpcError;
  }
  throw new Error('expected a refusal');
}

const shapes: ParameterShape[] = [
  { name: 'dense/kernel', shape: [3, 2], size: 6 },
  { name: 'dense/bias', shape: [2], size: 2 },
];

describe('tensor checks of a result as it arrives', () => {
  it('an update: the parameters in spec order, FLOAT32, each of its shape', () => {
    const expect1 = expectParameterTensor(shapes);
    expect(() => expect1('dense/kernel', [3, 2], 'FLOAT32', 0)).not.toThrow();
    expect(refusal(() => expect1('dense/bias', [2], 'FLOAT32', 0)).message).toBe('tensor.name: expected "dense/kernel" at position 0, got "dense/bias"');
    expect(refusal(() => expect1('dense/kernel', [2, 3], 'FLOAT32', 0)).message).toBe('tensor.shape: "dense/kernel" must be [3,2], got [2,3]');
    expect(refusal(() => expect1('dense/bias', [2], 'FLOAT64', 1)).message).toBe('tensor.dtype: "dense/bias" must be FLOAT32, got FLOAT64');
    expect(refusal(() => expect1('extra', [1], 'FLOAT32', 2)).code).toBe(status.INVALID_ARGUMENT);
  });

  it('an update is received into slices of one flat vector; a tensor that does not fit gets no slice', () => {
    const flat = new Float32Array(8);
    const place = parameterPlacement(shapes, flat);
    const bias = place(1, 'FLOAT32', 8) as Float32Array;
    bias.set([7, 9]);
    expect([...flat]).toEqual([0, 0, 0, 0, 0, 0, 7, 9]);
    expect((place(0, 'FLOAT32', 24) as Float32Array).length).toBe(6);
    expect(place(0, 'FLOAT32', 20)).toBeUndefined();
    expect(place(1, 'UINT32', 8)).toBeUndefined();
    expect(place(2, 'FLOAT32', 4)).toBeUndefined();
  });

  it('an evaluation: two UINT32 histograms of `bins` cells, positive then negative', () => {
    const check = expectHistogramTensor(8);
    expect(() => check('histogram/positive', [8], 'UINT32', 0)).not.toThrow();
    expect(() => check('histogram/negative', [8], 'UINT32', 1)).not.toThrow();
    expect(refusal(() => check('histogram/negative', [8], 'UINT32', 0)).message).toBe('tensor.name: expected "histogram/positive", got "histogram/negative"');
    expect(refusal(() => check('histogram/positive', [9], 'UINT32', 0)).message).toBe('tensor.shape: "histogram/positive" must be [8]');
    expect(refusal(() => check('histogram/positive', [8], 'FLOAT32', 0)).message).toBe('tensor.dtype: "histogram/positive" must be UINT32');
  });
});

describe('value checks of a received result', () => {
  it('an update with NaN or of another length is refused naming tensor.data', () => {
    const bad = new Float32Array(4);
    bad[2] = Number.NaN;
    const error = refusal(() => acceptUpdate(bad, 4, 10));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.message).toMatch(/^tensor\.data: update: value at index 2 is NaN/);
    expect(refusal(() => acceptUpdate(new Float32Array(3), 4, 10)).message).toMatch(/^tensor\.data: update: wrong length/);
  });

  it('an update above the bound is clipped to it in place and reported; one within it is untouched', () => {
    const big = new Float32Array([30, 40, 0, 0]);
    expect(acceptUpdate(big, 4, 10)).toBe(true);
    expect(Math.hypot(...big)).toBeLessThanOrEqual(10);
    expect(Math.hypot(...big)).toBeGreaterThan(9.999);
    expect(big[0] / big[1]).toBeCloseTo(0.75, 6);
    const small = new Float32Array([3, 4, 0, 0]);
    expect(acceptUpdate(small, 4, 10)).toBe(false);
    expect([...small]).toEqual([3, 4, 0, 0]);
  });

  it('an exact evaluation reports a finite loss >= 0 and an accuracy in [0, 1]', () => {
    expect(() => checkEvaluationMetrics({ loss: 0.3, accuracy: 1 })).not.toThrow();
    expect(refusal(() => checkEvaluationMetrics({ accuracy: 0.5 })).message).toBe('header.metrics.loss: required finite number');
    expect(refusal(() => checkEvaluationMetrics({ loss: Number.POSITIVE_INFINITY, accuracy: 0.5 })).message).toBe('header.metrics.loss: required finite number');
    expect(refusal(() => checkEvaluationMetrics({ loss: -0.1, accuracy: 0.5 })).message).toBe('header.metrics.loss: -0.1 is negative');
    expect(refusal(() => checkEvaluationMetrics({ loss: 0.1, accuracy: 1.01 })).message).toBe('header.metrics.accuracy: 1.01 is outside [0, 1]');
  });

  it('the histograms must count the examples the header declares', () => {
    const positive = new Uint32Array([1, 2, 0]);
    const negative = new Uint32Array([0, 3, 4]);
    expect(histogramTotal(positive, negative, 10)).toBe(10);
    expect(refusal(() => histogramTotal(positive, negative, 11)).message).toBe('header.num_examples: 11 does not match the histogram total 10');
  });

  it('noisy cells below what any count plus the recorded noise reaches are refused', () => {
    const floor = noisyCellFloor(2);
    const ok = { bins: 2, logitRange: 4, positive: new Float64Array([floor, 5]), negative: new Float64Array([0, 1]) };
    expect(() => checkNoisyCells(ok, 2)).not.toThrow();
    const low = { ...ok, negative: new Float64Array([0, floor - 1]) };
    expect(refusal(() => checkNoisyCells(low, 2)).message).toMatch(/^tensor\.data: "histogram\/negative" cell 1 is .* below /);
  });
});

const envelope = (over: Partial<Envelope> = {}): Envelope => ({ runId: 'run-1', round: 3, modelVersion: 2, institutionId: 'bank-a', session: Buffer.alloc(0), ...over });
const header = (over: Partial<ResultHeaderMsg> = {}): ResultHeaderMsg => ({ envelope: envelope(), kind: 'TRAIN_RESULT', numExamples: 0, metrics: {}, tensorCount: 2, masked: false, ...over });

describe('routing of incoming messages', () => {
  it('a result goes by what it is: encrypted, masked, a plain update or a plain evaluation', () => {
    expect(resultRoute(header({ encrypted: true }), 'ckks')).toBe('encrypted-result');
    expect(resultRoute(header({ kind: 'CKKS_DECRYPTED_SUM' }), 'ckks')).toBe('encrypted-result');
    expect(resultRoute(header({ masked: true }), 'secagg')).toBe('masked-result');
    expect(resultRoute(header({ masked: true, kind: 'EVALUATE_RESULT' }), 'plain')).toBe('masked-result');
    expect(resultRoute(header(), 'plain')).toBe('update-result');
    expect(resultRoute(header({ kind: 'EVALUATE_RESULT' }), 'plain')).toBe('evaluation-result');
    expect(resultRoute(header({ kind: 'EVALUATE_RESULT' }), 'secagg')).toBe('evaluation-result');
  });

  it('an unmasked update under secure aggregation and an unknown kind are refused', () => {
    expect(refusal(() => resultRoute(header(), 'secagg')).message).toBe('header.masked: this run uses secagg aggregation; updates must be masked');
    expect(refusal(() => resultRoute(header(), 'ckks')).message).toBe('header.masked: this run uses ckks aggregation; updates must be encrypted');
    expect(refusal(() => resultRoute(header({ kind: 'SOMETHING' as ResultHeaderMsg['kind'] }), 'plain')).message).toBe('header.kind: unknown result kind SOMETHING');
  });

  it('a PushSecAgg message is a CKKS key or a secure-sum step', () => {
    const message = { envelope: envelope(), collection: 'update' } as SecAggMessageMsg;
    expect(secAggRoute(message)).toBe('secagg-message');
    expect(secAggRoute({ ...message, ckksPublicKey: { key: new Uint8Array(1), signature: new Uint8Array(64) } })).toBe('ckks-key');
  });

  it('a message no open collection takes is refused with its own reason', () => {
    expect(notCollecting('update-result', 4, 'evaluating')).toBe('envelope.round: round 4 is not collecting training results (phase evaluating)');
    expect(notCollecting('masked-result', 4, 'training')).toBe('envelope.round: round 4 is not running a secure sum (phase training)');
    expect(notCollecting('ckks-sum', 4, 'training')).toBe('artifact: no CKKS sum is awaiting decryption in this round');
  });

  it('envelopes: the run, then the round, then the model version', () => {
    expect(() => checkRound(envelope(), { runId: 'run-1', round: 3 }, 2)).not.toThrow();
    expect(refusal(() => checkRun(envelope({ runId: 'run-0' }), 'run-1')).message).toBe('envelope.run_id: "run-0" is not the current run "run-1"');
    expect(refusal(() => checkRound(envelope({ round: 2 }), { runId: 'run-1', round: 3 }, 2)).message).toBe('envelope.round: round 2 is closed (current round 3)');
    const stale = refusal(() => checkRound(envelope({ modelVersion: 1 }), { runId: 'run-1', round: 3 }, 2));
    expect(stale.code).toBe(status.FAILED_PRECONDITION);
    expect(stale.message).toBe('envelope.model_version: expected 2 for this phase, got 1');
  });
});
