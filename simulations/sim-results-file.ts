// results.csv and results.json of `dpfed sim`: one row per SimRecord, in a stable order (by setting id,
// institution, scoring). The CSV has a header; lists and maps are JSON in their cell; ε "inf" means no
// DP (null in the JSON); a figure undefined on its rows (NaN) is an empty cell in the CSV and null in
// the JSON. Reading refuses a file whose header or cells are not what this writer writes, naming the line.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import type { SimRecord } from './sim-result.ts';

export const RESULTS_CSV = 'results.csv';
export const RESULTS_JSON = 'results.json';

export const COLUMNS = [
  'settingId',
  'baseline',
  'institution',
  'scoredOn',
  'epsilon',
  'delta',
  'privacy',
  'aggregation',
  'model',
  'rounds',
  'institutions',
  'dropout',
  'split',
  'seed',
  'auc',
  'prAuc',
  'accuracy',
  'aucPerRound',
  'epsilonSpent',
  'epsilonPerRound',
  'seconds',
  'scoredRows',
] as const satisfies readonly (keyof SimRecord)[];

/** The key rows are deduplicated by: one result per setting, baseline, institution and scoring. */
export function rowKey(r: Pick<SimRecord, 'settingId' | 'baseline' | 'institution' | 'scoredOn'>): string {
  return `${r.settingId}/${r.baseline}/${r.institution ?? ''}/${r.scoredOn}`;
}

export function sortRows(rows: SimRecord[]): SimRecord[] {
  return [...rows].sort((a, b) => (rowKey(a) < rowKey(b) ? -1 : rowKey(a) > rowKey(b) ? 1 : 0));
}

function csvCell(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

function cellOf(row: SimRecord, column: (typeof COLUMNS)[number]): string {
  const value = row[column];
  if (column === 'epsilon') return value === null ? 'inf' : String(value);
  if (value === null) return '';
  if (typeof value === 'number') return Number.isNaN(value) ? '' : String(value);
  if (typeof value === 'object') return JSON.stringify(value, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v));
  return String(value);
}

export function resultsCsv(rows: SimRecord[]): string {
  return [COLUMNS.join(','), ...sortRows(rows).map((r) => COLUMNS.map((c) => csvCell(cellOf(r, c))).join(','))].join('\n') + '\n';
}

export function resultsJson(rows: SimRecord[]): string {
  return JSON.stringify(sortRows(rows), (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n';
}

/** Writes both files (each through a temporary file, so a reader never sees half a file). */
export function writeResults(outDir: string, rows: SimRecord[]): string[] {
  mkdirSync(outDir, { recursive: true });
  const files: string[] = [];
  for (const [name, text] of [
    [RESULTS_CSV, resultsCsv(rows)],
    [RESULTS_JSON, resultsJson(rows)],
  ] as const) {
    const path = join(outDir, name);
    writeFileSync(`${path}.tmp`, text);
    renameSync(`${path}.tmp`, path);
    files.push(path);
  }
  return files;
}

export class ResultsFileError extends Error {}

const NUMBER_COLUMNS = new Set(['delta', 'rounds', 'institutions', 'dropout', 'seed', 'auc', 'prAuc', 'accuracy', 'seconds']);

/** The rows of a results.csv this writer wrote. */
export function parseResultsCsv(text: string, name: string): SimRecord[] {
  const [header, ...lines] = parse(text, { skip_empty_lines: true, relax_column_count: true }) as string[][];
  if (!header || header.join(',') !== COLUMNS.join(',')) throw new ResultsFileError(`${name}: line 1: expected the header ${COLUMNS.join(',')}`);
  return lines.map((cells, k) => {
    const line = k + 2;
    if (cells.length !== COLUMNS.length) throw new ResultsFileError(`${name}: line ${line}: expected ${COLUMNS.length} cells, got ${cells.length}`);
    const row: Record<string, unknown> = {};
    COLUMNS.forEach((column, i) => {
      const cell = cells[i];
      if (column === 'epsilon') row[column] = cell === 'inf' ? null : Number(cell);
      else if (column === 'institution') row[column] = cell === '' ? null : cell;
      else if (column === 'delta') row[column] = cell === '' ? null : Number(cell);
      else if (column === 'aucPerRound' || column === 'epsilonSpent' || column === 'epsilonPerRound') {
        try {
          const parsed = JSON.parse(cell) as unknown;
          row[column] = Array.isArray(parsed) ? parsed.map((v) => (v === null ? Number.NaN : v)) : parsed;
        } catch {
          throw new ResultsFileError(`${name}: line ${line}, column ${column}: not JSON`);
        }
      } else if (NUMBER_COLUMNS.has(column)) row[column] = cell === '' ? Number.NaN : Number(cell);
      else row[column] = cell;
      if (typeof row[column] === 'number' && Number.isNaN(row[column]) && cell !== '') throw new ResultsFileError(`${name}: line ${line}, column ${column}: "${cell}" is not a number`);
    });
    return row as unknown as SimRecord;
  });
}

/** The rows of `dir`/results.csv; none when the file does not exist. */
export function readResults(dir: string): SimRecord[] {
  const path = join(dir, RESULTS_CSV);
  if (!existsSync(path)) return [];
  return parseResultsCsv(readFileSync(path, 'utf8'), path);
}

/** Rows of several result sets, one per key (the first seen wins). */
export function mergeRows(sets: SimRecord[][]): SimRecord[] {
  const byKey = new Map<string, SimRecord>();
  for (const rows of sets) for (const r of rows) if (!byKey.has(rowKey(r))) byKey.set(rowKey(r), r);
  return sortRows([...byKey.values()]);
}
