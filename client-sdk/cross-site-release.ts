// The institution's answer to a CROSS_SITE_EVALUATE task: at the end of a run that planned cross-site
// evaluation (config evaluation.crossSite), its own two class histograms of the final model on its
// validation rows, released alone so that the coordinator can report this institution's own AUC.
//   privacy off     exact histograms, loss and accuracy (no privacy claim in this mode)
//   privacy record  noisy histograms with this institution's full planned σ (privacy/evaluation-mechanism.ts:
//                   nothing is summed with them, so no share), the event recorded in its own ledger as
//                   mode "cross-site" before anything leaves; declined, saying why, when the run did not
//                   plan it or its budget cannot afford it (e.g. other runs on the same ledger spent it)
//   privacy client  declined: no evaluation mechanism exists at that level
// A task re-issued for the same run and model (the coordinator restarted) gets the same release again:
// no second draw of noise, no second event.
import { noisyHistogramVector } from '@dpfed/privacy/evaluation-mechanism';
import { BudgetExceededError } from '@dpfed/privacy/ledger';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { PrivacyEventMsg, ResultHeaderMsg } from '@dpfed/proto/wire';
import type { ClientPrivacy } from './client-privacy.ts';
import { exactEvaluationResult, histogramTensors } from './evaluation-result.ts';
import type { EvalOutcome, TaskContext } from './learner.ts';

export interface CrossSiteDecline {
  reason: string;
  detail: string;
  projectedEpsilon: number;
  budgetEpsilon: number;
}

/** What to push: the header (without its envelope) and the two histogram tensors. */
export interface CrossSiteResult {
  header: Omit<ResultHeaderMsg, 'envelope'>;
  tensors: NamedTensor[];
  /** The noise per cell added (0: exact). */
  sigma: number;
}

const declineOf = (reason: string, detail: string, projectedEpsilon = 0, budgetEpsilon = 0): { decline: CrossSiteDecline } => ({ decline: { reason, detail, projectedEpsilon, budgetEpsilon } });

export class CrossSiteRelease {
  private last: { key: string; result: CrossSiteResult } | null = null;

  constructor(private readonly privacy: ClientPrivacy | undefined) {}

  /**
   * The release for `task`, or why not. `evaluate` scores the final model on the validation rows (called
   * only when a release is to be made).
   */
  async answer(task: TaskContext, evaluate: () => Promise<EvalOutcome>): Promise<{ result: CrossSiteResult } | { decline: CrossSiteDecline }> {
    const { config } = task;
    const mode = config.privacy.mode;
    if (mode === 'client') return declineOf('privacy', 'cross-site evaluation under privacy client: the institutions do not evaluate at that level (no evaluation mechanism is built for it); refused');
    if (!config.evaluation.crossSite) return declineOf('unplanned', `cross-site evaluation was not planned by run ${task.runId} (evaluation.crossSite is not set); refused`);
    const key = `${task.runId}/${task.round}/${task.modelVersion}/${task.modelId ?? ''}`;
    if (this.last?.key === key) return { result: this.last.result };
    const bins = config.evaluation.bins;
    if (mode === 'off') {
      const outcome = await evaluate();
      const result: CrossSiteResult = { ...exactEvaluationResult(outcome), sigma: 0 };
      this.last = { key, result };
      return { result };
    }
    const privacy = this.privacy;
    if (!privacy?.beforeEvaluation || !privacy.recordEvaluation) throw new Error('cross-site evaluation under privacy record requested but this client has no privacy guard that records evaluations');
    const share = config.evaluation.private;
    if (!share) return declineOf('privacy', 'cross-site evaluation under privacy record without evaluation.private: no noise is planned for it; refused');
    // checked before the model is scored: a declined release costs no work
    const decision = privacy.beforeEvaluation(task, { requested: share.noiseSigma, crossSite: true });
    if (!decision.allowed || !decision.noise) return declineOf(decision.reason ?? 'budget', decision.detail, decision.projectedEpsilon, decision.budgetEpsilon);
    const outcome = await evaluate();
    if (outcome.histogram.bins !== bins) throw new Error(`cross-site evaluation: the learner returned ${outcome.histogram.bins} bins, the task asks for ${bins}`);
    const vector = noisyHistogramVector(outcome.histogram, decision.noise.sigma);
    let event: PrivacyEventMsg;
    try {
      // the binding check: the event enters the ledger (or not) before any byte leaves
      event = privacy.recordEvaluation(task, decision.noise, { crossSite: true });
    } catch (error) {
      if (!(error instanceof BudgetExceededError)) throw error;
      return declineOf('budget', `cross-site evaluation: ${error.message}`, error.projectedEpsilon, error.budget.epsilon);
    }
    const result: CrossSiteResult = {
      header: { kind: 'EVALUATE_RESULT', numExamples: 0, metrics: {}, privacyEvent: event, tensorCount: 2, masked: false, encrypted: false, ledgerHead: privacy.signedHead?.() },
      tensors: histogramTensors(vector, bins),
      sigma: decision.noise.sigma,
    };
    this.last = { key, result };
    return { result };
  }
}
