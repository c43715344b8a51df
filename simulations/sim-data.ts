// The pooled rows a simulation deals out to its institutions: every row of one CSV, preprocessed by one
// public data schema (proto/data-schema.ts), with an optional natural group per row (--split-column: a
// state, a hospital, a bank), whose column is then not a model input.
//
// The schema is the one given (--schema) or, when none is given, inferred from the pooled rows
// (client-sdk/schema-inference.ts). In a real federation an inferred schema is refused for private runs:
// its bounds are a statistic of the rows. A simulation spends no real budget and no institution's data
// leaves anyone, so it accepts the inferred schema and says so (the ε it reports then assumes the bounds
// were public).
import { streamCsv, type Dataset } from '@dpfed/client/csv-dataset';
import { inferSchema } from '@dpfed/client/schema-inference';
import { compileSchema, describeHeaderMismatch, labelColumn, mapFeature, type DataSchema } from '@dpfed/proto/data-schema';
import { quoted } from '@dpfed/proto/text-excerpt';

/** Every row of the simulation's data, as model inputs, with the natural group of each row when there is one. */
export interface SimData extends Dataset {
  /** The public schema the rows went through (features in model-input order). */
  schema: DataSchema;
  /** True when the schema was inferred from these rows (see the file's comment). */
  schemaInferred: boolean;
  /** Per row: the index of its value of the split column in `groupNames` (absent without a split column). */
  group?: Int32Array;
  /** The distinct values of the split column, in order of first appearance. */
  groupNames?: string[];
  /** The split column's name (absent without one). */
  groupColumn?: string;
  /** Where the rows came from, for messages and the setting's identity. */
  source: string;
}

export class SimDataError extends Error {
  constructor(
    readonly flag: string,
    message: string,
  ) {
    super(`${flag}: ${message}`);
  }
}

export interface CsvDataOptions {
  path: string;
  labelColumn: string;
  /** The public schema; absent: inferred from the pooled rows. */
  schema?: DataSchema;
  /** A column naming each row's institution; it is removed before the schema applies. */
  splitColumn?: string;
}

/** Loads the CSV through the streaming reader, keeps each row's cells, then maps them by the schema. */
export async function loadSimCsv(o: CsvDataOptions): Promise<SimData> {
  let header: string[] = [];
  let splitIndex = -1;
  const rows: string[][] = [];
  const groupOf: number[] = [];
  const groupIndex = new Map<string, number>();
  try {
    await streamCsv(o.path, {
      header(cells) {
        header = cells;
        if (!cells.includes(o.labelColumn)) throw new SimDataError('--label-column', `${quoted(o.labelColumn, 60)} is not a column of ${o.path}`);
        if (o.splitColumn !== undefined) {
          splitIndex = cells.indexOf(o.splitColumn);
          if (splitIndex < 0) throw new SimDataError('--split-column', `${quoted(o.splitColumn, 60)} is not a column of ${o.path}`);
          if (o.splitColumn === o.labelColumn) throw new SimDataError('--split-column', 'the split column cannot be the label column');
        }
      },
      row(cells) {
        if (splitIndex >= 0) {
          const value = cells[splitIndex];
          let g = groupIndex.get(value);
          if (g === undefined) groupIndex.set(value, (g = groupIndex.size));
          groupOf.push(g);
          rows.push(cells.filter((_, i) => i !== splitIndex));
        } else rows.push(cells);
      },
    });
  } catch (error) {
    if (error instanceof SimDataError) throw error;
    throw new SimDataError('--data', (error as Error).message);
  }
  const columns = header.filter((_, i) => i !== splitIndex);
  let schema = o.schema;
  const inferred = !schema;
  if (!schema) {
    const text = [columns, ...rows].map((r) => r.join(',')).join('\n') + '\n';
    try {
      schema = await inferSchema({ text, name: o.path }, o.labelColumn);
    } catch (error) {
      throw new SimDataError('--data', (error as Error).message);
    }
  } else {
    const mismatch = describeHeaderMismatch(schema, columns);
    if (mismatch) throw new SimDataError('--schema', `the columns of ${o.path}${o.splitColumn ? ` (without the split column ${quoted(o.splitColumn, 60)})` : ''} do not match the schema: ${mismatch}`);
    if (labelColumn(schema).name !== o.labelColumn)
      throw new SimDataError('--label-column', `${quoted(o.labelColumn, 60)} differs from the schema's label column ${quoted(labelColumn(schema).name, 60)}`);
  }
  const data = mapRows(schema, columns, rows, o.path);
  const out: SimData = { ...data, schema, schemaInferred: inferred, source: o.path };
  if (splitIndex >= 0) {
    out.group = Int32Array.from(groupOf);
    out.groupNames = [...groupIndex.keys()];
    out.groupColumn = o.splitColumn;
  }
  return out;
}

/** The rows' model inputs and labels under the schema; a bad cell names its line and column. */
function mapRows(schema: DataSchema, columns: string[], rows: string[][], name: string): Dataset {
  const { featureNames, maps, labelIndex, featureIndex } = compileSchema(schema);
  const dim = maps.length;
  const x = new Float32Array(rows.length * dim);
  const y = new Float32Array(rows.length);
  rows.forEach((cells, r) => {
    const label = cells[labelIndex];
    if (label !== '0' && label !== '1' && label !== '0.0' && label !== '1.0') {
      throw new SimDataError('--data', `${name}: line ${r + 2}, column ${quoted(columns[labelIndex], 60)}: expected 0 or 1, got ${quoted(label)}`);
    }
    y[r] = Number(label);
    for (let i = 0; i < cells.length; i++) {
      const k = featureIndex[i];
      if (k < 0) continue;
      const value = cells[i] === '' ? Number.NaN : Number(cells[i]);
      if (cells[i] !== '' && !Number.isFinite(value)) throw new SimDataError('--data', `${name}: line ${r + 2}, column ${quoted(columns[i], 60)}: ${quoted(cells[i])} is not a finite number`);
      x[r * dim + k] = mapFeature(maps[k], value);
    }
  });
  return { featureNames, x, y, n: rows.length, dim };
}

/** The rows at `indices`, as a new dataset (features and labels only). */
export function selectRows(data: Dataset, indices: ArrayLike<number>): Dataset {
  const x = new Float32Array(indices.length * data.dim);
  const y = new Float32Array(indices.length);
  for (let r = 0; r < indices.length; r++) {
    const i = indices[r];
    x.set(data.x.subarray(i * data.dim, (i + 1) * data.dim), r * data.dim);
    y[r] = data.y[i];
  }
  return { featureNames: data.featureNames, x, y, n: indices.length, dim: data.dim };
}
