// The demo's held-out slice and its final check: before the bundled data is split across the banks, a
// seeded hash of each row sets aside about 10 % of the rows that no bank trains or validates on. After the
// run, the final global model is exported as a model folder (as `dpfed model export`) and scored on that
// slice (as `dpfed evaluate`), so the demo ends with a model a reader can load and its figures on rows the
// federation never saw.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { ClassificationReport } from '@dpfed/client/classification-metrics';
import { evaluate, loadModel } from '@dpfed/client/model-file';
import { exportModel } from '@dpfed/coordinator/model-export';

/** Share of the rows set aside. */
export const HELD_OUT_SHARE = 0.1;

/**
 * True for the rows of the held-out slice: the first 32 bits of SHA-256(seed, row text) below the share.
 * The choice depends on nothing but the seed and the row itself, so a seed always holds out the same rows.
 */
export function isHeldOut(row: string, seed: string): boolean {
  const digest = createHash('sha256').update(`dpfed-demo-held-out:${seed}:${row}`).digest();
  return digest.readUInt32BE(0) < HELD_OUT_SHARE * 2 ** 32;
}

/** Splits CSV data rows into the held-out slice (written to `path` under `header`) and the rest. */
export function holdOut(header: string, rows: string[], seed: string, path: string): { training: string[]; heldOut: number } {
  const training: string[] = [];
  const heldOut: string[] = [];
  for (const row of rows) (isHeldOut(row, seed) ? heldOut : training).push(row);
  writeFileSync(path, [header, ...heldOut].join('\n') + '\n');
  return { training, heldOut: heldOut.length };
}

/** What the demo reports of the held-out evaluation (the JSON summary's `heldOut`). */
export interface HeldOutMetrics {
  rows: number;
  positives: number;
  auc: number | null;
  prAuc: number | null;
  logLoss: number;
  precision: number;
  recall: number;
  f1: number;
  accuracy: number;
  threshold: number;
  ece: number;
}

function heldOutMetrics(r: ClassificationReport): HeldOutMetrics {
  return {
    rows: r.rows,
    positives: r.positives,
    auc: r.auc,
    prAuc: r.prAuc,
    logLoss: r.logLoss,
    precision: r.precision,
    recall: r.recall,
    f1: r.f1,
    accuracy: r.accuracy,
    threshold: r.threshold,
    ece: r.calibration.ece,
  };
}

/** One line of `dpfed evaluate`'s figures. */
export function heldOutLine(m: HeldOutMetrics): string {
  const f = (x: number | null) => (x === null ? 'undefined' : x.toFixed(4));
  return (
    `${m.rows} rows (${m.positives} positives): AUC ${f(m.auc)}, PR-AUC ${f(m.prAuc)}, log loss ${m.logLoss.toFixed(4)}, ` +
    `at ${m.threshold}: precision ${m.precision.toFixed(4)}, recall ${m.recall.toFixed(4)}, F1 ${m.f1.toFixed(4)}, calibration ECE ${m.ece.toFixed(4)}`
  );
}

/**
 * Exports the run's last committed global model to `outDir` (replacing it) with the run's stored schema as
 * its preprocessing, loads it back as a reader would and scores the held-out CSV.
 */
export async function exportAndEvaluate(o: { dbPath: string; runId: string; outDir: string; heldOutCsv: string; labelColumn: string }): Promise<{ model: string; heldOut: HeldOutMetrics }> {
  const db = new Database(o.dbPath, { readonly: true, fileMustExist: true });
  try {
    await exportModel({ db, runId: o.runId, outDir: o.outDir, force: true });
  } finally {
    db.close();
  }
  const model = await loadModel(o.outDir);
  const report = await evaluate(model, o.heldOutCsv, { labelColumn: o.labelColumn });
  return { model: o.outDir, heldOut: heldOutMetrics(report) };
}
