// `dpfed evaluate`: scores a labelled CSV with an exported model and reports AUC, PR-AUC, log loss,
// precision/recall/F1 at a threshold, accuracy and calibration (client-sdk/classification-metrics.ts).
import { CsvError } from '@dpfed/client/csv-dataset';
import { evaluate } from '@dpfed/client/model-file';
import type { ClassificationReport } from '@dpfed/client/classification-metrics';
import { runCommand, UsageError, type CommandSpec } from '@dpfed/proto/command-flags';
import { loadModelFromFlags, MODEL_FLAGS } from './model-flags.ts';

export const command: CommandSpec = {
  name: 'evaluate',
  summary: 'score a labelled CSV with an exported model: AUC, PR-AUC, log loss, threshold metrics, calibration',
  flags: [
    ...MODEL_FLAGS,
    { name: 'label-column', type: 'string', required: true, help: "the CSV's 0/1 label column" },
    {
      name: 'threshold',
      type: 'number',
      default: 0.5,
      help: 'a row is predicted positive when its score is at least this',
      check: (v) => (Number(v) >= 0 && Number(v) <= 1 ? undefined : 'must be in [0, 1]'),
    },
    { name: 'bins', type: 'int', default: 10, help: 'calibration bins (equal width on [0, 1])', check: (v) => (Number(v) >= 1 && Number(v) <= 1000 ? undefined : 'must be 1..1000') },
    { name: 'json', type: 'boolean', help: 'print one JSON object' },
  ],
  examples: ['dpfed evaluate --model model/ --data test.csv --label-column label --threshold 0.3 --json'],
};

function fmt(x: number | null): string {
  return x === null ? 'undefined (one class only)' : x.toFixed(4);
}

function render(r: ClassificationReport, model: { runId: string; round: number; modelHash: string }): string {
  const lines = [
    `model: run ${model.runId} round ${model.round} (${model.modelHash.slice(0, 16)}…)`,
    `rows ${r.rows}: ${r.positives} positives, ${r.negatives} negatives`,
    `AUC ${fmt(r.auc)}   PR-AUC (average precision) ${fmt(r.prAuc)}   log loss ${r.logLoss.toFixed(4)}`,
    `at threshold ${r.threshold}: precision ${r.precision.toFixed(4)}, recall ${r.recall.toFixed(4)}, F1 ${r.f1.toFixed(4)}, accuracy ${r.accuracy.toFixed(4)} ` +
      `(TP ${r.truePositives}, FP ${r.falsePositives}, TN ${r.trueNegatives}, FN ${r.falseNegatives})`,
    `calibration: ECE ${r.calibration.ece.toFixed(4)}`,
    '  bin            rows  mean predicted  observed',
    ...r.calibration.bins.map(
      (b) =>
        `  [${b.from.toFixed(2)}, ${b.to.toFixed(2)})  ${String(b.count).padStart(6)}  ${(b.meanPredicted === null ? '-' : b.meanPredicted.toFixed(4)).padStart(14)}  ${(b.observedRate === null ? '-' : b.observedRate.toFixed(4)).padStart(8)}`,
    ),
  ];
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<number> {
  return runCommand(command, argv, async (f) => {
    const model = await loadModelFromFlags(f);
    let report: ClassificationReport;
    try {
      report = await evaluate(model, String(f.data), { labelColumn: String(f.labelColumn), threshold: Number(f.threshold), bins: Number(f.bins) });
    } catch (error) {
      if (error instanceof CsvError) throw new UsageError(`--data: ${error.message}`);
      throw error;
    }
    const about = { runId: model.card.runId, round: model.card.round, modelHash: model.card.modelHash };
    if (f.json) process.stdout.write(JSON.stringify({ model: about, ...report }) + '\n');
    else process.stdout.write(render(report, about));
    return 0;
  });
}
