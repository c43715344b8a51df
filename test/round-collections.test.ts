// The round's collections constructed directly (no coordinator, no gRPC): a real task board, served
// models, envelope checks and release policy; results are fed through the same sinks the transport uses.
import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';

import { LocalEvaluation } from '@dpfed/coordinator/local-evaluation';
import { NoisyEvaluationCollection, PlainEvaluationCollection } from '@dpfed/coordinator/plain-evaluation-collection';
import { PlainUpdateCollection } from '@dpfed/coordinator/plain-update-collection';
import type { RoundContext } from '@dpfed/coordinator/round-collection';
import { evaluatesRound, evaluationCollection, trainingCollection } from '@dpfed/coordinator/round-collections';
import type { CollectedUpdates, EvalStage, ResultSink, TrainingOutcome } from '@dpfed/coordinator/round-types';
import type { RpcError } from '@dpfed/coordinator/rpc-error';
import { SecureEvaluationCollection } from '@dpfed/coordinator/secure-evaluation-collection';
import { SecureUpdateCollection } from '@dpfed/coordinator/secure-update-collection';
import { CkksUpdateCollection } from '@dpfed/coordinator/ckks-update-collection';
import { createStrategy } from '@dpfed/coordinator/strategies/index';
import { noisyCellFloor } from '@dpfed/privacy/evaluation-mechanism';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { PrivacyEventMsg, ResultHeaderMsg } from '@dpfed/proto/wire';
import { testInstitution, testRoundContext, testRunConfig } from './helpers/round-context.ts';

function refusal(fn: () => unknown): RpcError {
  try {
    fn();
  } catch (error) {
    return error as RpcError;
  }
  throw new Error('expected a refusal');
}

function header(ctx: RoundContext, kind: ResultHeaderMsg['kind'], over: Partial<ResultHeaderMsg> = {}): ResultHeaderMsg {
  const modelVersion = kind === 'TRAIN_RESULT' ? ctx.modelVersion : ctx.round;
  return { envelope: { runId: ctx.runId, round: ctx.round, modelVersion, institutionId: '', session: Buffer.alloc(0) }, kind, numExamples: 0, metrics: {}, tensorCount: 2, masked: false, ...over };
}

/** Streams an update through its sink as the transport does: each tensor checked and received into its slice, then finish. */
function upload(ctx: RoundContext, sink: ResultSink, update: number[]): void {
  let offset = 0;
  ctx.shapes.forEach((p, i) => {
    sink.expectTensor(p.name, p.shape, 'FLOAT32', i);
    const slice = sink.place!(i, 'FLOAT32', p.size * 4) as Float32Array;
    slice.set(update.slice(offset, offset + p.size));
    offset += p.size;
  });
  sink.finish([]);
}

const histograms = (positive: number[], negative: number[]): NamedTensor[] => [
  { name: 'histogram/positive', shape: [positive.length], dtype: 'UINT32', data: Uint32Array.from(positive) },
  { name: 'histogram/negative', shape: [negative.length], dtype: 'UINT32', data: Uint32Array.from(negative) },
];

describe('plain update collection', () => {
  const banks = () => [testInstitution('bank-a', 10), testInstitution('bank-b', 20), testInstitution('bank-c')];

  it('posts TRAIN for the global model, folds the updates as they arrive into their weighted sum, clips one above the bound', async () => {
    const ctx = testRoundContext({ config: testRunConfig(), participants: banks() });
    const collection = new PlainUpdateCollection(ctx, true);
    const done = collection.run();
    for (const p of ctx.participants) {
      const task = ctx.board.current(p.id)!;
      expect(task.kind).toBe('TRAIN');
      expect(task.envelope).toMatchObject({ runId: 'run-1', round: 1, modelVersion: 0 });
    }
    const [a, b, c] = ctx.participants;
    upload(ctx, collection.openResult(a, header(ctx, 'TRAIN_RESULT', { metrics: { loss: 0.5 } })), [1, 0, 0, 1]);
    upload(ctx, collection.openResult(b, header(ctx, 'TRAIN_RESULT')), [0, 1, 0, 0]);
    expect(ctx.board.current('bank-a')).toBeUndefined();
    upload(ctx, collection.openResult(c, header(ctx, 'TRAIN_RESULT')), [300, 0, 0, 400]); // norm 500 > 10
    const outcome = (await done) as CollectedUpdates;
    expect('sum' in outcome.contribution).toBe(true);
    const { sum } = outcome.contribution as { sum: { weightedDeltaSum: Float64Array; totalWeight: number; count: number } };
    expect(sum.totalWeight).toBe(31);
    expect(sum.count).toBe(3);
    // bank-c's update clipped to norm 10 (just under: the clip keeps a float32 margin), weight 1
    const expected = [10 + 6, 20, 0, 10 + 8];
    sum.weightedDeltaSum.forEach((v, i) => expect(v).toBeCloseTo(expected[i], 3));
    expect(outcome.reported).toEqual(['bank-a', 'bank-b', 'bank-c']);
    expect(outcome.participants.map((p) => p.detail)).toEqual(['weight 10', 'weight 20', 'weight 1']);
    expect(outcome.metrics).toContainEqual({ institutionId: '', name: 'updates_clipped', value: 1 });
    expect(outcome.metrics).toContainEqual({ institutionId: 'bank-a', name: 'train_loss', value: 0.5 });
  });

  it('for a strategy that needs the updates: hands them over with their weights, and their vectors go back to the pool', async () => {
    const ctx = testRoundContext({ config: testRunConfig(), participants: banks().slice(0, 2) });
    const collection = new PlainUpdateCollection(ctx, false);
    const done = collection.run();
    upload(ctx, collection.openResult(ctx.participants[0], header(ctx, 'TRAIN_RESULT')), [1, 2, 3, 4]);
    upload(ctx, collection.openResult(ctx.participants[1], header(ctx, 'TRAIN_RESULT')), [4, 3, 2, 1]);
    const outcome = (await done) as CollectedUpdates;
    const { updates, release } = outcome.contribution as { updates: { institutionId: string; weight: number; delta: Float32Array }[]; release(): void };
    expect(updates.map((u) => [u.institutionId, u.weight, [...u.delta]])).toEqual([
      ['bank-a', 10, [1, 2, 3, 4]],
      ['bank-b', 20, [4, 3, 2, 1]],
    ]);
    release();
    const reused = [ctx.resources.updateVectors.take(4), ctx.resources.updateVectors.take(4)];
    expect(reused).toContain(updates[0].delta);
    expect(reused).toContain(updates[1].delta);
  });

  it('refuses a non-finite update, a second answer and a wrong tensor count; the round fails below --min-clients', async () => {
    const ctx = testRoundContext({ config: testRunConfig({ minClients: 2 }), participants: banks() });
    const collection = new PlainUpdateCollection(ctx, true);
    const done = collection.run();
    const [a, b] = ctx.participants;
    expect(refusal(() => collection.openResult(a, header(ctx, 'TRAIN_RESULT', { tensorCount: 3 }))).message).toBe('header.tensor_count: expected 2 tensors, got 3');
    upload(ctx, collection.openResult(a, header(ctx, 'TRAIN_RESULT')), [1, 1, 1, 1]);
    const again = refusal(() => collection.openResult(a, header(ctx, 'TRAIN_RESULT')));
    expect(again.code).toBe(status.FAILED_PRECONDITION);
    expect(again.message).toBe('envelope.institution_id: institution "bank-a" already answered this training phase');
    const sink = collection.openResult(b, header(ctx, 'TRAIN_RESULT'));
    const nan = refusal(() => upload(ctx, sink, [0, Number.NaN, 0, 0]));
    expect(nan.code).toBe(status.INVALID_ARGUMENT);
    expect(nan.message).toMatch(/^tensor\.data: update: value at index 1 is NaN/);
    sink.fail(nan.message);
    expect(collection.awaiting('bank-c')).toBe(true);
    collection.drop('bank-c', 'its Session stream closed');
    expect(collection.awaiting('bank-c')).toBe(false);
    const outcome = (await done) as { failure: string };
    expect(outcome.failure).toBe('round 1: only 1 of 3 sampled institutions reported; --min-clients is 2');
  });

  it('a decline and a drop end the collection before its deadline, with their reasons', async () => {
    const ctx = testRoundContext({ config: testRunConfig({ minClients: 1 }), participants: banks() });
    const collection = new PlainUpdateCollection(ctx, true);
    const done = collection.run();
    upload(ctx, collection.openResult(ctx.participants[0], header(ctx, 'TRAIN_RESULT')), [1, 0, 0, 0]);
    collection.decline('bank-b', 'budget: over');
    collection.drop('bank-c', 'did not fetch its task');
    const outcome = (await done) as CollectedUpdates;
    expect(outcome.participants.map((p) => [p.institutionId, p.status, p.detail])).toEqual([
      ['bank-a', 'reported', 'weight 10'],
      ['bank-b', 'declined', 'budget: over'],
      ['bank-c', 'dropped', 'did not fetch its task'],
    ]);
  });
});

describe('evaluation collections', () => {
  const evaluators = () => [testInstitution('bank-a'), testInstitution('bank-b')];

  it("exact: posts EVALUATE for the candidate; sums the histograms, loss and accuracy; keeps each institution's AUC", async () => {
    const ctx = testRoundContext({ config: testRunConfig(), participants: evaluators() });
    const collection = new PlainEvaluationCollection(ctx, ['bank-a', 'bank-b']);
    const done = collection.run();
    expect(ctx.board.current('bank-a')).toMatchObject({ kind: 'EVALUATE', envelope: { round: 1, modelVersion: 1 } });
    const [a, b] = ctx.participants;
    const ha = header(ctx, 'EVALUATE_RESULT', { numExamples: 4, metrics: { loss: 0.2, accuracy: 1 } });
    collection.openResult(a, ha).finish(histograms([0, 0, 1, 1], [1, 1, 0, 0]));
    const hb = header(ctx, 'EVALUATE_RESULT', { numExamples: 2, metrics: { loss: 0.8, accuracy: 0.5 } });
    const stage = await (async () => {
      collection.openResult(b, hb).finish(histograms([1, 0, 0, 0], [0, 0, 0, 1]));
      return done;
    })();
    expect(stage.totals.n).toBe(6);
    expect(stage.totals.lossSum).toBeCloseTo(0.2 * 4 + 0.8 * 2, 10);
    expect(stage.totals.correct).toBeCloseTo(4 + 1, 10);
    expect([...stage.totals.histogram.positive]).toEqual([1, 0, 1, 1]);
    expect(stage.perInstitution).toEqual([
      { id: 'bank-a', auc: 1, examples: 4 },
      { id: 'bank-b', auc: 0, examples: 2 },
    ]);
    expect([...stage.evaluators]).toEqual(['bank-a', 'bank-b']);
  });

  it('exact: refuses figures no evaluation produces and histograms that do not count the declared examples', async () => {
    const ctx = testRoundContext({ config: testRunConfig(), participants: evaluators() });
    const collection = new PlainEvaluationCollection(ctx, ['bank-a', 'bank-b']);
    const done = collection.run();
    const [a] = ctx.participants;
    expect(refusal(() => collection.openResult(a, header(ctx, 'EVALUATE_RESULT', { metrics: { loss: 0.1, accuracy: 2 } }))).message).toBe('header.metrics.accuracy: 2 is outside [0, 1]');
    const sink = collection.openResult(a, header(ctx, 'EVALUATE_RESULT', { numExamples: 5, metrics: { loss: 0.1, accuracy: 1 } }));
    expect(refusal(() => sink.finish(histograms([1, 0, 0, 0], [0, 0, 0, 1]))).message).toBe('header.num_examples: 5 does not match the histogram total 2');
    collection.stop();
    const stage = await done;
    expect(stage.totals.n).toBe(0);
    expect(stage.evaluators.size).toBe(0);
  });

  it('private (plain aggregation): refuses a result without its event or with cells below the noise floor; keeps only the noisy sum', async () => {
    const ctx = testRoundContext({ config: testRunConfig({}, { evaluation: { bins: 4, logitRange: 4 } }), participants: evaluators() });
    const collection = new NoisyEvaluationCollection(ctx, ['bank-a', 'bank-b']);
    const done = collection.run();
    const [a, b] = ctx.participants;
    expect(refusal(() => collection.openResult(a, header(ctx, 'EVALUATE_RESULT'))).message).toBe('header.privacy_event: a private evaluation must carry its signed evaluation event');
    const event = { noiseMultiplier: 1 } as PrivacyEventMsg;
    const signed = (cells: number[]) => Uint32Array.from(Int32Array.from(cells));
    const floor = noisyCellFloor(1);
    const low = collection.openResult(a, header(ctx, 'EVALUATE_RESULT', { privacyEvent: event }));
    const belowFloor: NamedTensor[] = [
      { name: 'histogram/positive', shape: [4], dtype: 'UINT32', data: signed([Math.floor(floor) - 1, 0, 0, 0]) },
      { name: 'histogram/negative', shape: [4], dtype: 'UINT32', data: signed([0, 0, 0, 0]) },
    ];
    expect(refusal(() => low.finish(belowFloor)).message).toMatch(/^tensor\.data: "histogram\/positive" cell 0 is /);
    low.fail('below the floor');
    collection.openResult(b, header(ctx, 'EVALUATE_RESULT', { privacyEvent: event })).finish([
      { name: 'histogram/positive', shape: [4], dtype: 'UINT32', data: signed([-1, 0, 3, 5]) },
      { name: 'histogram/negative', shape: [4], dtype: 'UINT32', data: signed([4, 2, 0, 1]) },
    ]);
    const stage = await done;
    expect(stage.perInstitution).toEqual([]);
    expect(stage.metrics).toEqual([]);
    expect([...stage.evaluators]).toEqual(['bank-b']);
    expect(stage.events.get('bank-b')).toBe(event);
    expect(stage.totals.noiseSigma).toBeGreaterThan(0);
  });

  it('a secure evaluation of fewer than 3 evaluators asks nobody and has no figures', async () => {
    const ctx = testRoundContext({ config: testRunConfig({}, { aggregation: 'secagg' }), participants: evaluators() });
    const stage = await new SecureEvaluationCollection(ctx, ['bank-a', 'bank-b']).run();
    expect(stage.totals.n).toBe(0);
    expect(ctx.board.current('bank-a')).toBeUndefined();
  });
});

describe('choosing the collections of a round', () => {
  const participants = () => ['a', 'b', 'c'].map((id) => testInstitution(`bank-${id}`));
  const strategy = createStrategy('fedavg', {});

  it('the training collection of each aggregation kind', () => {
    const kinds = (['plain', 'secagg', 'ckks'] as const).map((aggregation) =>
      trainingCollection(testRoundContext({ config: testRunConfig({}, { aggregation }), participants: participants() }), strategy),
    );
    expect(kinds[0]).toBeInstanceOf(PlainUpdateCollection);
    expect(kinds[1]).toBeInstanceOf(SecureUpdateCollection);
    expect(kinds[2]).toBeInstanceOf(CkksUpdateCollection);
    for (const k of kinds) k.stop();
  });

  it("the evaluation: none this round, the coordinator's own rows, a secure sum, or plain histograms exact or private", () => {
    const pick = (task: Partial<ReturnType<typeof testRunConfig>['task']>, evaluates = true) => {
      const ctx = testRoundContext({ config: testRunConfig({}, task), participants: participants() });
      const collection = evaluationCollection(ctx, { evaluates, candidate: ctx.global, evaluators: ['bank-a'], spec: ctx.config.modelSpec });
      collection.stop();
      return collection;
    };
    expect(pick({}, false)).toBeInstanceOf(LocalEvaluation);
    expect(pick({ evaluation: { bins: 4, logitRange: 4, coordinatorData: true } })).toBeInstanceOf(LocalEvaluation);
    expect(pick({ aggregation: 'secagg' })).toBeInstanceOf(SecureEvaluationCollection);
    expect(pick({ aggregation: 'ckks' })).toBeInstanceOf(SecureEvaluationCollection);
    expect(pick({ evaluation: { bins: 4, logitRange: 4, private: { epsilon: 0.5, noiseSigma: 2 } } })).toBeInstanceOf(NoisyEvaluationCollection);
    expect(pick({})).toBeInstanceOf(PlainEvaluationCollection);
  });

  it('evaluates every --evaluate-every rounds and the last, and never under evaluation none', () => {
    const config = testRunConfig({ rounds: 5 }, { evaluation: { bins: 4, logitRange: 4, every: 2 } });
    expect([1, 2, 3, 4, 5].map((r) => evaluatesRound(config, r))).toEqual([false, true, false, true, true]);
    const none = testRunConfig({ rounds: 5 }, { evaluation: { bins: 4, logitRange: 4, none: true } });
    expect([1, 5].map((r) => evaluatesRound(none, r))).toEqual([false, false]);
  });

  it('secure aggregation of fewer than 3 participants fails the round before posting anything', async () => {
    const ctx = testRoundContext({ config: testRunConfig({}, { aggregation: 'secagg' }), participants: participants().slice(0, 2) });
    const outcome = (await new SecureUpdateCollection(ctx).run()) as TrainingOutcome;
    expect(outcome).toEqual({ failure: "round 1: secure aggregation needs at least 3 participants (with 2, each learns the other's update from the sum); sampled 2" });
    expect(ctx.board.current('bank-a')).toBeUndefined();
  });

  it('a CKKS round whose key holder is not registered fails naming it', async () => {
    const ctx = testRoundContext({ config: testRunConfig({ ckksKeyHolder: 'bank-z' }, { aggregation: 'ckks' }), participants: participants() });
    expect(await new CkksUpdateCollection(ctx).run()).toEqual({ failure: 'round 1: the CKKS key holder bank-z is not connected' });
  });

  it("--evaluation-data without an evaluator is an error of the coordinator's setup", async () => {
    const ctx = testRoundContext({ config: testRunConfig(), participants: participants() });
    const own = LocalEvaluation.onCoordinatorData({ candidate: ctx.global, spec: ctx.config.modelSpec, evaluation: ctx.config.task.evaluation, reported: [] });
    await expect(own.run()).rejects.toThrow(/no --evaluation-data evaluator was given/);
    const none: EvalStage = await LocalEvaluation.none(ctx.config.task.evaluation).run();
    expect(none.totals.histogram.bins).toBe(4);
  });
});
