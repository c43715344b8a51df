// The institution's answers to EVALUATE and CROSS_SITE_EVALUATE tasks: the global model scored on its
// validation rows, and what of that leaves.
//   exact (privacy off)   histograms, loss and accuracy as they are, in the clear or into a secure sum
//   private               only the two class histograms, with discrete-Gaussian noise of at least what this
//                         institution's own plan requires, the event in its own ledger before they leave
//   under a privacy mode without private evaluation: declined (no figure leaves without a mechanism)
//   cross-site            its own histograms of the final model, alone (client-sdk/cross-site-release.ts)
// Its own exact figures stay in its own log.
import { aucFromHistogram } from '@dpfed/privacy/auc-histogram';
import { noisyHistogramVector } from '@dpfed/privacy/evaluation-mechanism';
import { encodeEvaluation } from '@dpfed/privacy/evaluation-vector';
import { exitAtTestPoint } from '@dpfed/proto/test-exit-hook';
import type { Envelope, PrivacyEventMsg, ResultHeaderMsg, SecAggTaskMsg } from '@dpfed/proto/wire';
import type { ClientPrivacy } from './client-privacy.ts';
import { CrossSiteRelease } from './cross-site-release.ts';
import type { HeldModels } from './held-models.ts';
import { exactEvaluationResult, histogramTensors } from './evaluation-result.ts';
import type { EvalOutcome, Learner, TaskContext } from './learner.ts';
import type { LocalModelView } from './local-metrics.ts';
import type { ParticipantChannel } from './participant-channel.ts';
import type { SecureSumParticipant } from './secure-sum-participant.ts';

/** What evaluating needs besides the channel. */
export interface EvaluationSetup {
  learner: Learner;
  privacy?: ClientPrivacy;
  models: HeldModels;
  secureSum: SecureSumParticipant;
  /** This institution's own metrics of the models it receives; null: its figures go to its log instead. */
  localView: LocalModelView | null;
}

export class EvaluationRelease {
  /** The last private evaluation released (per run, round, candidate model and aggregation): a re-issued EVALUATE re-sends it. */
  private last: { key: string; vector: Uint32Array; event: PrivacyEventMsg } | null = null;
  /** The answer to the run's cross-site evaluation (client-sdk/cross-site-release.ts). */
  private readonly crossSite: CrossSiteRelease;

  constructor(
    private readonly channel: ParticipantChannel,
    private readonly setup: EvaluationSetup,
  ) {
    this.crossSite = new CrossSiteRelease(setup.privacy);
  }

  /** An EVALUATE task: the candidate model scored, its figures released as the run asks, or a decline saying why. */
  async evaluate(ctx: TaskContext, envelope: Envelope, secagg: SecAggTaskMsg | null): Promise<void> {
    const { channel, setup } = this;
    if (ctx.config.privacy.mode !== 'off' && !ctx.config.evaluation.private) {
      // The data holder's own rule: under a privacy mode, validation figures leave only through a
      // mechanism. Exact evaluation is one only with privacy off; under client-level DP none is built.
      await channel.decline(envelope, 'privacy', `round ${ctx.round}: exact evaluation under privacy ${ctx.config.privacy.mode} would release validation figures without noise; refused`);
      return;
    }
    const model = await setup.models.download(envelope, ctx.spec, ctx.modelId ?? '');
    const outcome = await setup.learner.evaluate(model, ctx);
    exitAtTestPoint('evaluate', ctx.round);
    if (setup.localView) setup.localView.keepScores(ctx.modelId, outcome.validation);
    else this.logLocalEvaluation(ctx, outcome);
    if (ctx.config.evaluation.private) {
      await this.evaluatePrivately(ctx, envelope, secagg, outcome);
      return;
    }
    // Exact evaluation (privacy off): the figures leave as they are; no privacy is claimed in this mode.
    if (secagg) {
      const vector = encodeEvaluation(outcome.histogram, outcome.loss, outcome.accuracy, outcome.numExamples);
      await setup.secureSum.start(envelope, secagg, vector, {
        envelope,
        kind: 'EVALUATE_RESULT',
        numExamples: 0,
        metrics: {},
        privacyEvent: undefined,
        tensorCount: 1,
        masked: true,
        encrypted: false,
      });
      channel.emit('evaluated', { round: ctx.round, loss: outcome.loss, accuracy: outcome.accuracy });
      return;
    }
    const exact = exactEvaluationResult(outcome);
    await channel.connection.pushResult({ envelope, ...exact.header }, exact.tensors);
    channel.emit('evaluated', { round: ctx.round, loss: outcome.loss, accuracy: outcome.accuracy });
  }

  /** The run's cross-site evaluation: this institution's own histograms of the final model, or a decline saying why. */
  async crossSiteEvaluate(ctx: TaskContext, envelope: Envelope): Promise<void> {
    const { channel, setup } = this;
    const answer = await this.crossSite.answer(ctx, async () => setup.learner.evaluate(await setup.models.download(envelope, ctx.spec, ctx.modelId ?? ''), ctx));
    if ('decline' in answer) {
      const { reason, detail, projectedEpsilon, budgetEpsilon } = answer.decline;
      await channel.decline(envelope, reason, detail, projectedEpsilon, budgetEpsilon);
      return;
    }
    const { header, tensors, sigma } = answer.result;
    await channel.connection.pushResult({ ...header, envelope }, tensors);
    channel.log(
      `cross-site evaluation of the final model (round ${ctx.round}) sent: ${sigma > 0 ? `this institution's own histograms with noise ${sigma.toFixed(3)} per cell, recorded in its ledger` : 'exact histograms (privacy off)'}`,
    );
    channel.emit('cross-site-evaluated', { round: ctx.round, sigma });
  }

  /** The institution's own exact validation figures, to its own log only (never sent). */
  private logLocalEvaluation(ctx: TaskContext, outcome: EvalOutcome): void {
    const auc = outcome.auc ?? aucFromHistogram(outcome.histogram);
    this.channel.log(`round ${ctx.round}: local validation (stays here): AUC ${auc.toFixed(4)}, loss ${outcome.loss.toFixed(4)}, accuracy ${outcome.accuracy.toFixed(4)}`);
  }

  /**
   * Private evaluation: only the two class histograms leave, with discrete-Gaussian noise of at least
   * what this institution's own plan requires (privacy/evaluation-mechanism.ts); the event is in its own
   * ledger before the vector leaves. A re-issued task for the same candidate re-sends the same noisy
   * vector (no new spend); another release for the round is declined.
   */
  private async evaluatePrivately(ctx: TaskContext, envelope: Envelope, secagg: SecAggTaskMsg | null, outcome: EvalOutcome): Promise<void> {
    const { channel } = this;
    const privacy = this.setup.privacy;
    if (!privacy?.beforeEvaluation || !privacy.recordEvaluation) throw new Error('private evaluation requested but this client has no privacy guard that records evaluations');
    const bins = ctx.config.evaluation.bins;
    if (outcome.histogram.bins !== bins) throw new Error(`private evaluation: the learner returned ${outcome.histogram.bins} bins, the task asks for ${bins}`);
    const key = `${ctx.runId}/${ctx.round}/${ctx.modelId ?? ''}/${secagg ? `secagg:${secagg.threshold}` : 'plain'}`;
    let release = this.last?.key === key ? this.last : null;
    if (release) {
      channel.log(`round ${ctx.round}: re-sending the evaluation already released for this candidate (no new privacy spend)`);
    } else {
      const requested = secagg ? secagg.clientNoiseSigma : ctx.config.evaluation.private!.noiseSigma;
      const decision = privacy.beforeEvaluation(ctx, { requested, secure: secagg ? { threshold: secagg.threshold } : undefined });
      if (!decision.allowed || !decision.noise) {
        await channel.decline(envelope, decision.reason ?? 'budget', decision.detail, decision.projectedEpsilon, decision.budgetEpsilon);
        return;
      }
      if (decision.noise.overridden) channel.log(`round ${ctx.round}: evaluation: ${decision.noise.overridden}`);
      const vector = noisyHistogramVector(outcome.histogram, decision.noise.sigma);
      const event = privacy.recordEvaluation(ctx, decision.noise);
      release = { key, vector, event };
      this.last = release;
      channel.log(
        `round ${ctx.round}: evaluation released with noise ${decision.noise.sigma.toFixed(3)} per cell${secagg ? ` (a share; ${secagg.threshold} shares relied upon)` : ''}, recorded noise multiplier ${decision.noise.recordedMultiplier.toFixed(3)}`,
      );
    }
    // the signed ledger head after the evaluation event, so the coordinator's receipt of this ledger stays current
    const header: ResultHeaderMsg = {
      envelope,
      kind: 'EVALUATE_RESULT',
      numExamples: 0,
      metrics: {},
      privacyEvent: release.event,
      tensorCount: secagg ? 1 : 2,
      masked: Boolean(secagg),
      encrypted: false,
      ledgerHead: privacy.signedHead?.(),
    };
    if (secagg) {
      await this.setup.secureSum.start(envelope, secagg, new Uint32Array(release.vector), header);
    } else {
      await channel.connection.pushResult(header, histogramTensors(release.vector, bins));
    }
    channel.emit('evaluated', { round: ctx.round, loss: outcome.loss, accuracy: outcome.accuracy, private: true });
  }
}
