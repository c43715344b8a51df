// Training under plain aggregation: every participant uploads its update, which the coordinator sees.
// Each update is received straight into a pooled vector, checked (finite, the model's length) and clipped
// to the release policy's bound. For strategies that work on sums the weighted sum is folded as the
// updates arrive, so the round does not wait for it after the last upload; otherwise the updates are
// handed to the strategy one by one.
import { checkTrainingEvent } from './round-privacy.ts';
import { tooFewReports, type RoundCollection, type RoundContext } from './round-collection.ts';
import type { Institution } from './institution-registry.ts';
import { PhaseCollection } from './phase-collection.ts';
import { PhaseCollector } from './phase-collector.ts';
import { acceptUpdate, expectParameterTensor, parameterPlacement } from './result-checks.ts';
import type { ResultRoute } from './result-routing.ts';
import type { MetricRow, ResultSink, TrainReport, TrainingOutcome } from './round-types.ts';
import { failedPrecondition, invalidArgument } from './rpc-error.ts';
import type { ClientUpdate } from './strategy.ts';
import { ArrivalWeightedSum } from './weighted-sum.ts';
import type { PrivacyEventMsg, ResultHeaderMsg } from '@dpfed/proto/wire';

export class PlainUpdateCollection extends PhaseCollection<TrainReport, TrainingOutcome> implements RoundCollection<TrainingOutcome> {
  /** The arrival sum, while updates may still be folded into it (strategies that work on sums). */
  private arrivals: ArrivalWeightedSum | null;
  /** Updates above the bound that the coordinator clipped. */
  private clipped = 0;

  constructor(
    private readonly ctx: RoundContext,
    worksOnSums: boolean,
  ) {
    super(new PhaseCollector<TrainReport>('training', new Set(ctx.participants.map((p) => p.id)), ctx.config.roundTimeoutMs), 'update-result');
    const { updateVectors, arrivalBuffer } = ctx.resources;
    const order = ctx.participants.map((p) => p.id);
    this.arrivals = worksOnSums ? new ArrivalWeightedSum(arrivalBuffer.cleared(ctx.global.length), order, (v) => updateVectors.give(v)) : null;
  }

  /** An institution that left or declined sends no update: the arrival sum need not wait for it. */
  override drop(id: string, detail: string): void {
    super.drop(id, detail);
    this.arrivals?.skip(id);
  }

  override decline(id: string, detail: string): void {
    super.decline(id, detail);
    this.arrivals?.skip(id);
  }

  async run(): Promise<TrainingOutcome> {
    const { board, participants, round, config, weights } = this.ctx;
    for (const p of participants) board.post(p.id, this.ctx.task('TRAIN', this.ctx.modelVersion));
    await this.phase.wait();
    const arrivals = this.arrivals;
    this.arrivals = null;
    const outcomes = this.phase.all();
    for (const id of outcomes.keys()) board.clear(id);
    const reports = this.phase.reported();
    // Plain aggregation: every update the coordinator received is revealed to it; record its event now.
    const events = new Map<string, PrivacyEventMsg>();
    for (const [id, r] of reports) if (r.privacyEvent) events.set(id, r.privacyEvent);
    this.ctx.privacy?.recordRevealedSum(round, this.ctx.modelVersion, events);
    const failure = tooFewReports(round, reports.size, participants.length, config.minClients);
    if (failure) {
      arrivals?.discard();
      return { failure };
    }
    const metrics: MetricRow[] = [{ institutionId: '', name: 'updates_clipped', value: this.clipped }];
    for (const [id, r] of reports) for (const [k, v] of Object.entries(r.metrics)) metrics.push({ institutionId: id, name: `train_${k}`, value: v });
    return {
      contribution: arrivals ? this.arrivalSum(arrivals) : this.updates(reports),
      reported: [...reports.keys()],
      // The weight used is public (a declared size, capped, or 1); no row count is kept.
      participants: [...outcomes].map(([id, o]) =>
        o.status === 'reported'
          ? { institutionId: id, status: 'reported' as const, numExamples: 0, detail: `weight ${weights.get(id) ?? 1}` }
          : { institutionId: id, status: o.status, numExamples: 0, detail: o.detail },
      ),
      metrics,
    };
  }

  /** Σ w·Δ in float64, folded in the participants' order: bit for bit the strategy's own sum over the same updates. */
  private arrivalSum(arrivals: ArrivalWeightedSum) {
    const { weightedSum, totalWeight, count } = arrivals.finish();
    return { sum: { weightedDeltaSum: weightedSum, totalWeight, count } };
  }

  /** The round's updates, each with the release policy's weight of its declared size, in the participants' order (not arrival order). */
  private updates(reports: Map<string, TrainReport>) {
    const inOrder = this.ctx.participants.filter((p) => reports.has(p.id)).map((p) => [p.id, reports.get(p.id)!] as const);
    const updates: ClientUpdate[] = inOrder.map(([id, r]) => {
      if (!r.delta) throw new Error(`round ${this.ctx.round}: the update of ${id} was folded into the arrival sum`);
      return { institutionId: id, weight: this.ctx.weights.get(id) ?? 1, delta: r.delta };
    });
    return { updates, release: () => this.ctx.resources.updateVectors.give(...updates.map((u) => u.delta)) };
  }

  /** An update's result stream (its envelope is checked by the round: this round, the global model's version). */
  openResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const { ctx, phase } = this;
    const why = phase.refusal(institution.id);
    if (why) throw failedPrecondition(why);
    if (header.tensorCount !== ctx.shapes.length) throw invalidArgument(`header.tensor_count: expected ${ctx.shapes.length} tensors, got ${header.tensorCount}`);
    checkTrainingEvent(ctx.policy, ctx.privacy, institution, ctx.round, ctx.modelVersion, header.privacyEvent);
    // The update is received straight into one flat vector (no copy after the stream).
    const delta = ctx.resources.updateVectors.take(ctx.global.length);
    return {
      tensorCount: ctx.shapes.length,
      expectTensor: expectParameterTensor(ctx.shapes),
      place: parameterPlacement(ctx.shapes, delta),
      finish: () => {
        // Bounded influence: an update above the bound is clipped to it (counted in the round's metrics);
        // header.num_examples is ignored (an update weighs what its institution declared, capped).
        if (acceptUpdate(delta, ctx.global.length, ctx.policy.updateBound)) this.clipped++;
        ctx.board.clear(institution.id);
        const arrivals = this.arrivals;
        phase.report(institution.id, {
          delta: arrivals ? null : delta,
          numExamples: 0,
          metrics: { ...header.metrics },
          privacyEvent: header.privacyEvent ?? null,
        });
        arrivals?.add(institution.id, delta, ctx.weights.get(institution.id) ?? 1);
      },
      fail: (reason) => {
        ctx.board.clear(institution.id);
        this.arrivals?.skip(institution.id);
        phase.reject(institution.id, 'rejected', reason);
      },
    };
  }
}
