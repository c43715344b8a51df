// Evaluation under plain aggregation: every evaluator sends its two score histograms for the round's
// candidate. Exact evaluation: the histograms with the institution's loss and accuracy, kept per
// institution and summed. Private evaluation: noisy histograms with the signed event that recorded their
// noise; only their sum is kept (no per-institution figures).
import { addHistograms, aucFromHistogram, emptyHistogram, type ScoreHistogram } from '@dpfed/privacy/auc-histogram';
import { EVALUATION_SENSITIVITY } from '@dpfed/privacy/evaluation-mechanism';
import { addNoisyHistograms, decodeNoisyHistograms, totalsFromNoisyHistograms, type EvaluationTotals, type NoisyHistograms } from '@dpfed/privacy/evaluation-vector';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import type { ResultHeaderMsg } from '@dpfed/proto/wire';
import type { Institution } from './institution-registry.ts';
import { noEvaluation } from './local-evaluation.ts';
import { PhaseCollection } from './phase-collection.ts';
import { PhaseCollector } from './phase-collector.ts';
import { checkEvaluationMetrics, checkNoisyCells, expectHistogramTensor, histogramTotal } from './result-checks.ts';
import type { ResultRoute } from './result-routing.ts';
import type { RoundCollection, RoundContext } from './round-collection.ts';
import type { EvalReport, EvalStage, MetricRow, ResultSink, RoundSummary } from './round-types.ts';
import { failedPrecondition, invalidArgument } from './rpc-error.ts';

/** Evaluators' histograms collected one by one; subclasses check and sum them. */
abstract class HistogramEvaluation extends PhaseCollection<EvalReport, EvalStage> implements RoundCollection<EvalStage> {
  constructor(
    protected readonly ctx: RoundContext,
    private readonly evaluators: readonly string[],
  ) {
    super(new PhaseCollector<EvalReport>('evaluation', new Set(evaluators), ctx.config.phaseTimeoutMs), 'evaluation-result');
  }

  async run(): Promise<EvalStage> {
    const { board, round } = this.ctx;
    for (const id of this.evaluators) board.post(id, this.ctx.task('EVALUATE', round));
    await this.phase.wait();
    for (const id of this.evaluators) board.clear(id);
    return this.sum(this.phase.reported());
  }

  /** The stage from the evaluations that arrived. */
  protected abstract sum(evals: Map<string, EvalReport>): EvalStage;

  /** The sink of one evaluation whose header passed the common checks. */
  protected abstract sink(institution: Institution, header: ResultHeaderMsg): ResultSink;

  /** An evaluation's result stream (its envelope is checked by the round: this round, the candidate's version). */
  openResult(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const why = this.phase.refusal(institution.id);
    if (why) throw failedPrecondition(why);
    if (header.tensorCount !== 2) throw invalidArgument(`header.tensor_count: an evaluation carries 2 histograms, got ${header.tensorCount}`);
    return this.sink(institution, header);
  }

  /** Takes a checked evaluation: its task is done. */
  protected report(institution: Institution, report: EvalReport): void {
    this.ctx.board.clear(institution.id);
    this.phase.report(institution.id, report);
  }

  protected reject(institution: Institution, reason: string): void {
    this.ctx.board.clear(institution.id);
    this.phase.reject(institution.id, 'rejected', reason);
  }
}

/** Exact evaluation: histograms, loss and accuracy per institution, kept and summed. */
export class PlainEvaluationCollection extends HistogramEvaluation {
  protected sink(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const { bins, logitRange } = this.ctx.config.task.evaluation;
    checkEvaluationMetrics(header.metrics);
    return {
      tensorCount: 2,
      expectTensor: expectHistogramTensor(bins),
      finish: (tensors: NamedTensor[]) => {
        const histogram: ScoreHistogram = { bins, logitRange, positive: tensors[0].data as Uint32Array, negative: tensors[1].data as Uint32Array };
        const n = histogramTotal(histogram.positive, histogram.negative, header.numExamples);
        this.report(institution, { histogram, numExamples: n, metrics: { ...header.metrics } });
      },
      fail: (reason) => this.reject(institution, reason),
    };
  }

  protected sum(evals: Map<string, EvalReport>): EvalStage {
    const { bins, logitRange } = this.ctx.config.task.evaluation;
    const totals: EvaluationTotals = { histogram: emptyHistogram(bins, logitRange), lossSum: 0, correct: 0, n: 0 };
    const metrics: MetricRow[] = [];
    const perInstitution: RoundSummary['institutions'] = [];
    for (const [id, e] of evals) {
      if (!e.histogram) throw new Error(`round ${this.ctx.round}: the exact evaluation of ${id} has no histogram`);
      totals.histogram = addHistograms(totals.histogram, e.histogram);
      totals.lossSum += (e.metrics.loss ?? 0) * e.numExamples;
      totals.correct += (e.metrics.accuracy ?? 0) * e.numExamples;
      totals.n += e.numExamples;
      const auc = aucFromHistogram(e.histogram);
      perInstitution.push({ id, auc, examples: e.numExamples });
      metrics.push({ institutionId: id, name: 'auc', value: auc }, { institutionId: id, name: 'eval_examples', value: e.numExamples });
      for (const [k, v] of Object.entries(e.metrics)) metrics.push({ institutionId: id, name: `eval_${k}`, value: v });
    }
    return { totals, metrics, perInstitution, evaluators: new Set(evals.keys()), events: new Map() };
  }
}

/** Private evaluation under plain aggregation: two noisy histograms (signed counts as 32-bit words) and the signed event. */
export class NoisyEvaluationCollection extends HistogramEvaluation {
  protected sink(institution: Institution, header: ResultHeaderMsg): ResultSink {
    const { bins, logitRange } = this.ctx.config.task.evaluation;
    this.ctx.privacy?.checkEvaluationEvent(institution, this.ctx.round, header.privacyEvent);
    const event = header.privacyEvent;
    if (!event) throw invalidArgument('header.privacy_event: a private evaluation must carry its signed evaluation event');
    return {
      tensorCount: 2,
      expectTensor: expectHistogramTensor(bins),
      finish: (tensors: NamedTensor[]) => {
        const vector = new Uint32Array(2 * bins);
        vector.set(tensors[0].data as Uint32Array, 0);
        vector.set(tensors[1].data as Uint32Array, bins);
        const noisy = decodeNoisyHistograms(vector, bins, logitRange);
        checkNoisyCells(noisy, event.noiseMultiplier);
        this.report(institution, { histogram: null, numExamples: 0, metrics: {}, noisy, privacyEvent: event });
      },
      fail: (reason) => this.reject(institution, reason),
    };
  }

  /**
   * Only the sum is kept, with the noise each institution's event records (σ = multiplier · Δ,
   * independent noises add in variance).
   */
  protected sum(evals: Map<string, EvalReport>): EvalStage {
    const stage = noEvaluation(this.ctx.config.task.evaluation);
    let sum: NoisyHistograms | null = null;
    let variance = 0;
    for (const [id, e] of evals) {
      if (!e.noisy || !e.privacyEvent) throw new Error(`round ${this.ctx.round}: the private evaluation of ${id} has no noisy histograms or event`);
      sum = sum ? addNoisyHistograms(sum, e.noisy) : e.noisy;
      variance += (e.privacyEvent.noiseMultiplier * EVALUATION_SENSITIVITY) ** 2;
      stage.events.set(id, e.privacyEvent);
    }
    // Plain aggregation: every noisy histogram the coordinator received is revealed to it; record the events now.
    this.ctx.privacy?.recordEvaluationEvents(this.ctx.round, stage.events);
    if (sum) stage.totals = totalsFromNoisyHistograms(sum, Math.sqrt(variance));
    stage.evaluators = new Set(evals.keys());
    return stage;
  }
}
