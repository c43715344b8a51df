// The institution's answer to a TRAIN task: train from the global model, clip the update to the release
// policy's bound, record the privacy event in its own ledger before any byte leaves, then send it in the
// clear, into a secure sum, or encrypted (CKKS). A retried round re-sends the update already released
// instead of training again, so no privacy is spent twice; a round the institution cannot afford, or that
// asks for less noise than its own calibration, is declined saying why.
import { createHash } from 'node:crypto';
import { addDistributedNoise } from '@dpfed/privacy/distributed-noise';
import { BudgetExceededError } from '@dpfed/privacy/ledger';
import { encodeWeightedUpdate, quantisationFromMessage } from '@dpfed/privacy/quantise';
import { participationCoin, releasePairRefusal, trainingReleasePolicy } from '@dpfed/privacy/release-policy';
import { clipToNorm } from '@dpfed/privacy/update-clipping';
import { parameterShapes } from '@dpfed/proto/model-spec';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import { exitAtTestPoint } from '@dpfed/proto/test-exit-hook';
import type { CkksTaskMsg, Envelope, LedgerHeadMsg, PrivacyEventMsg, ResultHeaderMsg, SecAggTaskMsg } from '@dpfed/proto/wire';
import type { CkksParticipant } from './ckks-participant.ts';
import type { ClientPrivacy } from './client-privacy.ts';
import type { HeldModels } from './held-models.ts';
import type { Learner, TaskContext } from './learner.ts';
import { subtractGlobal } from './model-delta.ts';
import type { ParticipantChannel } from './participant-channel.ts';
import type { Release } from './released-update.ts';
import type { SecureSumParticipant } from './secure-sum-participant.ts';

/** What producing and sending a training release needs besides the channel (FederationClientOptions' fields of the same names). */
export interface TrainingSetup {
  institutionId: string;
  learner: Learner;
  privacy?: ClientPrivacy;
  declaredExamples?: number;
  sitsOut?: (task: TaskContext) => string | null;
}

/** Where a release goes besides the plain upload, and where the global model comes from. */
export interface TrainingPeers {
  models: HeldModels;
  secureSum: SecureSumParticipant;
  ckks: CkksParticipant;
}

export class TrainingRelease {
  /** The last update released per (run, round, model version): a retried round resends it instead of spending privacy again. */
  private last: Release | null = null;
  /** Updates this client trained and released (a declined round or a re-sent update is not one). */
  private releasesProduced = 0;

  constructor(
    private readonly channel: ParticipantChannel,
    private readonly setup: TrainingSetup,
    private readonly peers: TrainingPeers,
  ) {}

  /** Updates this client trained and released (a declined round or a re-sent update is not one). */
  get produced(): number {
    return this.releasesProduced;
  }

  /** A TRAIN task: the release (new, or the one already released for this round), sent as the task asks. */
  async train(ctx: TaskContext, envelope: Envelope, secagg: SecAggTaskMsg | null, ckks: CkksTaskMsg | null = null): Promise<void> {
    const key = `${ctx.runId}/${ctx.round}/${ctx.modelVersion}`;
    let release = this.last?.key === key ? this.last : null;
    if (release) {
      // A re-run of the same round (the coordinator restarted or the round was retried): send the update
      // already released instead of training again, so no privacy is spent twice.
      this.channel.log(`round ${ctx.round}: re-sending the update already released for this round (no new privacy spend)`);
    } else {
      release = await this.produce(ctx, envelope, key);
      if (!release) return;
      this.last = release;
      this.releasesProduced++;
    }
    const header: ResultHeaderMsg = { ...release.header, envelope };
    if (secagg) await this.sendSecureUpdate(ctx, envelope, secagg, release, header);
    else if (ckks) await this.peers.ckks.sendUpdate(ckks, release, header);
    else await this.channel.connection.pushResult({ ...header, tensorCount: release.tensors.length }, release.tensors);
    this.channel.emit('trained', { round: ctx.round, metrics: header.metrics });
  }

  /**
   * train → clip to the release policy's bound → the privacy event: the update as it leaves the
   * institution. Under client-level DP the institution first checks the plan against its own calibration
   * and budget, records the round in its own ledger, and flips its secret coin: heads, its clipped update
   * goes into the sum; tails, a zero (cover) update does, so nobody learns whether it took part (it trains
   * either way, so its timing does not tell either).
   */
  private async produce(ctx: TaskContext, envelope: Envelope, key: string): Promise<Release | null> {
    const { config } = ctx;
    const { channel, setup } = this;
    const refusal = releasePairRefusal(config.privacy.mode, config.aggregation);
    if (refusal) {
      await channel.decline(envelope, 'unsupported', refusal);
      return null;
    }
    const absent = setup.sitsOut?.(ctx);
    if (absent) {
      await channel.decline(envelope, 'unavailable', absent);
      return null;
    }
    const policy = trainingReleasePolicy(config);
    let noiseMultiplier: number | null = null;
    let joins = true;
    let clientLedgerHead: LedgerHeadMsg | null = null;
    if (policy.participation === 'secret-coin') {
      const privacy = setup.privacy;
      if (!privacy?.beforeClientRound || !privacy.recordClientRelease) throw new Error('client-level DP requested but this client has no privacy guard configured');
      const decision = privacy.beforeClientRound(ctx);
      if (!decision.allowed) {
        await channel.decline(envelope, decision.reason ?? 'budget', decision.detail, decision.projectedEpsilon, decision.budgetEpsilon);
        return null;
      }
      try {
        // The binding budget check: the round's event enters the institution's ledger (or not) in one transaction.
        privacy.recordClientRelease(ctx);
      } catch (error) {
        if (!(error instanceof BudgetExceededError)) throw error;
        await channel.decline(envelope, 'budget', error.message, error.projectedEpsilon, error.budget.epsilon);
        return null;
      }
      clientLedgerHead = privacy.signedHead?.() ?? null;
      joins = participationCoin(config.privacy.client!.clientSampleRate);
      // for the institution's own code only: nothing about the coin leaves it
      channel.emit('participation', { round: ctx.round, joined: joins });
    }
    if (policy.noise === 'local-dp-sgd') {
      if (!setup.privacy) throw new Error('record-level DP requested but this client has no privacy guard configured');
      const decision = setup.privacy.beforeRound(ctx, setup.learner);
      if (!decision.allowed) {
        await channel.decline(envelope, decision.reason ?? 'budget', decision.detail, decision.projectedEpsilon, decision.budgetEpsilon);
        return null;
      }
      noiseMultiplier = decision.noiseMultiplier;
    }
    const global = await this.peers.models.download(envelope, ctx.spec, ctx.modelId ?? '');
    const t0 = performance.now();
    const outcome = await setup.learner.train(global, ctx, noiseMultiplier);
    exitAtTestPoint('train', ctx.round);
    const delta = subtractGlobal(outcome.params, global);
    if (joins) clipToNorm(delta, policy.updateBound);
    else delta.fill(0);
    let privacyEvent: PrivacyEventMsg | null = null;
    // The head of the institution's own ledger after it recorded this round (record or client level): a receipt for the coordinator.
    let ledgerHead: LedgerHeadMsg | null = clientLedgerHead;
    if (policy.noise === 'local-dp-sgd') {
      if (!outcome.mechanism) throw new Error('record-level DP: the learner did not report the mechanism it ran');
      try {
        // The binding budget check: the event enters the institution's ledger (or not) before any byte leaves.
        privacyEvent = setup.privacy!.recordRelease(ctx, outcome.mechanism);
      } catch (error) {
        if (!(error instanceof BudgetExceededError)) throw error;
        await channel.decline(envelope, 'budget', error.message, error.projectedEpsilon, error.budget.epsilon);
        return null;
      }
      ledgerHead = setup.privacy!.signedHead?.() ?? null;
    }
    // In record mode the training loss is computed on raw records without noise: it stays home.
    const metrics: Record<string, number> = policy.noise === 'none' ? { ...outcome.metrics } : { steps: outcome.metrics.steps ?? 0 };
    const tensors: NamedTensor[] = [];
    let offset = 0;
    for (const { name, shape } of parameterShapes(ctx.spec)) {
      const size = shape.reduce((a, b) => a * b, 1);
      tensors.push({ name, shape, dtype: 'FLOAT32', data: delta.subarray(offset, offset + size) });
      offset += size;
    }
    return {
      key,
      delta,
      weight: policy.weightOf(setup.declaredExamples ?? null),
      noiseShareStd: policy.noiseShareStd.bind(policy),
      tensors,
      header: {
        envelope,
        kind: 'TRAIN_RESULT',
        numExamples: 0,
        metrics: { ...metrics, seconds: (performance.now() - t0) / 1000 },
        privacyEvent: privacyEvent ?? undefined,
        ledgerHead: ledgerHead ?? undefined,
        tensorCount: tensors.length,
        masked: false,
        encrypted: false,
      },
    };
  }

  /** quantise (+ the distributed-DP noise share) → the secure sum. Re-quantising a released update is post-processing; re-drawing its noise is not, so a noisy encoding is reused or the round declined. */
  private async sendSecureUpdate(ctx: TaskContext, envelope: Envelope, secagg: SecAggTaskMsg, release: Release, header: ResultHeaderMsg): Promise<void> {
    const fingerprint = `${JSON.stringify(secagg.quantisation)}|${secagg.clientNoiseSigma}|${release.weight}`;
    // A noisy vector enters one sum only: a second secure sum of the same release is refused (the next
    // round draws fresh noise and records it as its own event).
    if (release.encoded?.noisy) {
      await this.channel.decline(envelope, 'already-released', `round ${ctx.round}: this round's noisy update already entered a secure sum; sending it again would let two sums be differenced`);
      return;
    }
    if (!release.encoded || release.encoded.fingerprint !== fingerprint) {
      const quantisation = quantisationFromMessage(secagg.quantisation);
      // Distributed DP: the institution's own share for the offered participants, never less.
      const ownShare = release.noiseShareStd(secagg.identities.length) * quantisation.scale;
      if (ownShare > 0 && !(secagg.clientNoiseSigma >= ownShare * (1 - 1e-9))) {
        await this.channel.decline(
          envelope,
          'noise',
          `round ${ctx.round}: the coordinator asks for noise ${secagg.clientNoiseSigma} per institution, below this institution's own share ${ownShare} (quantised units)`,
        );
        return;
      }
      // with privacy off the rounding protects nothing: it is seeded, so a seeded run is reproducible
      const rounding = ctx.config.privacy.mode === 'off' ? seededRounding(`${ctx.config.seed}:rounding:${ctx.round}:${this.setup.institutionId}`) : undefined;
      const vector = encodeWeightedUpdate(release.delta, release.weight, quantisation, rounding);
      if (ownShare > 0) addDistributedNoise(vector.subarray(0, release.delta.length), secagg.clientNoiseSigma);
      release.encoded = { fingerprint, vector, noisy: ownShare > 0 };
      this.channel.emit('released', { round: ctx.round, digest: createHash('sha256').update(vector).digest('hex') });
    }
    await this.peers.secureSum.start(envelope, secagg, new Uint32Array(release.encoded.vector), { ...header, metrics: { seconds: header.metrics.seconds ?? 0 } });
  }
}

/** Uniform draws for the stochastic rounding of a run with privacy off, from a seeded generator. */
function seededRounding(seed: string): (uniforms: Uint32Array) => void {
  const random = new SeededRandom(seed);
  return (uniforms) => {
    for (let i = 0; i < uniforms.length; i++) uniforms[i] = random.nextUint32();
  };
}
