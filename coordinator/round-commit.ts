// What a finished round writes and reports: the commit record (model, strategy state, every
// participant's outcome, the metric rows) and the summary the round's event carries. Pure functions of
// what the round's collections delivered and the strategy's scores.
import type { ParticipantRecord, RoundCommit } from './coordinator-store.ts';
import type { CollectedUpdates, EvalStage, MetricRow, RoundSummary } from './round-types.ts';
import type { RoundMetrics } from './strategy.ts';

/** The scores of a round that was not evaluated. */
export const UNEVALUATED: RoundMetrics = { auc: Number.NaN, loss: Number.NaN, accuracy: Number.NaN, examples: 0 };

/** The global model's metric rows ('' institution) of an evaluated round. */
export function globalMetricRows(scores: RoundMetrics): MetricRow[] {
  const rows: MetricRow[] = [
    { institutionId: '', name: 'auc', value: scores.auc },
    { institutionId: '', name: 'loss', value: scores.loss },
    { institutionId: '', name: 'accuracy', value: scores.accuracy },
    { institutionId: '', name: 'eval_examples', value: scores.examples },
  ];
  if (scores.aucStderr !== undefined) rows.push({ institutionId: '', name: 'auc_stderr', value: scores.aucStderr });
  return rows;
}

/** Each participant's outcome; in an evaluated round, one whose update counted but whose evaluation did not arrive says so. */
export function participantOutcomes(trained: CollectedUpdates, evaluated: EvalStage, evaluates: boolean): ParticipantRecord[] {
  return trained.participants.map((p) => (evaluates && p.status === 'reported' && !evaluated.evaluators.has(p.institutionId) ? { ...p, detail: p.detail || 'no evaluation before the deadline' } : p));
}

export interface FinishedRound {
  runId: string;
  round: number;
  startedAt: Date;
  seconds: number;
  aggregation: string;
  model: Float32Array;
  strategyState: Uint8Array | null;
  trained: CollectedUpdates;
  evaluated: EvalStage;
  /** The strategy's scores of the evaluation; null when the round was not evaluated. */
  scores: RoundMetrics | null;
}

export function roundCommit(r: FinishedRound): RoundCommit {
  return {
    runId: r.runId,
    round: r.round,
    modelVersion: r.round,
    startedAt: r.startedAt.toISOString(),
    seconds: r.seconds,
    aggregation: r.aggregation,
    model: r.model,
    strategyState: r.strategyState,
    participants: participantOutcomes(r.trained, r.evaluated, r.scores !== null),
    metrics: [...r.trained.metrics, ...r.evaluated.metrics, ...(r.scores ? globalMetricRows(r.scores) : [])],
  };
}

export function roundSummary(r: FinishedRound, phaseMs: RoundSummary['phaseMs']): RoundSummary {
  const scores = r.scores ?? UNEVALUATED;
  return {
    round: r.round,
    modelVersion: r.round,
    participants: r.trained.reported.length,
    evaluated: r.scores !== null,
    auc: scores.auc,
    ...(scores.aucStderr !== undefined ? { aucStderr: scores.aucStderr } : {}),
    loss: scores.loss,
    accuracy: scores.accuracy,
    seconds: r.seconds,
    institutions: [...r.evaluated.perInstitution].sort((a, b) => a.id.localeCompare(b.id)),
    dropped: r.trained.participants.filter((p) => p.status !== 'reported').map((p) => p.institutionId),
    phaseMs,
  };
}
