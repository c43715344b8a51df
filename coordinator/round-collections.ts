// Which collections a round runs, chosen once from the run's configuration: the training collection of
// its aggregation kind (plain weighted sum, SecAgg, CKKS), and the evaluation of its candidate (none this
// round, the coordinator's own rows, a secure sum, or plain histograms, exact or private).
import { isEvaluationRound } from '@dpfed/privacy/evaluation-mechanism';
import type { AggregationMode } from '@dpfed/proto/task-config';
import type { ModelSpec } from '@dpfed/proto/model-spec';
import type { CandidateEvaluator } from './candidate-evaluator.ts';
import { CkksUpdateCollection } from './ckks-update-collection.ts';
import { LocalEvaluation } from './local-evaluation.ts';
import { NoisyEvaluationCollection, PlainEvaluationCollection } from './plain-evaluation-collection.ts';
import { PlainUpdateCollection } from './plain-update-collection.ts';
import type { RoundCollection, RoundContext } from './round-collection.ts';
import type { EvalStage, TrainingOutcome } from './round-types.ts';
import type { RunConfig } from './run-config.ts';
import { SecureEvaluationCollection } from './secure-evaluation-collection.ts';
import { SecureUpdateCollection } from './secure-update-collection.ts';
import type { Strategy } from './strategy.ts';

/** The aggregator of each aggregation kind: how a round's training updates are collected and summed. */
const TRAINING: Record<AggregationMode, (ctx: RoundContext, strategy: Strategy) => RoundCollection<TrainingOutcome>> = {
  plain: (ctx, strategy) => new PlainUpdateCollection(ctx, strategy.worksOnSums),
  secagg: (ctx) => new SecureUpdateCollection(ctx),
  ckks: (ctx) => new CkksUpdateCollection(ctx),
};

export function trainingCollection(ctx: RoundContext, strategy: Strategy): RoundCollection<TrainingOutcome> {
  return TRAINING[ctx.config.task.aggregation](ctx, strategy);
}

/** Whether round `round`'s candidate is evaluated: every --evaluate-every rounds and the last, unless the run has no evaluation. */
export function evaluatesRound(config: RunConfig, round: number): boolean {
  return !config.task.evaluation.none && isEvaluationRound(round, config.rounds, config.task.evaluation.every ?? 1);
}

/**
 * The evaluation of the round's candidate. `evaluators`: the institutions whose update is in it. Under
 * secure aggregation (secagg and ckks) the coordinator sees no institution's own figures, so their
 * evaluations go through a secure sum too.
 */
export function evaluationCollection(
  ctx: RoundContext,
  o: { evaluates: boolean; candidate: Float32Array; evaluators: string[]; spec: ModelSpec; evaluator?: CandidateEvaluator },
): RoundCollection<EvalStage> {
  const { evaluation, aggregation } = ctx.config.task;
  if (!o.evaluates) return LocalEvaluation.none(evaluation);
  if (evaluation.coordinatorData) return LocalEvaluation.onCoordinatorData({ evaluator: o.evaluator, candidate: o.candidate, spec: o.spec, evaluation, reported: o.evaluators });
  if (aggregation !== 'plain') return new SecureEvaluationCollection(ctx, o.evaluators);
  if (evaluation.private) return new NoisyEvaluationCollection(ctx, o.evaluators);
  return new PlainEvaluationCollection(ctx, o.evaluators);
}
