// Child process of the client-memory bench and test: loads a CSV exactly as `dpfed client` does (public
// schema, streaming loader, per-row keyed split, fixed scaling) and prints one JSON line with the row
// counts and the process's peak resident memory. Run: node --import tsx bench/client-load-child.ts CSV SCHEMA
import { randomBytes } from 'node:crypto';
import { loadInstitutionCsv } from '@dpfed/client/csv-dataset';
import { RowSplitter } from '@dpfed/client/data-split';
import { readSchemaFile } from '@dpfed/proto/data-schema';

const [csv, schemaPath] = process.argv.slice(2);
const started = performance.now();
const data = await loadInstitutionCsv(csv, { schema: readSchemaFile(schemaPath), splitter: new RowSplitter(randomBytes(32), 0.2) });
let positives = 0;
for (const d of [data.train, data.validation]) for (let i = 0; i < d.n; i++) positives += d.y[i];
process.stdout.write(
  JSON.stringify({
    rows: data.rows,
    train: data.train.n,
    validation: data.validation.n,
    dim: data.train.dim,
    positives,
    seconds: (performance.now() - started) / 1000,
    // maxRSS is in kilobytes: the peak resident set of this process over its life
    peakRssMB: process.resourceUsage().maxRSS / 1024,
  }) + '\n',
);
