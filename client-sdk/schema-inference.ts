// A schema drafted from the data itself: each column's observed minimum and maximum become its bounds,
// and a non-negative column with a long right tail gets log1p. This reads the data, so it is outside any
// privacy claim: the bounds are a statistic of the institution's rows. It serves two purposes only:
// `dpfed schema infer`, a draft the operator must review and replace by public knowledge before a
// private run, and `dpfed client` with privacy off, where no privacy is claimed.
import { SCHEMA_FORMAT, parseSchema, type DataSchema, type SchemaColumn } from '@dpfed/proto/data-schema';
import { quoted } from '@dpfed/proto/text-excerpt';
import { CsvError, streamCsv, type CsvSource } from './csv-dataset.ts';

export const INFERRED_SCHEMA_WARNING =
  'the bounds of this schema are the minimum and maximum of the data it was read from: they describe ' +
  'those rows and are not public. Review them and replace them by public knowledge (documented ranges, ' +
  "regulations, the other institutions' agreement) before any run with privacy record or client; " +
  'inferring them is outside every privacy guarantee dpfed gives.';

interface ColumnStats {
  min: number;
  max: number;
  sum: number;
  count: number;
}

/** Reads the CSV once and drafts a schema: bounds from the observed range, log1p for heavy right tails. */
export async function inferSchema(source: CsvSource, labelColumn: string): Promise<DataSchema> {
  const name = typeof source === 'string' ? source : source.name;
  let header: string[] = [];
  let labelIndex = -1;
  let stats: ColumnStats[] = [];
  await streamCsv(source, {
    header(cells) {
      header = cells;
      labelIndex = cells.indexOf(labelColumn);
      if (labelIndex < 0)
        throw new CsvError(
          `${name}: label column ${quoted(labelColumn, 60)} not found in the header (columns: ${cells
            .slice(0, 40)
            .map((c) => quoted(c, 40))
            .join(', ')}${cells.length > 40 ? ', …' : ''})`,
        );
      stats = cells.map(() => ({ min: Infinity, max: -Infinity, sum: 0, count: 0 }));
    },
    row(cells, line) {
      for (let i = 0; i < cells.length; i++) {
        const cell = cells[i];
        if (i === labelIndex) {
          if (!['0', '1', '0.0', '1.0'].includes(cell)) throw new CsvError(`${name}: line ${line}, column ${quoted(header[i], 60)}: expected 0 or 1, got ${quoted(cell)}`);
          continue;
        }
        if (cell === '') continue;
        const v = Number(cell);
        if (!Number.isFinite(v)) throw new CsvError(`${name}: line ${line}, column ${quoted(header[i], 60)}: ${quoted(cell)} is not a finite number`);
        const s = stats[i];
        if (v < s.min) s.min = v;
        if (v > s.max) s.max = v;
        s.sum += v;
        s.count++;
      }
    },
  });
  const columns: SchemaColumn[] = header.map((columnName, i) => {
    if (i === labelIndex) return { name: columnName, type: 'label' };
    const s = stats[i];
    if (s.count === 0) return { name: columnName, type: 'number', bounds: [0, 1], transform: 'none' };
    const mean = s.sum / s.count;
    const max = s.max > s.min ? s.max : s.min + 1;
    const heavyTail = s.min >= 0 && s.max - mean > 20 * (mean - s.min) && s.max > 100;
    return { name: columnName, type: 'number', bounds: [s.min, max], transform: heavyTail ? 'log1p' : 'none' };
  });
  return parseSchema({ format: SCHEMA_FORMAT, columns }, `schema inferred from ${name}`);
}
