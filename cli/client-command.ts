// `dpfed client`: an institution node. Trains on its own CSV; only outbound connections.
import { InstitutionPrivacy } from '../client-sdk/institution-privacy.ts';
import { loadCsv } from '../client-sdk/csv-dataset.ts';
import { splitTrainValidation } from '../client-sdk/data-split.ts';
import { FederationClient } from '../client-sdk/federation-client.ts';
import { fitStandardiser, standardise } from '../client-sdk/standardiser.ts';
import { BACKEND_NAMES, selectBackend, type BackendName } from '../client-sdk/tf-backend.ts';
import { TfjsLearner } from '../client-sdk/tfjs-learner.ts';
import { defaultKeyDir, institutionKeyPath, loadOrCreateIdentity } from '../privacy/identity.ts';
import { INSTITUTION_ID_PATTERN } from '../proto/registration.ts';
import { runCommand, UsageError, type CommandSpec } from './flags.ts';

export const command: CommandSpec = {
  name: 'client',
  summary: 'run an institution node: trains locally on its CSV; its records never leave it',
  flags: [
    { name: 'coordinator', type: 'string', required: true, help: 'coordinator address HOST:PORT' },
    { name: 'institution', type: 'string', required: true, help: 'this institution\'s id', check: (v) => (INSTITUTION_ID_PATTERN.test(String(v)) ? undefined : 'letters, digits, . _ - (at most 64)') },
    { name: 'data', type: 'string', required: true, help: 'CSV file: header row, numeric cells, binary label column' },
    { name: 'label-column', type: 'string', default: 'label', help: 'name of the 0/1 label column' },
    { name: 'validation-fraction', type: 'number', default: 0.2, help: 'share of local rows kept for validation (never leaves the institution)', check: (v) => (Number(v) > 0 && Number(v) < 1 ? undefined : 'must be in (0, 1)') },
    { name: 'backend', type: 'string', default: 'auto', choices: BACKEND_NAMES, help: 'TensorFlow.js backend: auto picks tensorflow-gpu > tensorflow > wasm > cpu' },
    { name: 'key-dir', type: 'string', help: 'directory of key files, apart from the ledger (default $DPFED_KEY_DIR or ~/.config/dpfed/keys; created 0700)' },
    { name: 'identity', type: 'string', help: 'Ed25519 identity key file (created 0600 if absent; default <key-dir>/<institution>.identity); refused when group/other may read it' },
    { name: 'ledger', type: 'string', help: 'this institution\'s own epsilon ledger, SQLite (default ./<institution>.ledger.sqlite)' },
    { name: 'budget-epsilon', type: 'number', default: 10, help: 'this institution\'s privacy budget epsilon; it refuses to train past it', check: (v) => (Number(v) > 0 ? undefined : 'must be positive') },
    { name: 'budget-delta', type: 'number', default: 1e-5, help: 'this institution\'s privacy budget delta', check: (v) => (Number(v) > 0 && Number(v) < 1 ? undefined : 'must be in (0, 1)') },
    { name: 'seed', type: 'string', default: '1', help: 'seed of the local train/validation split and data order' },
    { name: 'json', type: 'boolean', help: 'print a JSON summary at the end' },
  ],
  examples: ['dpfed client --coordinator 127.0.0.1:50051 --institution bank-a --data bank-a.csv --label-column label --budget-epsilon 5'],
};

export async function main(argv: string[]): Promise<number> {
  return runCommand(command, argv, async (f) => {
    const id = String(f.institution);
    const log = (line: string) => process.stderr.write(`${line}\n`);
    let data;
    try {
      data = loadCsv(String(f.data), String(f.labelColumn));
    } catch (error) {
      throw new UsageError(`--data: ${(error as Error).message}`);
    }
    const { train, validation } = splitTrainValidation(data, Number(f.validationFraction), String(f.seed));
    const standardiser = fitStandardiser(train);
    const backend = await selectBackend(f.backend as BackendName);
    log(`[${id}] ${data.n} rows (${train.n} train, ${validation.n} validation), ${data.dim} features; TensorFlow.js backend: ${backend.name}`);
    const learner = new TfjsLearner(backend.tf, standardise(train, standardiser), standardise(validation, standardiser));
    let identity;
    try {
      identity = loadOrCreateIdentity(f.identity ? String(f.identity) : institutionKeyPath(f.keyDir ? String(f.keyDir) : defaultKeyDir(), id));
    } catch (error) {
      throw new UsageError(`${f.identity ? '--identity' : '--key-dir'}: ${(error as Error).message}`);
    }
    const budget = { epsilon: Number(f.budgetEpsilon), delta: Number(f.budgetDelta) };
    const privacy = new InstitutionPrivacy({ institutionId: id, identity, budget, ledgerPath: f.ledger ? String(f.ledger) : `${id}.ledger.sqlite` });
    const client = new FederationClient({ coordinator: String(f.coordinator), institutionId: id, identity, learner, privacy, budget, log });
    const stop = () => {
      client.stop();
      setTimeout(() => process.exit(130), 2000).unref();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      const result = await client.run();
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
