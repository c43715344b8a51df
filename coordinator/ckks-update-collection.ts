// Training under CKKS (`--aggregation ckks`): institutions encrypt their updates under the run's key, the
// coordinator adds ciphertexts it cannot read, and the key holder decrypts only the sum
// (coordinator/ckks-collection.ts). The key, once published, serves the run's later rounds.
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { ResultHeaderMsg, SecAggMessageMsg } from '@dpfed/proto/wire';
import { CkksCollection } from './ckks-collection.ts';
import type { Institution } from './institution-registry.ts';
import type { ResultRoute } from './result-routing.ts';
import { checkHiddenUpdateHeader, type RoundCollection, type RoundContext } from './round-collection.ts';
import type { ResultSink, TrainingOutcome } from './round-types.ts';
import { failedPrecondition } from './rpc-error.ts';
import { weightCapFor } from './secure-update-plan.ts';

export class CkksUpdateCollection implements RoundCollection<TrainingOutcome> {
  private ckks: CkksCollection | null = null;

  constructor(private readonly ctx: RoundContext) {}

  async run(): Promise<TrainingOutcome> {
    const { ctx } = this;
    const { config, participants, round, policy, weights, resources } = ctx;
    const holderId = resources.ckksKey?.holder ?? config.ckksKeyHolder ?? [...participants].sort((a, b) => a.id.localeCompare(b.id))[0]?.id;
    const keyHolder = holderId ? ctx.institution(holderId) : undefined;
    if (!keyHolder) return { failure: `round ${round}: the CKKS key holder ${holderId ?? '(none)'} is not connected` };
    this.ckks = new CkksCollection({
      runId: ctx.runId,
      round,
      participants: [...participants],
      keyHolder,
      key: resources.ckksKey,
      dimension: ctx.global.length,
      weightCap: weightCapFor(participants.map((p) => weights.get(p.id) ?? 1)),
      minReports: config.minClients,
      board: ctx.board,
      makeTask: (kind) => ctx.task(kind, ctx.modelVersion),
      roundDeadlineMs: config.roundTimeoutMs,
      phaseDeadlineMs: config.phaseTimeoutMs,
      checkHeader: (institution, header) => checkHiddenUpdateHeader(ctx, institution, header),
    });
    const outcome = await this.ckks.run();
    this.ckks = null;
    resources.ckksKey = outcome.key;
    const noisy = policy.noise === 'distributed-share';
    if (!outcome.ok) {
      // A sum the key holder decrypted is revealed even when the round then fails.
      if (outcome.revealed && noisy) ctx.privacy?.recordRevealedSum(round, ctx.modelVersion, new Map(), policy.realNoiseMultiplier(outcome.revealed.reported, participants.length));
      return { failure: `round ${round}: CKKS aggregation failed: ${outcome.reason}` };
    }
    ctx.privacy?.recordRevealedSum(round, ctx.modelVersion, outcome.events, noisy ? policy.realNoiseMultiplier(outcome.reported.length, participants.length) : undefined);
    return {
      // Divided as the release policy says (see SecureUpdateCollection).
      contribution: { sum: { weightedDeltaSum: outcome.weightedDeltaSum, totalWeight: policy.divisor(outcome.totalWeight, participants.length), count: outcome.reported.length } },
      reported: outcome.reported,
      participants: participants.map((p) => {
        const { status, detail } = outcome.outcomes.get(p.id) ?? { status: 'dropped' as const, detail: 'not sampled' };
        return { institutionId: p.id, status, numExamples: 0, detail: status === 'reported' ? 'example count hidden by CKKS' : `${status}: ${detail}` };
      }),
      metrics: [],
    };
  }

  /** Encrypted results, the key holder's public key and the download of the sum, while the collection runs. */
  accepts(route: ResultRoute): boolean {
    return this.ckks !== null && (route === 'encrypted-result' || route === 'ckks-key' || route === 'ckks-sum');
  }

  /** A CKKS collection waits for its steps' deadlines: the liveness rules do not shorten them. */
  awaiting(): boolean {
    return false;
  }

  drop(): void {}

  decline(): void {}

  stop(): void {
    this.ckks?.stop();
  }

  openResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const { round } = this.ctx;
    this.ctx.checkRun(header.envelope);
    if (header.envelope.round !== round) throw failedPrecondition(`envelope.round: round ${header.envelope.round} is closed (current round ${round})`);
    return this.running().openResult(institution, header);
  }

  receiveSecAgg(institution: Institution, message: SecAggMessageMsg): void {
    this.running().receive(institution, message);
  }

  artifact(_name: string, institution: Institution): NamedTensor[] {
    return this.running().summedCiphertexts(institution);
  }

  private running(): CkksCollection {
    if (!this.ckks) throw new Error(`round ${this.ctx.round}: a CKKS message was routed to a collection that is not running`);
    return this.ckks;
  }
}
