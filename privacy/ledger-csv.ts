// The ledger's event rows as CSV: one header line, then one line per event in chain order, every column of
// the row (hashes and signatures included, so the export can be checked against the chain).
import type { LedgerRow } from './ledger-rows.ts';

function csvCell(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const CSV_COLUMNS = [
  'seq',
  'institution_id',
  'run_id',
  'round',
  'mode',
  'sample_rate',
  'noise_multiplier',
  'steps',
  'clip_norm',
  'delta',
  'model_version',
  'time',
  'institution_signature',
  'prev_hash',
  'row_hash',
  'countersignature',
] as const;

/** Event rows as CSV (header + one line per event, in the order given). */
export function eventsCsv(rows: readonly LedgerRow[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of rows) {
    const e = r.event;
    lines.push(
      [
        r.seq,
        e.institutionId,
        e.runId,
        e.round,
        e.mode,
        e.sampleRate,
        e.noiseMultiplier,
        e.steps,
        e.clipNorm,
        e.delta,
        e.modelVersion,
        e.time,
        r.institutionSignature,
        r.prevHash,
        r.rowHash,
        r.countersignature,
      ]
        .map(csvCell)
        .join(','),
    );
  }
  return lines.join('\n') + '\n';
}
