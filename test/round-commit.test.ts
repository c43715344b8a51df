import { describe, expect, it } from 'vitest';
import { globalMetricRows, participantOutcomes, roundCommit, roundSummary, UNEVALUATED, type FinishedRound } from '@dpfed/coordinator/round-commit';
import { RoundModels } from '@dpfed/coordinator/round-models';
import type { CollectedUpdates, EvalStage } from '@dpfed/coordinator/round-types';
import { emptyHistogram } from '@dpfed/privacy/auc-histogram';
import { parameterShapes } from '@dpfed/proto/model-spec';

const trained = (): CollectedUpdates => ({
  contribution: { sum: { weightedDeltaSum: new Float64Array(4), totalWeight: 2, count: 2 } },
  reported: ['bank-b', 'bank-a'],
  participants: [
    { institutionId: 'bank-a', status: 'reported', numExamples: 0, detail: 'weight 1' },
    { institutionId: 'bank-b', status: 'reported', numExamples: 0, detail: '' },
    { institutionId: 'bank-c', status: 'dropped', numExamples: 0, detail: 'no answer before the deadline' },
  ],
  metrics: [{ institutionId: '', name: 'updates_clipped', value: 0 }],
});

const evaluated = (evaluators: string[]): EvalStage => ({
  totals: { histogram: emptyHistogram(4, 4), lossSum: 0, correct: 0, n: 0 },
  metrics: [{ institutionId: 'bank-a', name: 'auc', value: 0.9 }],
  perInstitution: [
    { id: 'bank-b', auc: 0.7, examples: 3 },
    { id: 'bank-a', auc: 0.9, examples: 5 },
  ],
  evaluators: new Set(evaluators),
  events: new Map(),
});

const finished = (over: Partial<FinishedRound> = {}): FinishedRound => ({
  runId: 'run-1',
  round: 4,
  startedAt: new Date('2026-01-02T03:04:05.000Z'),
  seconds: 1.5,
  aggregation: 'plain',
  model: new Float32Array(4),
  strategyState: null,
  trained: trained(),
  evaluated: evaluated(['bank-a']),
  scores: { auc: 0.8, loss: 0.4, accuracy: 0.75, examples: 8, aucStderr: 0.02 },
  ...over,
});

describe('the record of a finished round', () => {
  it("an evaluated round: the global rows after the collections' rows, auc_stderr when private", () => {
    const commit = roundCommit(finished());
    expect(commit).toMatchObject({ runId: 'run-1', round: 4, modelVersion: 4, startedAt: '2026-01-02T03:04:05.000Z', seconds: 1.5, aggregation: 'plain' });
    expect(commit.metrics.map((m) => m.name)).toEqual(['updates_clipped', 'auc', 'auc', 'loss', 'accuracy', 'eval_examples', 'auc_stderr']);
    expect(globalMetricRows({ auc: 0.5, loss: 1, accuracy: 0.5, examples: 2 }).map((m) => m.name)).toEqual(['auc', 'loss', 'accuracy', 'eval_examples']);
  });

  it('a participant whose update counted but whose evaluation never arrived says so, in evaluated rounds only', () => {
    const outcomes = participantOutcomes(trained(), evaluated(['bank-a']), true);
    expect(outcomes.map((p) => p.detail)).toEqual(['weight 1', 'no evaluation before the deadline', 'no answer before the deadline']);
    expect(participantOutcomes(trained(), evaluated([]), false).map((p) => p.detail)).toEqual(['weight 1', '', 'no answer before the deadline']);
  });

  it('the summary: scores, participants, institutions by id, the dropped, where the time went', () => {
    const summary = roundSummary(finished(), { train: 10, evaluate: 5, commit: 1 });
    expect(summary).toEqual({
      round: 4,
      modelVersion: 4,
      participants: 2,
      evaluated: true,
      auc: 0.8,
      aucStderr: 0.02,
      loss: 0.4,
      accuracy: 0.75,
      seconds: 1.5,
      institutions: [
        { id: 'bank-a', auc: 0.9, examples: 5 },
        { id: 'bank-b', auc: 0.7, examples: 3 },
      ],
      dropped: ['bank-c'],
      phaseMs: { train: 10, evaluate: 5, commit: 1 },
    });
  });

  it('an unevaluated round: NaN figures, no global rows, no stderr', () => {
    const r = finished({ scores: null });
    const summary = roundSummary(r, { train: 1, evaluate: 0, commit: 1 });
    expect(summary.evaluated).toBe(false);
    expect([summary.auc, summary.loss, summary.accuracy]).toEqual([Number.NaN, Number.NaN, Number.NaN]);
    expect('aucStderr' in summary).toBe(false);
    expect(roundCommit(r).metrics.map((m) => m.name)).toEqual(['updates_clipped', 'auc']);
    expect(UNEVALUATED.examples).toBe(0);
  });
});

describe('the models a run serves', () => {
  const spec = { kind: 'logistic' as const, inputDim: 3, hidden: [] };
  const shapes = parameterShapes(spec).map((p) => ({ ...p, size: p.shape.reduce((a, b) => a * b, 1) }));

  it('serves the global model by its version and, once proposed, the candidate by the round; commit makes it the global', () => {
    const models = new RoundModels(spec, shapes, Float32Array.from([1, 2, 3, 4]), 2);
    const globalId = models.idOf(2, 3);
    expect(globalId).toMatch(/^[0-9a-f]{24}$/);
    expect(models.idOf(3, 3)).toBe('');
    expect(() => models.tensors(3, 3)).toThrow('envelope.model_version: version 3 is not available (current 2)');
    models.propose(Float32Array.from([5, 6, 7, 8]));
    const candidateId = models.idOf(3, 3);
    expect(candidateId).toMatch(/^[0-9a-f]{24}$/);
    expect(candidateId).not.toBe(globalId);
    expect(models.tensors(3, 3).flatMap((t) => [...(t.data as Float32Array)])).toEqual([5, 6, 7, 8]);
    expect(models.tensors(2, 3).map((t) => t.name)).toEqual(shapes.map((s) => s.name));
    models.commit(3);
    expect(models.version).toBe(3);
    expect([...models.global]).toEqual([5, 6, 7, 8]);
    expect(models.idOf(3, 4)).toBe(candidateId);
    expect(() => models.commit(4)).toThrow('round 4: no candidate model to commit');
  });
});
