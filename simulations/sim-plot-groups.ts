// How the simulation plots group result rows: which sweep dimensions vary among a set of rows, the
// label of a row along those dimensions, and the label of its privacy setting. A sweep can vary rounds,
// institutions, dropout, split, aggregation and privacy mode beside ε and the seed; a plot keeps apart
// rows that differ in any of them and averages only over seeds (and, for local-only, institutions).
import type { SimResultRow } from './sim-result.ts';

export type SweepDim = 'rounds' | 'institutions' | 'dropout' | 'split' | 'aggregation' | 'privacy';

/** The dimensions that tell settings apart other than ε, the model and the seed. */
export const SETTING_DIMS: readonly SweepDim[] = ['rounds', 'institutions', 'dropout', 'split', 'aggregation'];

/** The dimensions of `dims` along which `rows` take more than one value, in the order of `dims`. */
export function varyingDims(rows: readonly SimResultRow[], dims: readonly SweepDim[]): SweepDim[] {
  return dims.filter((d) => new Set(rows.map((r) => r[d])).size > 1);
}

function dimLabel(row: SimResultRow, dim: SweepDim): string {
  switch (dim) {
    case 'rounds':
      return `${row.rounds} rounds`;
    case 'institutions':
      return `${row.institutions} institutions`;
    case 'dropout':
      return `dropout ${row.dropout}`;
    case 'split':
      return `split ${row.split}`;
    case 'aggregation':
      return row.aggregation;
    case 'privacy':
      return `${row.privacy} DP`;
  }
}

/** The row's values along `dims`, e.g. "10 rounds · dropout 0.2"; `fallback` when `dims` is empty. */
export function describe(row: SimResultRow, dims: readonly SweepDim[], fallback: string): string {
  return dims.length === 0 ? fallback : dims.map((d) => dimLabel(row, d)).join(' · ');
}

/** "no DP" or "ε = 1", with the privacy mode when `withMode` (a sweep over record and client DP). */
export function epsilonLabel(row: SimResultRow, withMode: boolean): string {
  if (row.epsilon === null) return 'no DP';
  return withMode ? `ε = ${row.epsilon} (${row.privacy})` : `ε = ${row.epsilon}`;
}

/** Sort key that puts "no DP" first and then the ε values in increasing order. */
export function epsilonOrder(row: SimResultRow): number {
  return row.epsilon === null ? -Infinity : row.epsilon;
}

/** Items grouped by `key`, groups in order of first appearance. */
export function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const g = groups.get(k);
    if (g) g.push(item);
    else groups.set(k, [item]);
  }
  return groups;
}

/** Distinct values in first-appearance order. */
export function distinct<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}
