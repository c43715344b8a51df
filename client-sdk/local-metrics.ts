// An institution's own view of every global model it receives: the model's metrics on the institution's
// validation rows (AUC, PR-AUC, log loss, and accuracy, precision and recall at the threshold 0.5, with the
// definitions of client-sdk/classification-metrics.ts), exact and unnoised. They are computed from the
// raw validation rows, so they carry no privacy protection and never leave the institution: they go to
// its own log, to the FederationClient's 'local-metrics' event, and into `dpfed client --json`; nothing
// of them is put in a message to the coordinator (the private evaluation, when the run asks for one,
// releases only its noisy histograms: privacy/evaluation-mechanism.ts).
//
// Cost: a model the client evaluates anyway (an EVALUATE task) is scored once, and the evaluation's
// logits are reused here; a model the client only trains from (a round without evaluation, or the
// initial model) is scored with one forward pass over the validation rows, after the round's update has
// been sent. A model is scored once per model id, and only a model the client already holds: nothing is
// downloaded for this.
import { averagePrecision, logLoss, rocAuc, thresholdMetrics } from './classification-metrics.ts';
import type { Learner, TaskContext, ValidationScores } from './learner.ts';

/** One global model's metrics on this institution's validation rows (never sent). */
export interface LocalModelMetrics {
  /** The round that produced the model: its model version (0: the run's initial model). */
  round: number;
  /** The coordinator's id of the model (the key of the client's model cache). */
  modelId: string;
  /** ROC AUC; null when the validation rows hold one class only. */
  auc: number | null;
  /** Average precision; null without a positive row. */
  prAuc: number | null;
  logLoss: number;
  /** At the threshold 0.5 on the predicted probability. */
  accuracy: number;
  precision: number;
  recall: number;
  /** Validation rows scored. */
  n: number;
}

/** The metrics of one model from its logits on the validation rows (the probability is sigmoid(logit), in float64). */
export function localModelMetrics(scores: ValidationScores, o: { round: number; modelId: string }): LocalModelMetrics {
  const { logits, labels } = scores;
  if (logits.length !== labels.length) throw new Error(`local metrics: ${logits.length} logits but ${labels.length} labels`);
  if (logits.length === 0) throw new Error('local metrics: no validation rows');
  const probability = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) probability[i] = 1 / (1 + Math.exp(-logits[i]));
  const at = thresholdMetrics(probability, labels, 0.5);
  return {
    round: o.round,
    modelId: o.modelId,
    auc: rocAuc(probability, labels),
    prAuc: averagePrecision(probability, labels),
    logLoss: logLoss(probability, labels),
    accuracy: at.accuracy,
    precision: at.precision,
    recall: at.recall,
    n: logits.length,
  };
}

const figure = (x: number | null) => (x === null ? 'undefined' : x.toFixed(4));

/** The log line of one model's local metrics. */
export function describeLocalMetrics(m: LocalModelMetrics): string {
  const model = m.round === 0 ? 'initial model' : `round ${m.round} global model`;
  return (
    `${model} on my validation rows (stays here): AUC ${figure(m.auc)}, PR-AUC ${figure(m.prAuc)}, log loss ${figure(m.logLoss)}, ` +
    `accuracy ${figure(m.accuracy)}, precision ${figure(m.precision)}, recall ${figure(m.recall)} at 0.5`
  );
}

/**
 * The metrics of every model the client holds, once per model id: the evaluation's own logits when the
 * model was just evaluated (keepScores), else one forward pass of the learner (Learner.validationScores).
 * A learner that offers neither is not scored. `report` is told each new entry.
 */
export class LocalModelView {
  private readonly done = new Set<string>();
  private readonly entries: LocalModelMetrics[] = [];
  /** The validation scores of the model evaluated last, by model id. */
  private kept: { modelId: string; scores: ValidationScores } | null = null;

  constructor(
    private readonly learner: Learner,
    private readonly report: (metrics: LocalModelMetrics) => void,
  ) {}

  /** Every model's metrics so far, one entry per round (a round run again keeps its last model's). */
  get all(): LocalModelMetrics[] {
    return this.entries.map((e) => ({ ...e }));
  }

  /** The validation scores an evaluation of `modelId` produced, so that scoring it needs no second pass. */
  keepScores(modelId: string | undefined, scores: ValidationScores | undefined): void {
    if (modelId && scores) this.kept = { modelId, scores };
  }

  /** Scores the task's model (held by the client as `model`) unless it was scored before. */
  async observe(task: TaskContext, model: Float32Array | undefined): Promise<LocalModelMetrics | null> {
    const modelId = task.modelId ?? '';
    if (!modelId || !model || this.done.has(modelId)) return null;
    const scores = this.kept?.modelId === modelId ? this.kept.scores : await this.learner.validationScores?.(model, task);
    this.kept = null;
    if (!scores || scores.logits.length === 0) return null;
    this.done.add(modelId);
    const metrics = localModelMetrics(scores, { round: task.modelVersion, modelId });
    const same = this.entries.findIndex((e) => e.round === metrics.round);
    if (same >= 0) this.entries.splice(same, 1);
    this.entries.push(metrics);
    this.entries.sort((a, b) => a.round - b.round);
    this.report(metrics);
    return metrics;
  }
}
