// `dpfed client`: an institution node. Trains on its own CSV; only outbound connections.
import { dirname, join } from 'node:path';
import { InstitutionPrivacy } from '../client-sdk/institution-privacy.ts';
import { loadInstitutionCsv } from '../client-sdk/csv-dataset.ts';
import { loadOrCreateSplitKey, RowSplitter } from '../client-sdk/data-split.ts';
import { FederationClient } from '../client-sdk/federation-client.ts';
import { inferSchema } from '../client-sdk/schema-inference.ts';
import { BACKEND_NAMES, selectBackend, type BackendName } from '../client-sdk/tf-backend.ts';
import { SchemaRequiredError, TfjsLearner } from '../client-sdk/tfjs-learner.ts';
import { loadOrCreateIdentity } from '../privacy/identity.ts';
import { labelColumn, readSchemaFile, type DataSchema } from '../proto/data-schema.ts';
import { INSTITUTION_ID_PATTERN } from '../proto/registration.ts';
import { quoted } from '../proto/text-excerpt.ts';
import { runCommand, UsageError, type CommandSpec } from './flags.ts';
import { tlsFlags, transportFromFlags } from './tls-flags.ts';

export const command: CommandSpec = {
  name: 'client',
  summary: 'run an institution node: trains locally on its CSV; its records never leave it',
  flags: [
    { name: 'coordinator', type: 'string', required: true, help: 'coordinator address HOST:PORT' },
    { name: 'institution', type: 'string', required: true, help: 'this institution\'s id', check: (v) => (INSTITUTION_ID_PATTERN.test(String(v)) ? undefined : 'letters, digits, . _ - (at most 64)') },
    { name: 'data', type: 'string', required: true, help: 'CSV file: header row, numeric cells, binary label column (read as a stream)' },
    { name: 'schema', type: 'string', help: 'public data schema, JSON (columns in order, bounds, transforms, label); required when the run uses privacy record or client. Draft one with: dpfed schema infer' },
    { name: 'label-column', type: 'string', help: 'name of the 0/1 label column (default "label"; with --schema it must match the schema\'s label column)' },
    { name: 'validation-fraction', type: 'number', default: 0.2, help: 'share of local rows kept for validation, each row decided by its own keyed hash (never leaves the institution)', check: (v) => (Number(v) > 0 && Number(v) < 1 ? undefined : 'must be in (0, 1)') },
    { name: 'split-key', type: 'string', help: 'secret 32-byte key of the train/validation split (created, mode 0600, if absent; default <institution>.split-key beside the identity key)' },
    { name: 'backend', type: 'string', default: 'auto', choices: BACKEND_NAMES, help: 'TensorFlow.js backend: auto picks tensorflow-gpu > tensorflow > wasm > cpu' },
    { name: 'identity', type: 'string', help: 'Ed25519 identity key file (created if absent; default ./<institution>.identity)' },
    { name: 'ledger', type: 'string', help: 'this institution\'s own epsilon ledger, SQLite (default ./<institution>.ledger.sqlite)' },
    { name: 'budget-epsilon', type: 'number', default: 10, help: 'this institution\'s privacy budget epsilon; it refuses to train past it', check: (v) => (Number(v) > 0 ? undefined : 'must be positive') },
    { name: 'declare-examples', type: 'int', default: 0, help: 'a public example count to declare (your FedAvg weight, capped by the run\'s --weight-cap); 0 = declare none (equal weights). Your true row count is never sent', check: (v) => (Number(v) >= 0 ? undefined : 'must be >= 0') },
    { name: 'budget-delta', type: 'number', default: 1e-5, help: 'this institution\'s privacy budget delta', check: (v) => (Number(v) > 0 && Number(v) < 1 ? undefined : 'must be in (0, 1)') },
    { name: 'connect-timeout', type: 'number', default: 600, help: 'seconds to keep retrying (with jittered backoff) while the coordinator is unreachable: at start, and when it restarts mid-run', check: (v) => (Number(v) > 0 ? undefined : 'must be positive') },
    ...tlsFlags('client'),
    { name: 'json', type: 'boolean', help: 'print a JSON summary at the end' },
  ],
  examples: [
    'dpfed client --coordinator coord.example:50051 --institution bank-a --data bank-a.csv --label-column label --budget-epsilon 5 \\\n' +
      '      --tls-ca ca.crt --tls-cert bank-a.crt --tls-key bank-a.key',
    'dpfed identity show --identity bank-a.identity     # the public key the operator enrols',
  ],
};

export async function main(argv: string[]): Promise<number> {
  return runCommand(command, argv, async (f) => {
    const id = String(f.institution);
    const log = (line: string) => process.stderr.write(`${line}\n`);
    const transport = transportFromFlags(f, 'client', { institutionId: id, command: 'client' });
    const identityPath = f.identity ? String(f.identity) : `${id}.identity`;
    let schema: DataSchema;
    const schemaInferred = f.schema === undefined;
    if (schemaInferred) {
      // No public schema: allowed for a run without privacy only (the learner refuses a private task).
      try {
        schema = await inferSchema(String(f.data), f.labelColumn === undefined ? 'label' : String(f.labelColumn));
      } catch (error) {
        throw new UsageError(`--data: ${(error as Error).message}`);
      }
    } else {
      try {
        schema = readSchemaFile(String(f.schema));
      } catch (error) {
        throw new UsageError(`--schema: ${(error as Error).message}`);
      }
      const label = labelColumn(schema).name;
      if (f.labelColumn !== undefined && String(f.labelColumn) !== label) throw new UsageError(`--label-column: ${quoted(String(f.labelColumn), 60)} differs from the schema's label column ${quoted(label, 60)}`);
    }
    let splitKey: Uint8Array;
    const splitKeyPath = f.splitKey ? String(f.splitKey) : join(dirname(identityPath), `${id}.split-key`);
    try {
      splitKey = loadOrCreateSplitKey(splitKeyPath);
    } catch (error) {
      throw new UsageError(`--split-key: ${(error as Error).message}`);
    }
    let data;
    try {
      data = await loadInstitutionCsv(String(f.data), { schema, splitter: new RowSplitter(splitKey, Number(f.validationFraction)) });
    } catch (error) {
      throw new UsageError(`--data: ${(error as Error).message}`);
    }
    const { train, validation } = data;
    const backend = await selectBackend(f.backend as BackendName);
    log(`[${id}] ${data.rows} rows (${train.n} train, ${validation.n} validation), ${train.dim} features; schema ${schemaInferred ? 'inferred from the data (privacy off only)' : String(f.schema)} ${data.schemaHash.slice(0, 16)}; TensorFlow.js backend: ${backend.name}`);
    const learner = new TfjsLearner(backend.tf, train, validation, { schema, schemaInferred });
    const identity = loadOrCreateIdentity(identityPath);
    const budget = { epsilon: Number(f.budgetEpsilon), delta: Number(f.budgetDelta) };
    const privacy = new InstitutionPrivacy({ institutionId: id, identity, budget, ledgerPath: f.ledger ? String(f.ledger) : `${id}.ledger.sqlite` });
    const client = new FederationClient({ coordinator: String(f.coordinator), institutionId: id, identity, learner, privacy, budget, log, ...transport,
      declaredExamples: Number(f.declareExamples) > 0 ? Number(f.declareExamples) : undefined, reconnectForMs: Number(f.connectTimeout) * 1000 });
    const stop = () => {
      client.stop();
      setTimeout(() => process.exit(130), 2000).unref();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      let result;
      try {
        result = await client.run();
      } catch (error) {
        if (error instanceof SchemaRequiredError) throw new UsageError(`--schema: ${error.message}`);
        throw error;
      }
      const spent = privacy.spent();
      if (f.json) process.stdout.write(JSON.stringify({ institution: id, backend: backend.name, ...result, epsilon: spent.epsilon, delta: spent.delta, budget: budget.epsilon }) + '\n');
      else log(`[${id}] finished: ${result.roundsTrained} rounds trained; epsilon spent ${spent.epsilon.toFixed(3)} of ${budget.epsilon} at delta ${spent.delta}`);
    } finally {
      client.close();
      privacy.close();
    }
    return 0;
  });
}
