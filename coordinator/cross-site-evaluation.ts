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
import { aucFromHistogram, aucStandardError, type ScoreHistogram } from '../privacy/auc-histogram.ts';
import { EVALUATION_SENSITIVITY, noisyCellFloor } from '../privacy/evaluation-mechanism.ts';
import { decodeNoisyHistograms, totalsFromNoisyHistograms } from '../privacy/evaluation-vector.ts';
import type { DeclineRequestMsg, PrivacyEventMsg, ResultHeaderMsg, TaskMsg } from '../proto/wire.ts';
import type { CoordinatorStore } from './coordinator-store.ts';
import { crossSiteResults, saveCrossSiteResults, type CrossSiteRow, type CrossSiteSummary } from './cross-site-results.ts';
import { expectHistogramTensor } from './histogram-tensors.ts';
import type { Institution, InstitutionRegistry } from './institution-registry.ts';
import { PhaseCollector } from './phase-collector.ts';
import type { ResultSink } from './round-machine.ts';
import type { RoundPrivacy } from './round-privacy.ts';
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

export class CrossSiteEvaluation {
  private phase: PhaseCollector<CrossSiteReport> | null = null;
  private round = 0;

  constructor(
    private readonly deps: {
      runId: string;
      config: RunConfig;
      store: CoordinatorStore;
      registry: InstitutionRegistry;
      board: TaskBoard;
      privacy?: RoundPrivacy;
      /** The CROSS_SITE_EVALUATE task about the committed model of `round` (envelope round = model version = `round`). */
      task: (round: number) => TaskMsg;
      isStopped: () => boolean;
    },
  ) {}

  /** Whether `id` still owes an answer. */
  isOpenFor(id: string): boolean {
    return Boolean(this.phase?.isOpenFor(id));
  }

  /** True while answers are being collected. */
  get collecting(): boolean {
    return Boolean(this.phase && !this.phase.isClosed);
  }

  /** `id` is gone (its stream closed, or it did not fetch its task): no answer is awaited from it. */
  drop(id: string, detail: string): void {
    this.phase?.reject(id, 'dropped', detail);
  }

  /** Closes the collection early (the coordinator stops). */
  stop(): void {
    this.phase?.close();
  }

  /**
   * Asks every live institution to score the committed model of `round` and records each one's own
   * AUC. A run whose results are stored already (a resumed coordinator) is not asked again. Returns
   * null when stopped or when no institution was there to ask.
   */
  async run(round: number): Promise<CrossSiteSummary | null> {
    const { runId, config, store, registry, board } = this.deps;
    const stored = crossSiteResults(store.db, runId);
    if (stored) return stored;
    this.round = round;
    board.unblockAll();
    // A coordinator resumed after the last round waits (up to a phase's deadline) for the institutions to reconnect.
    const waitUntil = Date.now() + config.phaseTimeoutMs;
    let asked = registry.live((id) => board.isWaiting(id));
    while (!this.deps.isStopped() && asked.length < config.minClients && Date.now() < waitUntil) {
      await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
      asked = registry.live((id) => board.isWaiting(id));
    }
    if (this.deps.isStopped() || asked.length === 0) return null;
    asked.sort((a, b) => a.id.localeCompare(b.id));
    const phase = new PhaseCollector<CrossSiteReport>('cross-site evaluation', new Set(asked.map((i) => i.id)), config.phaseTimeoutMs);
    this.phase = phase;
    for (const institution of asked) board.post(institution.id, this.deps.task(round));
    await phase.wait();
    for (const institution of asked) board.clear(institution.id);
    if (this.deps.isStopped()) return null;
    const isPrivate = config.task.privacy.mode === 'record';
    const rows: CrossSiteRow[] = [...phase.all()].map(([id, outcome]) => {
      if (outcome.status !== 'reported') return { institutionId: id, status: outcome.status, auc: null, aucStderr: null, examples: null, noiseMultiplier: null, detail: outcome.detail };
      const r = outcome.value;
      const auc = aucFromHistogram(r.histogram);
      const stderr = r.noiseSigma !== undefined ? aucStandardError(r.histogram, r.noiseSigma) : Number.NaN;
      return {
        institutionId: id, status: 'evaluated', auc: Number.isFinite(auc) ? auc : null, aucStderr: Number.isFinite(stderr) ? stderr : null,
        examples: r.examples, noiseMultiplier: r.event ? r.event.noiseMultiplier : null, detail: '',
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
      throw failedPrecondition(`envelope.round: the cross-site evaluation is about round ${this.round} (model version ${this.round}), got round ${header.envelope.round}, model version ${header.envelope.modelVersion}`);
    }
    if (header.masked || header.encrypted) throw invalidArgument('header.masked: a cross-site evaluation is the institution\'s own histograms, never masked or encrypted');
    const why = phase.refusal(institution.id);
    if (why) throw failedPrecondition(why);
    if (header.tensorCount !== 2) throw invalidArgument(`header.tensor_count: a cross-site evaluation carries 2 histograms, got ${header.tensorCount}`);
    const { bins, logitRange } = this.deps.config.task.evaluation;
    const isPrivate = this.deps.config.task.privacy.mode === 'record';
    const event = header.privacyEvent ?? undefined;
    if (isPrivate) {
      if (!event) throw invalidArgument('header.privacy_event: a private cross-site evaluation must carry its signed "cross-site" event');
      this.deps.privacy?.checkCrossSiteEvent(institution, this.round, event);
    } else {
      for (const key of ['loss', 'accuracy']) {
        const v = header.metrics[key];
        if (v === undefined || !Number.isFinite(v)) throw invalidArgument(`header.metrics.${key}: required finite number`);
      }
    }
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
          const floor = noisyCellFloor(event!.noiseMultiplier);
          for (const [name, cells] of [['histogram/positive', noisy.positive], ['histogram/negative', noisy.negative]] as const) {
            const i = cells.findIndex((v) => v < floor);
            if (i >= 0) throw invalidArgument(`tensor.data: "${name}" cell ${i} is ${cells[i]}, below ${floor.toFixed(1)}: no count plus the recorded noise goes that low`);
          }
          // revealed to the coordinator: its event goes into the coordinator's ledger now, before anything else can fail
          this.deps.privacy?.recordCrossSiteEvent(institution.id, event!);
          const noiseSigma = event!.noiseMultiplier * EVALUATION_SENSITIVITY;
          done();
          phase.report(institution.id, { histogram: totalsFromNoisyHistograms(noisy, noiseSigma).histogram, examples: null, noiseSigma, event });
          return;
        }
        let n = 0;
        for (let i = 0; i < bins; i++) n += positive[i] + negative[i];
        if (n !== header.numExamples) throw invalidArgument(`header.num_examples: ${header.numExamples} does not match the histogram total ${n}`);
        done();
        phase.report(institution.id, { histogram: { bins, logitRange, positive, negative }, examples: n });
      },
      fail: (reason) => {
        done();
        phase.reject(institution.id, 'rejected', reason);
      },
    };
  }

  /** An institution declines the cross-site evaluation (its budget, or its own refusal): recorded with its reason. */
  decline(institution: Institution, request: DeclineRequestMsg): void {
    if (!this.phase || request.envelope.round !== this.round) return;
    this.phase.reject(institution.id, 'declined', `${request.reason || 'declined'}: ${request.detail}`);
    this.deps.board.clear(institution.id);
  }
}
