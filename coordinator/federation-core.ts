// The federation a coordinator runs, apart from any transport: opens (or resumes) the run in SQLite, the
// enrolment allow-list, the registry of institutions, the strategy, the privacy layer and the round
// machine, and the federation operations every request goes to (federation-operations.ts). The gRPC server
// (coordinator-server.ts) and the in-memory transport (in-memory-coordinator.ts) put their own edge in
// front of the same core.
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { loadCkksPlugin } from '@dpfed/privacy/ckks-plugin';
import { coordinatorKeyPath, defaultKeyDir, loadOrCreateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { featureColumns, schemaHash, type DataSchema } from '@dpfed/proto/data-schema';
import { flattenParameters, initialParameters, parseModelSpec } from '@dpfed/proto/model-spec';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import type { TlsMaterial } from '@dpfed/proto/tls-credentials';
import type { CandidateEvaluator } from './candidate-evaluator.ts';
import type { CoordinatorMetrics } from './coordinator-metrics.ts';
import { CoordinatorStore } from './coordinator-store.ts';
import { Enrolment, type EnrolmentEntry } from './enrolment.ts';
import { InstitutionRegistry } from './institution-registry.ts';
import { CoordinatorReceipts } from './ledger-receipts.ts';
import { RoundMachine } from './round-machine.ts';
import type { RoundPrivacy } from './round-privacy.ts';
import type { RunConfig } from './run-config.ts';
import { describeStorageFault, StorageFaultError } from './storage-fault.ts';
import { createStrategy } from './strategies/index.ts';
import type { Strategy } from './strategy.ts';
import { TaskBoard } from './task-board.ts';

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

/** The transport-independent parts of a running coordinator. */
export interface FederationCore {
  readonly runId: string;
  readonly config: RunConfig;
  readonly store: CoordinatorStore;
  readonly enrolment: Enrolment;
  readonly registry: InstitutionRegistry;
  readonly receipts: CoordinatorReceipts;
  readonly identity: IdentityKey;
  readonly machine: RoundMachine;
  /** The last round committed before this start (0 for a new run). */
  readonly lastRound: number;
}

/** Opens the store and the federation on it; the store is closed again when this fails. */
export async function openFederation(options: CoordinatorOptions): Promise<FederationCore> {
  // CKKS is an optional plugin: a run that needs it refuses to start without it, naming the package.
  if (options.config.task.aggregation === 'ckks') await loadCkksPlugin();
  const store = new CoordinatorStore(options.dbPath);
  try {
    return await openFederationOn(store, options);
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

async function openFederationOn(store: CoordinatorStore, options: CoordinatorOptions): Promise<FederationCore> {
  const enrolment = new Enrolment(store.db);
  for (const entry of options.enrol ?? []) enrolment.add(entry.institutionId, entry.publicKey, { institution: 'enrol.institution', publicKey: 'enrol.publicKey' });
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
      throw new Error(
        `schema: run ${run.id} was created ${stored.schema ? `with another data schema (schema_hash ${schemaHash(stored.schema)})` : 'without a data schema'}; resume it without --schema or start a new run`,
      );
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
  return { runId, config, store, enrolment, registry, receipts, identity, machine, lastRound };
}

/**
 * Re-reads the allow-list every `revocationPollMs` (default 1 s): revocations, also those `dpfed enrol
 * revoke` writes from another process, end live registrations (their next request is refused), and `cut`
 * ends whatever the transport still holds open for them. Stop it with clearInterval.
 */
export function pollRevocations(core: FederationCore, options: Pick<CoordinatorOptions, 'revocationPollMs' | 'log'>, cut?: (revoked: string[]) => void): NodeJS.Timeout {
  const timer = setInterval(() => {
    const revoked = core.registry.dropRevoked();
    if (!revoked.length) return;
    options.log?.(`revoked: ${revoked.join(', ')}`);
    cut?.(revoked);
  }, options.revocationPollMs ?? 1000);
  timer.unref();
  return timer;
}
