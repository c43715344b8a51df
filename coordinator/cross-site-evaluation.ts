// Cross-site evaluation at the end of a run (run option evaluation.crossSite, --cross-site-evaluation):
// after the last round commits, every live institution is asked (task CROSS_SITE_EVALUATE) to score the
// final model on its own validation rows, and the coordinator records each institution's own AUC of it
// (coordinator/cross-site-results.ts), not a sum: that is what cross-site evaluation is for.
//
// What it costs, plainly: each institution releases its own two class histograms of the final model,
// alone. Privacy off: exact histograms, as every evaluation in that mode (no privacy claim). Privacy
// record: noisy histograms through the private evaluation mechanism (privacy/evaluation-mechanism.ts)
// with the institution's full planned σ (no share, as nothing is summed with it), a new release recorded
// in the institution's own ledger (mode "cross-site") before it leaves, and in the coordinator's ledger
// the moment it arrives. The institutions plan it from the start as one more evaluation release of the
// run's evaluation share, so the run's total ε holds; an institution that cannot afford it (e.g. other
// runs on its ledger) declines and says why, and its row records that. Under secure aggregation the
// rounds' evaluations are sums, but this release is not: the coordinator sees each institution's noisy
// histograms. Privacy client: refused when the run is configured (the institutions do not evaluate).
import { aucFromHistogram, aucStandardError, type ScoreHistogram } from '@dpfed/privacy/auc-histogram';
import { EVALUATION_SENSITIVITY } from '@dpfed/privacy/evaluation-mechanism';
import { decodeNoisyHistograms, totalsFromNoisyHistograms } from '@dpfed/privacy/evaluation-vector';
import type { PrivacyEventMsg, ResultHeaderMsg, TaskMsg } from '@dpfed/proto/wire';
import type { CoordinatorStore } from './coordinator-store.ts';
import { crossSiteResults, saveCrossSiteResults, type CrossSiteRow, type CrossSiteSummary } from './cross-site-results.ts';
import type { Institution, InstitutionRegistry } from './institution-registry.ts';
import { PhaseCollector } from './phase-collector.ts';
import { checkEvaluationMetrics, checkNoisyCells, expectHistogramTensor, histogramTotal } from './result-checks.ts';
import type { ResultRoute } from './result-routing.ts';
import type { RoundCollection } from './round-collection.ts';
import type { RoundPrivacy } from './round-privacy.ts';
import type { ResultSink } from './round-types.ts';
import type { RunConfig } from './run-config.ts';
import { failedPrecondition, invalidArgument } from './rpc-error.ts';
import type { TaskBoard } from './task-board.ts';

/** One institution's answer: its histograms (exact, or the noisy ones rounded at zero) and, when noisy, its event. */
interface CrossSiteReport {
  histogram: ScoreHistogram;
  examples: number | null;
  /** Noise standard deviation per cell (private release). */
  noiseSigma?: number;
  event?: PrivacyEventMsg;
}

/** How often the wait for institutions (a run resumed after its last round) looks again. */
const WAIT_POLL_MS = 50;

/**
 * The run's last collection, after its last round (RoundCollection: while it runs, the institutions'
 * evaluation results and declines are routed to it; the round loop's `round` is the final model's).
 */
export class CrossSiteEvaluation implements RoundCollection<CrossSiteSummary | null> {
  private phase: PhaseCollector<CrossSiteReport> | null = null;
  private stopped = false;
  private readonly round: number;

  constructor(
    private readonly deps: {
      runId: string;
      /** The round whose committed model is scored: the run's final model (its model version is the round). */
      round: number;
      config: RunConfig;
      store: CoordinatorStore;
      registry: InstitutionRegistry;
      board: TaskBoard;
      privacy?: RoundPrivacy;
      /** The CROSS_SITE_EVALUATE task about that model (envelope round = model version = `round`). */
      task: () => TaskMsg;
    },
  ) {
    this.round = deps.round;
  }

  accepts(route: ResultRoute): boolean {
    return route === 'evaluation-result';
  }

  awaiting(id: string): boolean {
    return Boolean(this.phase?.isOpenFor(id));
  }

  /** `id` is gone (its stream closed): no answer is awaited from it. */
  drop(id: string, detail: string): void {
    this.phase?.reject(id, 'dropped', detail);
  }

  /** `id` declined (its budget, or its own refusal): recorded with its reason. */
  decline(id: string, detail: string): void {
    this.phase?.reject(id, 'declined', detail);
    this.deps.board.clear(id);
  }

  /** Closes the collection early (the coordinator stops). */
  stop(): void {
    this.stopped = true;
    this.phase?.close();
  }

  /**
   * Asks every live institution to score the final model and records each one's own AUC. A run whose
   * results are stored already (a resumed coordinator) is not asked again. Resolves null when stopped or
   * when no institution was there to ask.
   */
  async run(): Promise<CrossSiteSummary | null> {
    const { runId, config, store, registry, board } = this.deps;
    const round = this.round;
    const stored = crossSiteResults(store.db, runId);
    if (stored) return stored;
    board.unblockAll();
    // A coordinator resumed after the last round waits (up to a phase's deadline) for the institutions to reconnect.
    const waitUntil = Date.now() + config.phaseTimeoutMs;
    let asked = registry.live((id) => board.isWaiting(id));
    while (!this.stopped && asked.length < config.minClients && Date.now() < waitUntil) {
      await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
      asked = registry.live((id) => board.isWaiting(id));
    }
    if (this.stopped || asked.length === 0) return null;
    asked.sort((a, b) => a.id.localeCompare(b.id));
    const phase = new PhaseCollector<CrossSiteReport>('cross-site evaluation', new Set(asked.map((i) => i.id)), config.phaseTimeoutMs);
    this.phase = phase;
    for (const institution of asked) board.post(institution.id, this.deps.task());
    await phase.wait();
    for (const institution of asked) board.clear(institution.id);
    if (this.stopped) return null;
    const isPrivate = config.task.privacy.mode === 'record';
    const rows: CrossSiteRow[] = [...phase.all()].map(([id, outcome]) => {
      if (outcome.status !== 'reported') return { institutionId: id, status: outcome.status, auc: null, aucStderr: null, examples: null, noiseMultiplier: null, detail: outcome.detail };
      const r = outcome.value;
      const auc = aucFromHistogram(r.histogram);
      const stderr = r.noiseSigma !== undefined ? aucStandardError(r.histogram, r.noiseSigma) : Number.NaN;
      return {
        institutionId: id,
        status: 'evaluated',
        auc: Number.isFinite(auc) ? auc : null,
        aucStderr: Number.isFinite(stderr) ? stderr : null,
        examples: r.examples,
        noiseMultiplier: r.event ? r.event.noiseMultiplier : null,
        detail: '',
      };
    });
    rows.sort((a, b) => a.institutionId.localeCompare(b.institutionId));
    const summary: CrossSiteSummary = { runId, round, private: isPrivate, recordedAt: new Date().toISOString(), institutions: rows };
    saveCrossSiteResults(store.db, summary);
    return summary;
  }

  /** Opens an institution's answer after checking its header. */
  openResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const phase = this.phase;
    if (!phase) throw failedPrecondition('envelope.round: no cross-site evaluation is being collected');
    if (header.envelope.runId !== this.deps.runId) throw failedPrecondition(`envelope.run_id: "${header.envelope.runId}" is not the current run "${this.deps.runId}"`);
    if (header.envelope.round !== this.round || header.envelope.modelVersion !== this.round) {
      throw failedPrecondition(
        `envelope.round: the cross-site evaluation is about round ${this.round} (model version ${this.round}), got round ${header.envelope.round}, model version ${header.envelope.modelVersion}`,
      );
    }
    if (header.masked || header.encrypted) throw invalidArgument("header.masked: a cross-site evaluation is the institution's own histograms, never masked or encrypted");
    const why = phase.refusal(institution.id);
    if (why) throw failedPrecondition(why);
    if (header.tensorCount !== 2) throw invalidArgument(`header.tensor_count: a cross-site evaluation carries 2 histograms, got ${header.tensorCount}`);
    const { bins, logitRange } = this.deps.config.task.evaluation;
    const isPrivate = this.deps.config.task.privacy.mode === 'record';
    const event = header.privacyEvent ?? undefined;
    if (isPrivate) {
      if (!event) throw invalidArgument('header.privacy_event: a private cross-site evaluation must carry its signed "cross-site" event');
      this.deps.privacy?.checkCrossSiteEvent(institution, this.round, event);
    } else checkEvaluationMetrics(header.metrics);
    const done = () => this.deps.board.clear(institution.id);
    return {
      tensorCount: 2,
      expectTensor: expectHistogramTensor(bins),
      finish: (tensors) => {
        const positive = tensors[0].data as Uint32Array;
        const negative = tensors[1].data as Uint32Array;
        if (isPrivate) {
          const vector = new Uint32Array(2 * bins);
          vector.set(positive, 0);
          vector.set(negative, bins);
          const noisy = decodeNoisyHistograms(vector, bins, logitRange);
          checkNoisyCells(noisy, event!.noiseMultiplier);
          // revealed to the coordinator: its event goes into the coordinator's ledger now, before anything else can fail
          this.deps.privacy?.recordCrossSiteEvent(institution.id, event!);
          const noiseSigma = event!.noiseMultiplier * EVALUATION_SENSITIVITY;
          done();
          phase.report(institution.id, { histogram: totalsFromNoisyHistograms(noisy, noiseSigma).histogram, examples: null, noiseSigma, event });
          return;
        }
        const n = histogramTotal(positive, negative, header.numExamples);
        done();
        phase.report(institution.id, { histogram: { bins, logitRange, positive, negative }, examples: n });
      },
      fail: (reason) => {
        done();
        phase.reject(institution.id, 'rejected', reason);
      },
    };
  }
}
