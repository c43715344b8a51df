// Evaluation under secure aggregation (secagg or ckks runs): the evaluators' histograms (exact: with
// loss and accuracy sums; private: noisy) go through a SecAgg sum, so the coordinator learns only the
// total. Fewer than 3 evaluators: no sum (with 2, each would learn the other's figures) and no figures.
import { EVALUATION_SENSITIVITY } from '@dpfed/privacy/evaluation-mechanism';
import { decodeEvaluation, decodeNoisyHistograms, evaluationVectorLength, totalsFromNoisyHistograms } from '@dpfed/privacy/evaluation-vector';
import type { Institution } from './institution-registry.ts';
import { noEvaluation } from './local-evaluation.ts';
import type { RoundContext } from './round-collection.ts';
import type { EvalStage } from './round-types.ts';
import { invalidArgument } from './rpc-error.ts';
import { SecureCollection } from './secure-collection.ts';
import { SecureSumCollection } from './secure-sum-collection.ts';
import { COLLECTIONS } from '@dpfed/proto/shared-names';

export class SecureEvaluationCollection extends SecureSumCollection<EvalStage> {
  constructor(
    ctx: RoundContext,
    private readonly evaluators: readonly string[],
  ) {
    super(ctx);
  }

  async run(): Promise<EvalStage> {
    const { ctx } = this;
    const { config, round } = ctx;
    const { bins, logitRange } = config.task.evaluation;
    const participants = this.evaluators.map((id) => ctx.institution(id)).filter((p): p is Institution => Boolean(p));
    const empty = noEvaluation(config.task.evaluation);
    if (participants.length < 3) return empty;
    // Private evaluation: each institution adds a share σ/√t of the noise (t = the threshold: a completed
    // sum has at least t survivors) and sends only its two noisy histograms.
    const privateEvaluation = config.task.evaluation.private;
    const graph = this.graphFor(participants.length);
    this.secure = new SecureCollection({
      runId: ctx.runId,
      round,
      collection: COLLECTIONS.evaluation,
      participants,
      ...graph,
      // Private evaluation: each institution's noise share relies on `threshold` shares in the sum, so the
      // threshold is never lowered for it; otherwise it follows the participants who advertised keys.
      ...(privateEvaluation ? {} : { thresholdFor: (n: number) => this.graphFor(n).threshold }),
      vectorLength: privateEvaluation ? 2 * bins : evaluationVectorLength(bins),
      clientNoiseSigma: privateEvaluation ? privateEvaluation.noiseSigma / Math.sqrt(graph.threshold) : 0,
      board: ctx.board,
      makeTask: (kind) => ctx.task(kind, round),
      firstKind: 'EVALUATE',
      firstDeadlineMs: config.phaseTimeoutMs,
      phaseDeadlineMs: config.phaseTimeoutMs,
      checkHeader: (institution, header) => {
        ctx.checkRound(header.envelope, round);
        if (header.kind !== 'EVALUATE_RESULT') throw invalidArgument('header.kind: expected EVALUATE_RESULT in the evaluation secure sum');
        if (privateEvaluation) ctx.privacy?.checkEvaluationEvent(institution, round, header.privacyEvent);
      },
    });
    const outcome = await this.secure.run();
    this.secure = null;
    if (!outcome.ok) return { ...empty, metrics: [{ institutionId: '', name: 'evaluation_aborted', value: 1 }], aborted: outcome.reason };
    if (privateEvaluation) {
      // Each survivor's event records the multiplier of t shares of its σ_c (≈ σ_c·√t): the sum carries Σ σ_c².
      let variance = 0;
      for (const event of outcome.events.values()) variance += (event.noiseMultiplier * EVALUATION_SENSITIVITY) ** 2 / graph.threshold;
      // The noisy histogram sum is revealed: record its events first, as a training sum's.
      ctx.privacy?.recordEvaluationEvents(round, outcome.events);
      const totals = totalsFromNoisyHistograms(decodeNoisyHistograms(outcome.sum, bins, logitRange), Math.sqrt(variance));
      return { totals, metrics: [], perInstitution: [], evaluators: new Set(outcome.survivors), events: outcome.events };
    }
    return { totals: decodeEvaluation(outcome.sum, bins, logitRange), metrics: [], perInstitution: [], evaluators: new Set(outcome.survivors), events: new Map() };
  }
}
