// Evaluations the coordinator needs no institution for: a round that commits unevaluated, and the
// candidate scored on the coordinator's own rows (--evaluation-data).
import { emptyHistogram } from '@dpfed/privacy/auc-histogram';
import type { EvaluationConfig } from '@dpfed/proto/task-config';
import type { ModelSpec } from '@dpfed/proto/model-spec';
import type { CandidateEvaluator } from './candidate-evaluator.ts';
import type { RoundCollection } from './round-collection.ts';
import type { EvalStage } from './round-types.ts';

/** No evaluation: no task, no release, no figures (empty totals for the evaluation's bins). */
export function noEvaluation(evaluation: Pick<EvaluationConfig, 'bins' | 'logitRange'>): EvalStage {
  const { bins, logitRange } = evaluation;
  return { totals: { histogram: emptyHistogram(bins, logitRange), lossSum: 0, correct: 0, n: 0 }, metrics: [], perInstitution: [], evaluators: new Set(), events: new Map() };
}

/** An evaluation that takes no message from any institution: it only computes its stage. */
export class LocalEvaluation implements RoundCollection<EvalStage> {
  constructor(private readonly compute: () => Promise<EvalStage>) {}

  /** A round that commits without evaluation (--evaluate-every). */
  static none(evaluation: Pick<EvaluationConfig, 'bins' | 'logitRange'>): LocalEvaluation {
    return new LocalEvaluation(async () => noEvaluation(evaluation));
  }

  /** --evaluation-data: the candidate scored on the coordinator's own rows; the institutions are not asked. */
  static onCoordinatorData(o: { evaluator?: CandidateEvaluator; candidate: Float32Array; spec: ModelSpec; evaluation: EvaluationConfig; reported: string[] }): LocalEvaluation {
    return new LocalEvaluation(async () => {
      if (!o.evaluator) throw new Error("this run scores candidates on the coordinator's own data, but no --evaluation-data evaluator was given");
      const totals = await o.evaluator.evaluate(o.candidate, o.spec, o.evaluation);
      return { totals, metrics: [], perInstitution: [], evaluators: new Set(o.reported), events: new Map() };
    });
  }

  run(): Promise<EvalStage> {
    return this.compute();
  }

  accepts(): boolean {
    return false;
  }

  awaiting(): boolean {
    return false;
  }

  drop(): void {}

  decline(): void {}

  stop(): void {}
}
