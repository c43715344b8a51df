// The ledger's event rows as CSV: one header line, then one line per event in chain order, every column of
// the row (hashes and signatures included, so the export can be checked against the chain).
import { EVENT_COLUMNS, eventColumnValues, type LedgerRow } from './ledger-rows.ts';

function csvCell(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const CSV_COLUMNS = EVENT_COLUMNS;

/** Event rows as CSV (header + one line per event, in the order given). */
export function eventsCsv(rows: readonly LedgerRow[]): string {
  const lines = [CSV_COLUMNS.join(',')];
  for (const r of rows) lines.push(eventColumnValues(r).map(csvCell).join(','));
  return lines.join('\n') + '\n';
}
