// `dpfed schema`: the public data schema of a federation (proto/data-schema.ts).
//   infer  drafts a schema from a CSV for the operator to review (its bounds come from the data, so it
//          is outside any privacy claim until they are replaced by public knowledge);
//   hash   validates a schema file and prints its hash, which every institution of a federation shares.
import { existsSync, writeFileSync } from 'node:fs';
import { inferSchema, INFERRED_SCHEMA_WARNING } from '@dpfed/client/schema-inference';
import { featureColumns, schemaHash } from '@dpfed/proto/data-schema';
import { renderHelp, runCommand, UsageError, type CommandSpec, type FlagValues } from '@dpfed/proto/command-flags';
import { schemaFromFlag } from '@dpfed/proto/schema-flag';

export const INFER_COMMAND: CommandSpec = {
  name: 'schema infer',
  summary: "draft a data schema from a CSV (bounds = the data's own min and max: review them and make them public before a private run)",
  flags: [
    { name: 'data', type: 'string', required: true, help: 'CSV file with a header row' },
    { name: 'label-column', type: 'string', required: true, help: 'name of the 0/1 label column' },
    { name: 'out', type: 'string', required: true, help: 'schema file to write (JSON)' },
    { name: 'force', type: 'boolean', help: 'overwrite --out if it exists' },
  ],
  examples: ['dpfed schema infer --data bank-a.csv --label-column label --out schema.json'],
};

export const HASH_COMMAND: CommandSpec = {
  name: 'schema hash',
  summary: 'validate a schema file and print its canonical SHA-256 (equal hashes mean identical preprocessing)',
  flags: [
    { name: 'schema', type: 'string', required: true, help: 'schema file (JSON)' },
    { name: 'json', type: 'boolean', help: 'print one JSON object' },
  ],
  examples: ['dpfed schema hash --schema data/creditcard_fraud_ulb_sample.schema.json'],
};

async function inferBody(f: FlagValues): Promise<number> {
  const out = String(f.out);
  if (existsSync(out) && !f.force) throw new UsageError(`--out: ${out} exists (add --force to overwrite it)`);
  let schema: Awaited<ReturnType<typeof inferSchema>>;
  try {
    schema = await inferSchema(String(f.data), String(f.labelColumn));
  } catch (error) {
    throw new UsageError(`--data: ${(error as Error).message}`);
  }
  const body = ['{', `  "format": ${JSON.stringify(schema.format)},`, '  "columns": [', schema.columns.map((c) => `    ${JSON.stringify(c)}`).join(',\n'), '  ]', '}', ''].join('\n');
  try {
    writeFileSync(out, body);
  } catch (error) {
    throw new UsageError(`--out: cannot write ${out}: ${(error as Error).message}`);
  }
  process.stderr.write(`dpfed schema infer: WARNING: ${INFERRED_SCHEMA_WARNING}\n`);
  process.stdout.write(`wrote ${out}: ${featureColumns(schema).length} feature columns, label "${String(f.labelColumn)}", schema hash ${schemaHash(schema)}\n`);
  return 0;
}

async function hashBody(f: FlagValues): Promise<number> {
  const schema = schemaFromFlag(f.schema)!;
  const hash = schemaHash(schema);
  const features = featureColumns(schema).length;
  process.stdout.write(f.json ? JSON.stringify({ schemaHash: hash, features, columns: schema.columns.length }) + '\n' : `${hash}  ${features} features\n`);
  return 0;
}

function overview(): string {
  return [
    'dpfed schema: the public data schema every institution of a federation preprocesses its CSV with',
    '',
    'Usage: dpfed schema infer [flags]      dpfed schema hash [flags]',
    '',
    'Subcommands:',
    `  infer   ${INFER_COMMAND.summary}`,
    `  hash    ${HASH_COMMAND.summary}`,
    '',
    renderHelp(INFER_COMMAND),
    renderHelp(HASH_COMMAND),
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(overview());
    return 0;
  }
  if (sub === 'infer') return runCommand(INFER_COMMAND, rest, inferBody);
  if (sub === 'hash') return runCommand(HASH_COMMAND, rest, hashBody);
  process.stderr.write(`dpfed schema: unknown subcommand "${sub}" (expected infer or hash; see dpfed schema --help)\n`);
  return 2;
}
