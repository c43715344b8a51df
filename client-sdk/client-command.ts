// `dpfed client`: an institution node. Trains on its own CSV; only outbound connections.
import { dirname, join } from 'node:path';
import { clientContext, logClientEvents } from './client-event-log.ts';
import { ClientMetrics } from './client-metrics.ts';
import { InstitutionPrivacy } from './institution-privacy.ts';
import { loadInstitutionCsv } from './csv-dataset.ts';
import { loadOrCreateSplitKey, RowSplitter } from './data-split.ts';
import { FederationClient, SchemaMismatchError } from './federation-client.ts';
import { prewarmNoiseWorkers } from '@dpfed/privacy/noise-pool';
import { inferSchema } from './schema-inference.ts';
import { BACKEND_NAMES, selectBackend, type BackendName } from './tf-backend.ts';
import { SchemaRequiredError, TfjsLearner } from './tfjs-learner.ts';
import Database from 'better-sqlite3';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { composedEpsilon } from '@dpfed/privacy/budget';
import { defaultKeyDir, institutionKeyPath, loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { labelColumn, type DataSchema } from '@dpfed/proto/data-schema';
import { INSTITUTION_ID_PATTERN } from '@dpfed/proto/registration';
import { lineLogger } from '@dpfed/proto/logger';
import { quoted } from '@dpfed/proto/text-excerpt';
import { runCommand, UsageError, type CommandSpec } from '@dpfed/proto/command-flags';
import { schemaFromFlag } from '@dpfed/proto/schema-flag';
import { loggerFromFlags, metricsServerFromFlags, observabilityFlags } from '@dpfed/proto/observability-flags';
import { tlsFlags, transportFromFlags } from '@dpfed/proto/tls-flags';

export const command: CommandSpec = {
  name: 'client',
  summary: 'run an institution node: trains locally on its CSV; its records never leave it',
  flags: [
    { name: 'coordinator', type: 'string', required: true, help: 'coordinator address HOST:PORT' },
    { name: 'institution', type: 'string', required: true, help: "this institution's id", check: (v) => (INSTITUTION_ID_PATTERN.test(String(v)) ? undefined : 'letters, digits, . _ - (at most 64)') },
    { name: 'data', type: 'string', required: true, help: 'CSV file: header row, numeric cells, binary label column (read as a stream)' },
    {
      name: 'schema',
      type: 'string',
      help: 'public data schema, JSON (columns in order, bounds, transforms, label); required when the run uses privacy record or client. Draft one with: dpfed schema infer',
    },
    { name: 'label-column', type: 'string', help: 'name of the 0/1 label column (default "label"; with --schema it must match the schema\'s label column)' },
    {
      name: 'validation-fraction',
      type: 'number',
      default: 0.2,
      help: 'share of local rows kept for validation, each row decided by its own keyed hash (never leaves the institution)',
      check: (v) => (Number(v) > 0 && Number(v) < 1 ? undefined : 'must be in (0, 1)'),
    },
    { name: 'split-key', type: 'string', help: 'secret 32-byte key of the train/validation split (created, mode 0600, if absent; default <institution>.split-key beside the identity key)' },
    { name: 'backend', type: 'string', default: 'auto', choices: BACKEND_NAMES, help: 'TensorFlow.js backend: auto picks tensorflow-gpu > tensorflow > wasm > cpu' },
    { name: 'key-dir', type: 'string', help: 'directory of key files, apart from the ledger (default $DPFED_KEY_DIR or ~/.config/dpfed/keys; created 0700)' },
    { name: 'identity', type: 'string', help: 'Ed25519 identity key file (created 0600 if absent; default <key-dir>/<institution>.identity); refused when group/other may read it' },
    { name: 'ledger', type: 'string', help: "this institution's own epsilon ledger, SQLite (default ./<institution>.ledger.sqlite)" },
    {
      name: 'budget-epsilon',
      type: 'number',
      default: 10,
      help: "this institution's privacy budget epsilon; it refuses to train past it",
      check: (v) => (Number(v) > 0 ? undefined : 'must be positive'),
    },
    {
      name: 'declare-examples',
      type: 'int',
      default: 0,
      help: "a public example count to declare (your FedAvg weight, capped by the run's --weight-cap); 0 = declare none (equal weights). Your true row count is never sent",
      check: (v) => (Number(v) >= 0 ? undefined : 'must be >= 0'),
    },
    { name: 'budget-delta', type: 'number', default: 1e-5, help: "this institution's privacy budget delta", check: (v) => (Number(v) > 0 && Number(v) < 1 ? undefined : 'must be in (0, 1)') },
    {
      name: 'connect-timeout',
      type: 'number',
      default: 600,
      help: 'seconds to keep retrying (with jittered backoff) while the coordinator is unreachable: at start, and when it restarts mid-run',
      check: (v) => (Number(v) > 0 ? undefined : 'must be positive'),
    },
    ...tlsFlags('client'),
    ...observabilityFlags('client'),
    {
      name: 'no-local-metrics',
      type: 'boolean',
      help: "do not compute this institution's own metrics of each global model on its validation rows (by default they are logged and, with --json, listed as localMetrics; they never leave this process)",
    },
    {
      name: 'json',
      type: 'boolean',
      help: "print a JSON summary at the end (with localMetrics: [{round, modelId, auc, prAuc, logLoss, accuracy, precision, recall, n}], this institution's own figures)",
    },
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
    const context = clientContext();
    const logger = loggerFromFlags(f, { base: { institution: id }, context: context.context });
    const log = lineLogger(logger, `[${id}] `);
    const transport = transportFromFlags(f, 'client', { institutionId: id, command: 'client' });
    const identityPath = f.identity ? String(f.identity) : institutionKeyPath(f.keyDir ? String(f.keyDir) : defaultKeyDir(), id);
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
      schema = schemaFromFlag(f.schema)!;
      const label = labelColumn(schema).name;
      if (f.labelColumn !== undefined && String(f.labelColumn) !== label)
        throw new UsageError(`--label-column: ${quoted(String(f.labelColumn), 60)} differs from the schema's label column ${quoted(label, 60)}`);
    }
    let splitKey: Uint8Array;
    const splitKeyPath = f.splitKey ? String(f.splitKey) : join(dirname(identityPath), `${id}.split-key`);
    try {
      splitKey = loadOrCreateSplitKey(splitKeyPath);
    } catch (error) {
      throw new UsageError(`--split-key: ${(error as Error).message}`);
    }
    let data: Awaited<ReturnType<typeof loadInstitutionCsv>>;
    try {
      data = await loadInstitutionCsv(String(f.data), { schema, splitter: new RowSplitter(splitKey, Number(f.validationFraction)) });
    } catch (error) {
      throw new UsageError(`--data: ${(error as Error).message}`);
    }
    const { train, validation } = data;
    // the DP-SGD noise worker boots while the institution loads its data and connects, not in round 1
    // (an unused worker is idle and does not keep the process alive)
    prewarmNoiseWorkers(1);
    const backend = await selectBackend(f.backend as BackendName);
    // the row counts stay here: an institution's size is not for the logs
    logger.info(
      { phase: 'load', features: train.dim, schema: schemaInferred ? 'inferred from the data (privacy off only)' : String(f.schema), schemaHash: data.schemaHash.slice(0, 16), backend: backend.name },
      'data loaded',
    );
    const learner = new TfjsLearner(backend.tf, train, validation, { schema, schemaInferred });
    let identity: ReturnType<typeof loadOrCreateIdentity>;
    try {
      identity = loadOrCreateIdentity(identityPath);
    } catch (error) {
      throw new UsageError(`${f.identity ? '--identity' : '--key-dir'}: ${(error as Error).message}`);
    }
    const budget = { epsilon: Number(f.budgetEpsilon), delta: Number(f.budgetDelta) };
    const ledgerPath = f.ledger ? String(f.ledger) : `${id}.ledger.sqlite`;
    const privacy = new InstitutionPrivacy({ institutionId: id, identity, budget, ledgerPath });
    // "This run" = the runs this process released events for (with every earlier event of those runs,
    // e.g. from before a restart), read from a second, read-only connection to the institution's ledger.
    const readLedger = <T>(read: (ledger: PrivacyLedger) => T): T => {
      const db = new Database(ledgerPath, { readonly: true, fileMustExist: true });
      try {
        return read(new PrivacyLedger(db));
      } finally {
        db.close();
      }
    };
    const headBefore = readLedger((l) => l.head().seq);
    const metrics = new ClientMetrics();
    const metricsServer = await metricsServerFromFlags(f, metrics.registry, () => metrics.notReady());
    if (metricsServer) logger.info({ metrics: `http://${metricsServer.address}/metrics` }, 'metrics server listening (also /healthz, /readyz)');
    const client = new FederationClient({
      coordinator: String(f.coordinator),
      institutionId: id,
      identity,
      learner,
      privacy,
      budget,
      log,
      ...transport,
      declaredExamples: Number(f.declareExamples) > 0 ? Number(f.declareExamples) : undefined,
      wireBytes: metrics.wireBytes,
      reconnectForMs: Number(f.connectTimeout) * 1000,
      localMetrics: !f.noLocalMetrics,
    });
    context.observe(client);
    logClientEvents(client, logger);
    metrics.observe(client, (opts) => privacy.spent(opts));
    const stop = () => {
      client.stop();
      setTimeout(() => process.exit(130), 2000).unref();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      let result: Awaited<ReturnType<typeof client.run>>;
      try {
        result = await client.run();
      } catch (error) {
        if (error instanceof SchemaRequiredError) throw new UsageError(`--schema: ${error.message}`);
        // the run's schema (sent at registration) differs from this institution's: refused before registering
        if (error instanceof SchemaMismatchError) throw new UsageError(`--schema: ${error.message}`);
        throw error;
      }
      const spent = privacy.spent();
      const thisRun = readLedger((l) => {
        const mine = l.events({ institutionId: id });
        const runs = new Set(mine.filter((r) => r.seq > headBefore).map((r) => r.event.runId));
        const events = mine.filter((r) => runs.has(r.event.runId)).map((r) => r.event);
        return { runs: [...runs], epsilon: events.length ? composedEpsilon(events, budget.delta, makeAccountant('rdp')).epsilon : 0 };
      });
      if (f.json) {
        process.stdout.write(
          JSON.stringify({
            institution: id,
            backend: backend.name,
            ...result,
            epsilon: spent.epsilon,
            delta: spent.delta,
            budget: budget.epsilon,
            epsilonThisRun: thisRun.epsilon,
            epsilonAllRuns: spent.epsilon,
            runs: thisRun.runs,
          }) + '\n',
        );
      } else {
        logger.info(
          { phase: 'done', roundsTrained: result.roundsTrained, epsilonThisRun: thisRun.epsilon, epsilon: spent.epsilon, budgetEpsilon: budget.epsilon, delta: spent.delta },
          `finished: ${result.roundsTrained} rounds trained; this run: epsilon ${thisRun.epsilon.toFixed(3)}; all runs on this ledger: epsilon ${spent.epsilon.toFixed(3)} of budget ${budget.epsilon} at delta ${spent.delta}`,
        );
      }
    } finally {
      metrics.close();
      client.close();
      privacy.close();
      await metricsServer?.close();
    }
    return 0;
  });
}
