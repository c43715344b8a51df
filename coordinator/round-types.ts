// What a round's pieces hand each other: the reports an institution's result becomes, the receiver of a
// result stream, what a training collection and an evaluation collection deliver to the round loop, and
// the summary of a committed round.
import type { ScoreHistogram } from '@dpfed/privacy/auc-histogram';
import type { EvaluationTotals, NoisyHistograms } from '@dpfed/privacy/evaluation-vector';
import type { NamedTensor, TensorData } from '@dpfed/proto/tensor-stream';
import type { DTypeName, PrivacyEventMsg } from '@dpfed/proto/wire';
import type { ParticipantRecord } from './coordinator-store.ts';
import type { AggregatedSum, ClientUpdate } from './strategy.ts';

export interface TrainReport {
  /** The update; null once it is folded into the round's arrival sum (strategies that work on sums). */
  delta: Float32Array | null;
  numExamples: number;
  metrics: Record<string, number>;
  privacyEvent: PrivacyEventMsg | null;
}

export interface EvalReport {
  /** Exact evaluation: the institution's histograms (null under private evaluation). */
  histogram: ScoreHistogram | null;
  numExamples: number;
  metrics: Record<string, number>;
  /** Private evaluation: the institution's noisy histograms and the signed event it recorded for them. */
  noisy?: NoisyHistograms;
  privacyEvent?: PrivacyEventMsg;
}

export interface RoundSummary {
  round: number;
  modelVersion: number;
  participants: number;
  /** False for a round that commits without evaluation (--evaluate-every); its auc, loss and accuracy are NaN. */
  evaluated: boolean;
  auc: number;
  /** Private evaluation: the AUC's expected error from the evaluation noise (absent for exact evaluation). */
  aucStderr?: number;
  loss: number;
  accuracy: number;
  seconds: number;
  institutions: { id: string; auc: number; examples: number }[];
  dropped: string[];
  /** Where the round's time went, in ms: training collection and aggregation, evaluation, the SQLite commit. */
  phaseMs: { train: number; evaluate: number; commit: number };
}

/** A result stream being received: validates tensors as they arrive, then hands the whole result over. */
export interface ResultSink {
  tensorCount: number;
  /** Optional: where each tensor's bytes are received (views into one flat buffer). */
  place?: (index: number, dtype: DTypeName, byteLength: number) => TensorData | undefined;
  expectTensor(name: string, shape: readonly number[], dtype: DTypeName, index: number): void;
  finish(tensors: NamedTensor[]): void;
  fail(reason: string): void;
}

/** One metric row of a round: the global model's ('' institution) or an institution's. */
export type MetricRow = { institutionId: string; name: string; value: number };

/**
 * What the strategy aggregates: the weighted sum alone (secure or encrypted sums, and plain rounds of
 * strategies that work on sums), or the individual updates, whose vectors go back to their pool once
 * aggregated (`release`).
 */
export type Contribution = { sum: AggregatedSum } | { updates: ClientUpdate[]; release(): void };

/** A training collection that ended with enough updates. */
export interface CollectedUpdates {
  contribution: Contribution;
  /** Institutions whose update is in the contribution (they evaluate the candidate). */
  reported: string[];
  participants: ParticipantRecord[];
  metrics: MetricRow[];
}

/** A training collection's result: the updates, or why the round fails. */
export type TrainingOutcome = CollectedUpdates | { failure: string };

/** What an evaluation collection delivers: the summed totals the strategy scores, and figures per institution where they are public. */
export interface EvalStage {
  totals: EvaluationTotals;
  metrics: MetricRow[];
  perInstitution: RoundSummary['institutions'];
  evaluators: Set<string>;
  /** Private evaluation: the evaluators' signed events (recorded in the ledger when their sum was revealed). */
  events: Map<string, PrivacyEventMsg>;
  /** Why the evaluation's secure sum aborted (the round still commits, unevaluated by the institutions). */
  aborted?: string;
}
