// The data of a sweep, from `--data FILE.csv` (with --label-column, --schema, --split-column) or from
// `--data synthetic:fraud[:ROWS[:SEED]]`, and the identity that enters every setting's id: the file's
// content hash (not its path, so shards that mount the file elsewhere agree), the label column, the
// schema's hash and the split column.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { schemaHash, type DataSchema } from '@dpfed/proto/data-schema';
import { loadSimCsv, SimDataError, type SimData } from './sim-data.ts';
import { generateSyntheticFraud, parseSyntheticSource } from './synthetic-fraud.ts';

export interface SimInputOptions {
  data: string;
  labelColumn: string;
  schema?: DataSchema;
  splitColumn?: string;
  /** Banks of the synthetic generator. */
  institutions: number;
}

export async function loadSimInputs(o: SimInputOptions): Promise<{ data: SimData; identity: string }> {
  const synthetic = parseSyntheticSource(o.data);
  if (synthetic) {
    if (o.schema) throw new SimDataError('--schema', 'synthetic:fraud has its own public schema; drop --schema');
    if (o.splitColumn) throw new SimDataError('--split-column', 'synthetic:fraud is split by bank already; use --split to deal its rows out otherwise');
    const data = generateSyntheticFraud(synthetic, o.institutions);
    return { data, identity: `${data.source}|banks=${o.institutions}` };
  }
  let content: Buffer;
  try {
    content = readFileSync(o.data);
  } catch (error) {
    throw new SimDataError('--data', `cannot read ${o.data}: ${(error as Error).message}`);
  }
  const data = await loadSimCsv({ path: o.data, labelColumn: o.labelColumn, schema: o.schema, splitColumn: o.splitColumn });
  const fileHash = createHash('sha256').update(content).digest('hex').slice(0, 16);
  return { data, identity: `csv:${fileHash}|label=${o.labelColumn}|schema=${schemaHash(data.schema).slice(0, 16)}|split-column=${o.splitColumn ?? ''}` };
}
