// Starts a coordinator: opens (or resumes) the run in SQLite, binds the gRPC server (TLS, by default
// mutual TLS; plaintext only when asked for), admits only enrolled institutions, runs the rounds.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { coordinatorKeyPath, defaultKeyDir, loadOrCreateIdentity, type IdentityKey } from '../privacy/identity.ts';
import { featureColumns, schemaHash, type DataSchema } from '../proto/data-schema.ts';
import { flattenParameters, initialParameters, parseModelSpec } from '../proto/model-spec.ts';
import { SeededRandom } from '../proto/seeded-random.ts';
import { serverCredentials, type TlsMaterial } from '../proto/tls-credentials.ts';
import { CHANNEL_OPTIONS, federationServerService, serializeTensorChunk, widenServerFlowControl } from '../proto/wire.ts';
import { EncodedModelCache } from './encoded-model-cache.ts';
import { CoordinatorStore } from './coordinator-store.ts';
import { Enrolment, type EnrolmentEntry } from './enrolment.ts';
import { federationHandlers } from './federation-service.ts';
import { InstitutionRegistry } from './institution-registry.ts';
import { CoordinatorReceipts } from './ledger-receipts.ts';
import type { CandidateEvaluator } from './candidate-evaluator.ts';
import { admitPeers } from './peer-admission.ts';
import { RoundMachine } from './round-machine.ts';
import type { RoundPrivacy } from './round-privacy.ts';
import type { RunConfig } from './run-config.ts';
import type { CoordinatorMetrics } from './coordinator-metrics.ts';
import { countingService } from '../proto/wire-byte-counter.ts';
import { createStrategy } from './strategies/index.ts';
import type { Strategy } from './strategy.ts';
import { TaskBoard } from './task-board.ts';
import { describeStorageFault, StorageFaultError } from './storage-fault.ts';
import { ZeroCopyFraming } from '../proto/zero-copy-framing.ts';

export interface CoordinatorOptions {
  dbPath: string;
  host?: string;
  port?: number;
  /** Resume this run, or create it with this id; default: resume the latest unfinished run, else a new one. */
  runId?: string;
  config: RunConfig;
  /** Ed25519 identity of the coordinator (countersigns ledger rows); default: coordinatorKeyPath(keyDir, dbPath). */
  identityPath?: string;
  /** Directory of key files, apart from the database (default: $DPFED_KEY_DIR or ~/.config/dpfed/keys). */
  keyDir?: string;
  privacy?: (ctx: { runId: string; config: RunConfig; store: CoordinatorStore; registry: InstitutionRegistry; identity: IdentityKey }) => RoundPrivacy | undefined;
  log?: (line: string) => void;
  livenessMs?: number;
  /**
   * A strategy of the operator's own (the hooks of coordinator/strategy.ts) instead of the built-in one
   * `config.strategy` names. Its saved state is restored on resume, so a resumed run needs the same one.
   */
  strategy?: Strategy;
  /** --evaluation-data: scores candidates on the coordinator's own rows (required by a run configured so). */
  evaluator?: CandidateEvaluator;
  /**
   * TLS: the coordinator's certificate and key and the federation CA. Mutual TLS unless
   * `requireClientCertificate` is false: an institution must present a certificate of that CA bound to
   * its id. One of `tls` and `insecure` is required.
   */
  tls?: TlsMaterial & { requireClientCertificate?: boolean };
  /** Plaintext gRPC (no TLS): only when asked for explicitly. */
  insecure?: boolean;
  /** Institutions added to the enrolment allow-list (in the database) as the coordinator starts. */
  enrol?: EnrolmentEntry[];
  /** How often the allow-list is re-read for revocations made by another process (default 1000 ms). */
  revocationPollMs?: number;
  /**
   * The run's public data schema (also accepted as `config.schema`): stored with a new run, sent in every
   * ChallengeResponse, and a Register whose signed schema_hash differs is refused. The model's inputDim
   * must equal its feature column count. A resumed run keeps the schema it was created with.
   */
  schema?: DataSchema;
  /** Prometheus series (coordinator/coordinator-metrics.ts): fed by the round machine, the gRPC bytes and refusals. */
  metrics?: CoordinatorMetrics;
  /** Zero-copy framing of the Session frames that carry tensors (proto/zero-copy-framing.ts); default: DPFED_ZERO_COPY, else on. */
  zeroCopy?: boolean;
}

export interface Coordinator {
  readonly port: number;
  readonly runId: string;
  readonly machine: RoundMachine;
  readonly store: CoordinatorStore;
  /** The allow-list; add() and revoke() take effect at once (a revoked institution's session is cut). */
  readonly enrolment: Enrolment;
  readonly resumedFromRound: number;
  /** Resolves when the run has completed (or was stopped). */
  readonly finished: Promise<void>;
  close(): Promise<void>;
}

export async function startCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  if (Boolean(options.tls) === Boolean(options.insecure)) throw new Error('startCoordinator: give either tls { cert, key, ca } or insecure: true');
  const store = new CoordinatorStore(options.dbPath);
  try {
    return await startOnStore(store, options);
  } catch (error) {
    store.close();
    const fault = describeStorageFault(options.dbPath, error);
    throw fault ? new StorageFaultError(`cannot start on the coordinator database ${fault}`, error) : error;
  }
}

/** Where the coordinator's key lives. A key beside the database (the former default) is refused with the move to make. */
export function coordinatorIdentityPath(options: { dbPath: string; identityPath?: string; keyDir?: string }): string {
  if (options.identityPath) return options.identityPath;
  const path = coordinatorKeyPath(options.keyDir ?? defaultKeyDir(), options.dbPath);
  const beside = `${options.dbPath}.coordinator-key`;
  if (!existsSync(path) && existsSync(beside)) {
    throw new Error(`the coordinator key ${beside} lies beside its database; keys live in a key directory apart from the ledger: move it to ${path} (mode 0600), or pass its path as the identity`);
  }
  return path;
}

async function startOnStore(store: CoordinatorStore, options: CoordinatorOptions): Promise<Coordinator> {
  const enrolment = new Enrolment(store.db);
  for (const entry of options.enrol ?? []) enrolment.add(entry.institutionId, entry.publicKey, { institution: 'enrol.institution', publicKey: 'enrol.publicKey' });
  const credentials = options.tls ? serverCredentials(options.tls, options.tls.requireClientCertificate ?? true) : grpc.ServerCredentials.createInsecure();
  const mutualTls = Boolean(options.tls) && (options.tls?.requireClientCertificate ?? true);
  const identity = loadOrCreateIdentity(coordinatorIdentityPath(options));
  let runId = options.runId;
  let run = runId ? store.getRun(runId) : store.latestUnfinishedRun();
  let config = options.schema ? { ...options.config, schema: options.schema } : options.config;
  if (config.schema) {
    const features = featureColumns(config.schema).length;
    if (config.modelSpec.inputDim !== features) throw new Error(`schema: it has ${features} feature columns, the model takes ${config.modelSpec.inputDim} inputs (features)`);
  }
  if (run) {
    runId = run.id;
    const stored = JSON.parse(run.configJson) as RunConfig;
    // The stored definition wins (same model, privacy and aggregation); the operator may extend the rounds.
    config = { ...stored, rounds: Math.max(stored.rounds, options.config.rounds) };
    const asked = options.schema ?? options.config.schema;
    if (asked && (!stored.schema || schemaHash(asked) !== schemaHash(stored.schema))) {
      throw new Error(`schema: run ${run.id} was created ${stored.schema ? `with another data schema (schema_hash ${schemaHash(stored.schema)})` : 'without a data schema'}; resume it without --schema or start a new run`);
    }
    if (config.rounds !== stored.rounds || run.status !== 'running') store.setRunStatus(run.id, 'running', config.rounds);
  } else {
    runId = runId ?? `run-${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(3).toString('hex')}`;
    const spec = parseModelSpec(config.modelSpec);
    store.createRun({ id: runId, createdAt: new Date().toISOString(), configJson: JSON.stringify(config), modelSpecJson: JSON.stringify(spec), status: 'running', roundsPlanned: config.rounds });
    store.saveInitialModel(runId, flattenParameters(spec, initialParameters(spec, new SeededRandom(`${config.seed}:init`))));
  }
  const lastRound = store.lastCommittedRound(runId);
  const saved = store.model(runId, lastRound);
  if (!saved) throw new Error(`run ${runId}: the model of round ${lastRound} is missing from ${options.dbPath}`);
  const strategy = options.strategy ?? createStrategy(config.strategy, config.strategyOptions);
  strategy.loadState(saved.strategyState);
  if (config.task.aggregation !== 'plain' && !strategy.worksOnSums) {
    throw new Error(`--strategy ${options.strategy ? strategy.name : config.strategy} needs individual updates and cannot run with --aggregation ${config.task.aggregation}`);
  }

  const receipts = new CoordinatorReceipts(store, identity);
  const registry = new InstitutionRegistry(store, options.livenessMs ?? 15_000, enrolment, receipts, undefined, config.schema);
  const board = new TaskBoard();
  const privacy = options.privacy?.({ runId, config, store, registry, identity });
  if (config.task.evaluation.coordinatorData && !options.evaluator) throw new Error(`run ${runId} scores candidates on the coordinator's own data: start it with --evaluation-data`);
  const machine = new RoundMachine({ runId, config, store, registry, board, strategy, privacy, initialModel: saved.parameters, startRound: lastRound + 1, evaluator: options.evaluator });

  const server = new grpc.Server(CHANNEL_OPTIONS);
  const metrics = options.metrics;
  const service = metrics ? countingService(federationServerService(), metrics.wireBytes, 'server') : federationServerService();
  const encodedModels = new EncodedModelCache(serializeTensorChunk);
  const openSessions = new Set<{ end(): void }>();
  const refused = metrics && ((code: grpc.status, message: string) => metrics.refusal(code, message));
  const handlers = federationHandlers({ registry, machine: () => machine, coordinatorIdentity: identity, receipts, log: options.log, encodedModels, openSessions }, undefined, refused, new ZeroCopyFraming({ zeroCopy: options.zeroCopy }));
  const admission = admitPeers(handlers, { registry, enrolment, mutualTls, refused });
  server.addService(service, admission.handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${options.host ?? '127.0.0.1'}:${options.port ?? 0}`, credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  widenServerFlowControl(server);
  metrics?.bound();
  // revocations, also those `dpfed enrol revoke` writes from another process, end live registrations
  const revocations = setInterval(() => {
    const revoked = registry.dropRevoked();
    if (!revoked.length) return;
    options.log?.(`revoked: ${revoked.join(', ')}`);
    admission.cut(revoked, (id) => `institution_id: institution "${id}" is revoked`);
  }, options.revocationPollMs ?? 1000);
  revocations.unref();
  metrics?.observe(machine);
  const finished = machine.run();
  let closed = false;
  return {
    port,
    runId,
    machine,
    store,
    enrolment,
    resumedFromRound: lastRound,
    finished,
    async close() {
      if (closed) return;
      closed = true;
      metrics?.bound(false);
      clearInterval(revocations);
      machine.stop();
      for (const session of [...openSessions]) session.end();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await finished.catch(() => undefined);
      store.close();
    },
  };
}
