// `dpfed model export`: writes a committed global model of a coordinator database as a model folder
// (TensorFlow.js Layers model, preprocessing, model card, SHA256SUMS; coordinator/model-export.ts).
// Opens the database read-only.
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { exportModel, ModelExportError, type RoundChoice } from '@dpfed/coordinator/model-export';
import { UsageError, type CommandSpec, type FlagValues } from '@dpfed/proto/command-flags';
import { schemaFromFlag } from '@dpfed/proto/schema-flag';
import { runSubcommand, type Subcommand } from './subcommands.ts';

export const EXPORT_COMMAND: CommandSpec = {
  name: 'model export',
  summary: "write a run's global model as a TensorFlow.js model folder with its preprocessing and model card",
  flags: [
    { name: 'db', type: 'string', required: true, help: "the coordinator's SQLite file" },
    { name: 'run', type: 'string', help: 'run id (default: the most recently created run)' },
    {
      name: 'round',
      type: 'string',
      help: "N, last, or best (the round with the highest recorded global AUC, the federation's own evaluation signal); default: the run's --keep (last unless it was started with --keep best)",
      check: (v) => (v === 'last' || v === 'best' || /^[1-9]\d*$/.test(String(v)) ? undefined : 'expected a round number >= 1, last or best'),
    },
    { name: 'out', type: 'string', required: true, help: 'folder to write (must not exist or be empty, unless --force)' },
    {
      name: 'schema',
      type: 'string',
      help: "the federation's public data schema (JSON), shipped as the model's preprocessing (default: the schema the run was started with, dpfed coordinator --schema; without either, predict needs --schema)",
    },
    { name: 'id-column', type: 'string', help: 'a CSV column (not a feature) that predictions carry as the row id' },
    { name: 'force', type: 'boolean', help: 'replace --out if it holds files' },
    { name: 'json', type: 'boolean', help: 'print the model card as JSON' },
  ],
  examples: ['dpfed model export --db fed.sqlite --round best --schema schema.json --out model/', 'dpfed predict --model model/ --data test.csv --out scores.csv'],
};

async function exportBody(f: FlagValues): Promise<number> {
  const file = String(f.db);
  if (!existsSync(file)) throw new UsageError(`--db: no such file: ${file}`);
  const schema = schemaFromFlag(f.schema);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
    db.prepare('SELECT 1 FROM sqlite_master').get();
  } catch (error) {
    throw new UsageError(`--db: cannot open ${file} as SQLite: ${(error as Error).message}`);
  }
  const raw = f.round === undefined ? undefined : String(f.round);
  const round: RoundChoice | undefined = raw === undefined ? undefined : raw === 'last' || raw === 'best' ? raw : Number(raw);
  try {
    const { card, outDir } = await exportModel({ db, runId: f.run as string | undefined, round, outDir: String(f.out), schema, idColumn: f.idColumn as string | undefined, force: Boolean(f.force) });
    if (f.json) process.stdout.write(JSON.stringify(card) + '\n');
    else {
      process.stdout.write(
        `exported run ${card.runId} round ${card.round} (${card.roundSelection}) to ${outDir}: model hash ${card.modelHash}` +
          (card.metrics.auc !== undefined && card.metrics.auc !== null ? `, recorded global AUC ${card.metrics.auc.toFixed(4)}` : '') +
          '\n',
      );
    }
    return 0;
  } catch (error) {
    if (error instanceof ModelExportError) {
      const message = error.message;
      if (/^run .* is not in the database/.test(message)) throw new UsageError(`--run: ${message}`);
      if (/^not a dpfed|holds no run/.test(message)) throw new UsageError(`--db: ${file}: ${message}`);
      if (/no committed round \d|no recorded global auc/.test(message)) throw new UsageError(`--round: ${message}`);
      if (/exists and is not empty/.test(message)) throw new UsageError(`--out: ${message} (add --force to replace it)`);
      if (/schema|id column/.test(message)) throw new UsageError(`--${/id column/.test(message) ? 'id-column' : 'schema'}: ${message}`);
      throw new UsageError(`--db: ${file}: ${message}`);
    }
    throw error;
  } finally {
    db.close();
  }
}

const SUBCOMMANDS: Record<string, Subcommand> = { export: { spec: EXPORT_COMMAND, body: exportBody } };

export async function main(argv: string[]): Promise<number> {
  return runSubcommand('model', "export a federation's global model as a file anyone can score with", SUBCOMMANDS, argv);
}
