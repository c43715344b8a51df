// Training under SecAgg (`--aggregation secagg`): the coordinator learns only the weighted sum of the
// survivors' quantised updates. Under client-level DP every institution adds its share of the noise
// before masking, and the ledger records the noise actually present in the revealed sum.
import { distributedNoiseAccounting } from '@dpfed/privacy/distributed-noise';
import { decodeWeightedSum } from '@dpfed/privacy/quantise';
import { checkHiddenUpdateHeader, tooFewReports } from './round-collection.ts';
import type { TrainingOutcome } from './round-types.ts';
import { SecureCollection } from './secure-collection.ts';
import { SecureSumCollection } from './secure-sum-collection.ts';
import { planSecureUpdate } from './secure-update-plan.ts';
import { COLLECTIONS } from '@dpfed/proto/shared-names';

export class SecureUpdateCollection extends SecureSumCollection<TrainingOutcome> {
  async run(): Promise<TrainingOutcome> {
    const { ctx } = this;
    const { config, participants, round, policy, weights } = ctx;
    if (participants.length < 3)
      return { failure: `round ${round}: secure aggregation needs at least 3 participants (with 2, each learns the other's update from the sum); sampled ${participants.length}` };
    const plan = planSecureUpdate(
      policy,
      participants.map((p) => weights.get(p.id) ?? 1),
    );
    this.secure = new SecureCollection({
      runId: ctx.runId,
      round,
      collection: COLLECTIONS.update,
      participants: [...participants],
      ...this.graphFor(participants.length),
      thresholdFor: (n) => this.graphFor(n).threshold,
      vectorLength: ctx.global.length + 1,
      quantisation: plan.quantisation,
      clientNoiseSigma: plan.clientNoiseSigma,
      board: ctx.board,
      makeTask: (kind) => ctx.task(kind, ctx.modelVersion),
      firstKind: 'TRAIN',
      firstDeadlineMs: config.roundTimeoutMs,
      phaseDeadlineMs: config.phaseTimeoutMs,
      checkHeader: (institution, header) => checkHiddenUpdateHeader(ctx, institution, header),
    });
    const outcome = await this.secure.run();
    this.secure = null;
    if (!outcome.ok) return { failure: `round ${round}: secure aggregation aborted: ${outcome.reason}` };
    // The sum is revealed: record it first. Under client-level DP the institutions added the noise; the
    // ledger gets the noise actually present (every survivor, participant or cover, added its share).
    const actualNoiseMultiplier =
      policy.noise === 'distributed-share'
        ? distributedNoiseAccounting({
            l2Clip: policy.updateBound,
            scale: plan.quantisation.scale,
            dimension: ctx.global.length,
            perClientSigma: plan.clientNoiseSigma,
            survivors: outcome.survivors.length,
          }).effectiveNoiseMultiplier
        : undefined;
    ctx.privacy?.recordRevealedSum(round, ctx.modelVersion, outcome.events, actualNoiseMultiplier);
    const failure = tooFewReports(round, outcome.survivors.length, participants.length, config.minClients);
    if (failure) return { failure };
    const decoded = decodeWeightedSum(outcome.sum, plan.quantisation, outcome.survivors.length, plan.noiseTail);
    return {
      // Divided as the release policy says: by the weight that arrived, or under client-level DP
      // (DP-FedAvg) by the expected number of participants q·offered (the actual number is secret).
      contribution: { sum: { weightedDeltaSum: decoded.weightedSum, totalWeight: policy.divisor(decoded.totalWeight, participants.length), count: outcome.survivors.length } },
      reported: outcome.survivors,
      participants: participants.map((p) =>
        outcome.survivors.includes(p.id)
          ? { institutionId: p.id, status: 'reported' as const, numExamples: 0, detail: 'example count hidden by secure aggregation' }
          : {
              institutionId: p.id,
              status: outcome.excluded.has(p.id) ? ('rejected' as const) : ('dropped' as const),
              numExamples: 0,
              detail: outcome.excluded.get(p.id) ?? 'dropped out of the secure sum',
            },
      ),
      metrics: [{ institutionId: '', name: 'secagg_dropped', value: outcome.dropped.length }],
    };
  }
}
