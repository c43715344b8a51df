// A federation on 127.0.0.1 for tests: a real coordinator (gRPC on an ephemeral port, SQLite in a temp
// dir), run configs built through the same flags the CLI parses, institutions on slices of the bundled
// card-fraud data with the default TfjsLearner (wasm), and cleanup of all of it. By default a federation
// runs as in production: mutual TLS with certificates of a CA made once per test file, and only enrolled
// institutions (makeInstitution enrols the identity it creates); a test opts out with `insecure: true`
// (plaintext) or `enrol: false` (an institution the operator never admitted).
import type { CoordinatorLink } from '@dpfed/proto/coordinator-link';
import { startInMemoryCoordinator } from '@dpfed/coordinator/in-memory-coordinator';
import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '@dpfed/proto/command-flags';
import { runConfigFromFlags, runFlags } from '@dpfed/coordinator/run-flags';
import type { CoordinatorMetrics } from '@dpfed/coordinator/coordinator-metrics';
import type { CandidateEvaluator } from '@dpfed/coordinator/candidate-evaluator';
import { startCoordinator, type Coordinator } from '@dpfed/coordinator/coordinator-server';
import { coordinatorPrivacy } from '@dpfed/coordinator/ledger-privacy';
import type { RoundSummary } from '@dpfed/coordinator/round-machine';
import type { RunConfig } from '@dpfed/coordinator/run-config';
import type { Strategy } from '@dpfed/coordinator/strategy';
import { parse } from 'csv-parse/sync';
import { afterEach } from 'vitest';
import { loadInstitutionCsv, type Dataset } from '@dpfed/client/csv-dataset';
import { RowSplitter } from '@dpfed/client/data-split';
import { FederationClient, type ClientRunResult, type FederationClientOptions } from '@dpfed/client/federation-client';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import type { EvalOutcome, Learner, TaskContext, TrainOutcome } from '@dpfed/client/learner';
import { selectBackend } from '@dpfed/client/tf-backend';
import { TfjsLearner } from '@dpfed/client/tfjs-learner';
import { emptyHistogram } from '@dpfed/privacy/auc-histogram';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { createCertificateAuthority, issueCertificate } from '@dpfed/proto/certificate-authority';
import { readSchemaFile, type DataSchema } from '@dpfed/proto/data-schema';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { channelCredentials, readTlsMaterial, type TlsMaterial } from '@dpfed/proto/tls-credentials';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FRAUD_CSV = join(ROOT, 'data', 'creditcard_fraud_ulb_sample.csv');
export const FRAUD_SCHEMA = join(ROOT, 'data', 'creditcard_fraud_ulb_sample.schema.json');
export const DPFED_BIN = join(ROOT, 'bin', 'dpfed.js');

export function tempDir(prefix = 'dpfed-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A RunConfig from `dpfed coordinator`-style flags (defaults: 3 rounds, 3 clients, privacy off, plain). */
export function runConfig(argv: string[] = []): RunConfig {
  const flags = runFlags({ rounds: 3, minClients: 3, privacy: 'off', aggregation: 'plain' });
  return runConfigFromFlags(parseFlags({ name: 'test', summary: 'test run', flags }, argv));
}

// ---------------- the test file's federation PKI ----------------

/** Institution ids every test file's CA issues client certificates for up front (more with `issue`). */
const PRE_ISSUED = [...Array.from({ length: 12 }, (_, k) => `bank-${k + 1}`), ...Array.from({ length: 6 }, (_, k) => `good-${k + 1}`), 'observer', 'attacker', 'rogue'];

export interface TestPki {
  dir: string;
  caPath: string;
  /** The coordinator's TLS material (server certificate for 127.0.0.1 and localhost). */
  server: TlsMaterial;
  /** An institution's TLS material (CA, its client certificate and key); issued already, or throws. */
  material(institutionId: string): TlsMaterial;
  /** Issues a client certificate for `institutionId` (no-op when it has one). */
  issue(institutionId: string): Promise<TlsMaterial>;
  /** Only the CA: a client that presents no certificate. */
  caOnly(): TlsMaterial;
  /** `dpfed client` flags for mutual TLS as `institutionId` (its certificate must be issued already). */
  clientFlags(institutionId: string): string[];
}

let pki: Promise<TestPki> | undefined;
let pkiReady: TestPki | undefined;

/** The CA of this test file (vitest loads this module once per file), made on first use. */
export function testPki(): Promise<TestPki> {
  pki ??= (async () => {
    const dir = tempDir('dpfed-test-pki-');
    const ca = await createCertificateAuthority(dir, { name: 'dpfed test CA', days: 2 });
    const names = { ca: 'ca', cert: 'cert', key: 'key' };
    const server = await issueCertificate(dir, { name: 'coordinator', outDir: dir, server: true, hosts: ['127.0.0.1', 'localhost'], days: 2 });
    const issued = new Map<string, TlsMaterial>();
    const issue = async (id: string): Promise<TlsMaterial> => {
      const existing = issued.get(id);
      if (existing) return existing;
      const files = await issueCertificate(dir, { name: id, outDir: dir, days: 2 });
      const material = readTlsMaterial({ ca: ca.certPath, cert: files.certPath, key: files.keyPath }, names);
      issued.set(id, material);
      return material;
    };
    for (const id of PRE_ISSUED) await issue(id);
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    pkiReady = {
      dir,
      caPath: ca.certPath,
      server: readTlsMaterial({ ca: ca.certPath, cert: server.certPath, key: server.keyPath }, names),
      material(id) {
        const material = issued.get(id);
        if (!material) throw new Error(`test PKI: no certificate for "${id}" yet (await (await testPki()).issue("${id}") first)`);
        return material;
      },
      issue,
      caOnly: () => readTlsMaterial({ ca: ca.certPath }, names),
      clientFlags(id) {
        if (!issued.has(id)) throw new Error(`test PKI: no certificate for "${id}" yet`);
        return ['--tls-ca', ca.certPath, '--tls-cert', join(dir, `${id}.crt`), '--tls-key', join(dir, `${id}.key`)];
      },
    };
    return pkiReady;
  })();
  return pki;
}

function readyPki(): TestPki {
  if (!pkiReady) throw new Error('test PKI: not made yet (start a test coordinator, or await testPki(), first)');
  return pkiReady;
}

/** gRPC channel credentials of `institutionId` (mutual TLS with the test CA), for hand-written clients. */
export function testCredentials(institutionId: string): grpc.ChannelCredentials {
  return channelCredentials(readyPki().material(institutionId));
}

// ---------------- coordinators ----------------

export interface TestCoordinatorOptions {
  dbPath: string;
  config: RunConfig;
  port?: number;
  runId?: string;
  livenessMs?: number;
  log?: (line: string) => void;
  strategy?: Strategy;
  evaluator?: CandidateEvaluator;
  /** Plaintext gRPC instead of mutual TLS with the test CA. */
  insecure?: boolean;
  /** TLS without client certificates (for a test whose one hand-written connection speaks for several ids). */
  clientCertificates?: false;
  /** Prometheus series of the coordinator (test/observability.test.ts). */
  metrics?: CoordinatorMetrics;
  /** Zero-copy framing on or off (default: DPFED_ZERO_COPY, else on; test/zero-copy-switch.test.ts). */
  zeroCopy?: boolean;
  /**
   * The in-memory transport instead of gRPC (coordinator/in-memory-coordinator.ts): institutions joining its
   * address (`in-memory:N`, from `addressOf`) get an in-memory link.
   */
  inMemory?: boolean;
}

/** Where institutions join a test coordinator: 127.0.0.1:port, or in-memory:N for an in-memory one. */
export function addressOf(coordinator: Coordinator): string {
  for (const [address, known] of coordinatorsByAddress) if (known.coordinator === coordinator) return address;
  throw new Error('addressOf: not a coordinator started by startTestCoordinator');
}
let inMemoryCoordinators = 0;

/** Coordinators started by this file's tests, by address, so institutions are enrolled with the right one. */
const coordinatorsByAddress = new Map<string, { coordinator: Coordinator; insecure: boolean; link?: () => CoordinatorLink }>();

/** A coordinator on 127.0.0.1 with the real privacy hooks (the ε ledger in its own SQLite file). */
export async function startTestCoordinator(o: TestCoordinatorOptions): Promise<Coordinator> {
  if (o.inMemory) {
    const coordinator = await startInMemoryCoordinator({
      dbPath: o.dbPath,
      runId: o.runId,
      config: o.config,
      privacy: coordinatorPrivacy,
      livenessMs: o.livenessMs,
      log: o.log,
      strategy: o.strategy,
      evaluator: o.evaluator,
      revocationPollMs: 200,
      metrics: o.metrics,
    });
    coordinatorsByAddress.set(`in-memory:${++inMemoryCoordinators}`, { coordinator, insecure: false, link: () => coordinator.link() });
    return coordinator;
  }
  const { server } = await testPki();
  const coordinator = await startCoordinator({
    dbPath: o.dbPath,
    host: '127.0.0.1',
    port: o.port ?? 0,
    runId: o.runId,
    config: o.config,
    privacy: coordinatorPrivacy,
    livenessMs: o.livenessMs,
    log: o.log,
    strategy: o.strategy,
    evaluator: o.evaluator,
    ...(o.insecure ? { insecure: true } : { tls: { ...server, requireClientCertificate: o.clientCertificates ?? true } }),
    revocationPollMs: 200,
    metrics: o.metrics,
    zeroCopy: o.zeroCopy,
  });
  coordinatorsByAddress.set(`127.0.0.1:${coordinator.port}`, { coordinator, insecure: Boolean(o.insecure) });
  return coordinator;
}

/**
 * Enrols `institutionId` with `publicKey` at the coordinator, as the operator's `dpfed enrol add` would.
 * An id already enrolled with another key is left as it is (the registration will then be refused).
 */
export function enrol(coordinator: Coordinator, institutionId: string, publicKey: Uint8Array): void {
  const existing = coordinator.enrolment.get(institutionId);
  if (existing?.status === 'active' && !Buffer.from(existing.publicKey).equals(Buffer.from(publicKey))) return;
  coordinator.enrolment.add(institutionId, publicKey);
}

/**
 * What an institution built by hand (a FederationClient of its own) needs to join the test federation at
 * `address`: its identity enrolled at the coordinator there (when this file started it), and the options
 * of the transport that coordinator speaks (mutual TLS as `id` with the test CA, or plaintext).
 */
export function joinTestFederation(address: string, id: string, publicKey: Uint8Array, o: { enrol?: boolean } = {}): TestTransport {
  const known = coordinatorsByAddress.get(address);
  if (known && o.enrol !== false) enrol(known.coordinator, id, publicKey);
  if (known?.link) return { link: known.link() };
  return known?.insecure ? { insecure: true } : { tls: readyPki().material(id) };
}

/** Collects the machine's round summaries and failures as they happen. */
export function recordRounds(coordinator: Coordinator): { rounds: RoundSummary[]; failures: { round: number; reason: string }[] } {
  const out = { rounds: [] as RoundSummary[], failures: [] as { round: number; reason: string }[] };
  coordinator.machine.on('round', (s: RoundSummary) => out.rounds.push(s));
  coordinator.machine.on('round-failed', (f: { round: number; reason: string }) => out.failures.push(f));
  return out;
}

/** Resolves with the summary of `round` once it is committed. */
export function roundCommitted(coordinator: Coordinator, round: number): Promise<RoundSummary> {
  return new Promise((resolve) => {
    const listener = (s: RoundSummary) => {
      if (s.round !== round) return;
      coordinator.machine.off('round', listener);
      resolve(s);
    };
    coordinator.machine.on('round', listener);
  });
}

/** Rejects after `ms` with `what` in the message; resolves with `promise` otherwise. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------- data ----------------

let fraud: Dataset | undefined;

/**
 * The bundled card-fraud rows as raw values (not preprocessed), for tests to deal out to banks; the banks
 * then load their CSV as `dpfed client` does (prepareBank).
 */
export function fraudData(): Dataset {
  if (fraud) return fraud;
  const [header, ...rows] = parse(readFileSync(FRAUD_CSV, 'utf8'), { skip_empty_lines: true }) as string[][];
  const labelIndex = header.indexOf('label');
  const featureNames = header.filter((_, i) => i !== labelIndex);
  const dim = featureNames.length;
  const x = new Float32Array(rows.length * dim);
  const y = new Float32Array(rows.length);
  rows.forEach((row, r) => {
    let j = 0;
    row.forEach((cell, i) => {
      if (i === labelIndex) y[r] = Number(cell);
      else x[r * dim + j++] = Number(cell);
    });
  });
  fraud = { featureNames, x, y, n: rows.length, dim };
  return fraud;
}

let fraudSchema: DataSchema | undefined;

/** The bundled card-fraud data's public schema (data/creditcard_fraud_ulb_sample.schema.json). */
export function fraudSchemaOf(): DataSchema {
  fraudSchema ??= readSchemaFile(FRAUD_SCHEMA);
  return fraudSchema;
}

/** The rows at `indices`, as a new dataset. */
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

/**
 * `count` disjoint slices of the card-fraud data, `rowsPerBank` rows each (all rows when omitted), drawn
 * at random (reproducibly from the seed), so each slice keeps roughly the data's 4 % fraud rate.
 */
export function bankSlices(count: number, o: { rowsPerBank?: number; seed?: string } = {}): Dataset[] {
  const data = fraudData();
  const order = Array.from({ length: data.n }, (_, i) => i);
  new SeededRandom(`${o.seed ?? 'fixture'}:bank-slices`).shuffle(order);
  const perBank = Math.min(o.rowsPerBank ?? Math.floor(data.n / count), Math.floor(data.n / count));
  return Array.from({ length: count }, (_, k) => selectRows(data, order.slice(k * perBank, (k + 1) * perBank)));
}

/** The CSV text a bank would hold for a dataset of raw values (features, then the label column). */
export function bankCsvText(data: Dataset, labelColumn = 'label'): string {
  const lines = [[...data.featureNames, labelColumn].join(',')];
  for (let r = 0; r < data.n; r++) {
    const row: string[] = [];
    for (let j = 0; j < data.dim; j++) row.push(String(data.x[r * data.dim + j]));
    row.push(String(data.y[r]));
    lines.push(row.join(','));
  }
  return lines.join('\n') + '\n';
}

/** Writes a dataset as the CSV a bank would hold (features, then the label column). */
export function writeBankCsv(path: string, data: Dataset, labelColumn = 'label'): void {
  writeFileSync(path, bankCsvText(data, labelColumn));
}

/** A split key for tests, derived from a seed (a real institution's key is random, data-split.ts). */
export function testSplitKey(seed: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`dpfed-test-split-key:${seed}`).digest());
}

/**
 * What `dpfed client` does with its CSV: the streaming loader, the card-fraud schema's fixed scaling and
 * the per-row keyed split (validation fraction 0.2; the key derived from `seed`).
 */
export async function prepareBank(data: Dataset, seed = '1'): Promise<{ train: Dataset; validation: Dataset; schema: DataSchema }> {
  const schema = fraudSchemaOf();
  const loaded = await loadInstitutionCsv({ text: bankCsvText(data), name: 'bank.csv' }, { schema, splitter: new RowSplitter(testSplitKey(seed), 0.2) });
  return { train: loaded.train, validation: loaded.validation, schema };
}

export async function wasmTf(): Promise<typeof import('@dpfed/client/tfjs')> {
  return (await selectBackend('wasm')).tf;
}

// ---------------- learners an SDK user might write ----------------

/**
 * A learner with known outputs: train returns global + `shift` at once (no training) and reports
 * `numExamples`; evaluate returns a fixed histogram (`positives` scored high, `negatives` low: AUC 1).
 */
export class ShiftLearner implements Learner {
  trained = 0;

  constructor(
    readonly shift: number,
    readonly numTrainExamples: number,
    private readonly o: { positives?: number; negatives?: number; beforeTrain?: () => Promise<void> } = {},
  ) {}

  async train(global: Float32Array, _task: TaskContext, _noiseMultiplier: number | null): Promise<TrainOutcome> {
    await this.o.beforeTrain?.();
    const params = new Float32Array(global.length);
    for (let i = 0; i < global.length; i++) params[i] = global[i] + this.shift;
    this.trained++;
    return { params, numExamples: this.numTrainExamples, metrics: { loss: 0.5 } };
  }

  async evaluate(_model: Float32Array, task: TaskContext): Promise<EvalOutcome> {
    const { bins, logitRange } = task.config.evaluation;
    const histogram = emptyHistogram(bins, logitRange);
    const positives = this.o.positives ?? 5;
    const negatives = this.o.negatives ?? 20;
    histogram.positive[Math.floor(bins * 0.75)] = positives;
    histogram.negative[Math.floor(bins * 0.25)] = negatives;
    return { histogram, numExamples: positives + negatives, loss: 0.25, accuracy: 1 };
  }
}

/** Wraps a learner so a test can hold each training call until it releases it (`hold` gets the call number). */
export class HoldingLearner implements Learner {
  calls = 0;

  constructor(
    private readonly inner: Learner,
    private readonly hold: (call: number) => Promise<void>,
  ) {}

  async train(global: Float32Array, task: TaskContext, noiseMultiplier: number | null): Promise<TrainOutcome> {
    await this.hold(++this.calls);
    return this.inner.train(global, task, noiseMultiplier);
  }

  evaluate(model: Float32Array, task: TaskContext): Promise<EvalOutcome> {
    return this.inner.evaluate(model, task);
  }

  plannedMechanism(task: TaskContext): { sampleRate: number; steps: number } | null {
    return this.inner.plannedMechanism?.(task) ?? null;
  }
}

/** The largest |a[i] − b[i]|. */
export function maxAbsDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDifference: lengths ${a.length} and ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/**
 * FedAvg of shift learners, computed from the definition: global + Σ w_k·Δ_k / Σ w_k with each client's
 * Δ_k = float32(float32(global + shift_k) − global) as the SDK computes it, the sum in float64, rounded
 * to float32 at the end.
 */
export function expectedFedAvg(global: Float32Array, clients: { shift: number; weight: number }[]): Float32Array {
  const total = clients.reduce((a, c) => a + c.weight, 0);
  const out = new Float32Array(global.length);
  for (let i = 0; i < global.length; i++) {
    let sum = 0;
    for (const c of clients) sum += c.weight * Math.fround(Math.fround(global[i] + c.shift) - global[i]);
    out[i] = global[i] + sum / total;
  }
  return out;
}

// ---------------- institutions in this process ----------------

/** How a test institution reaches its coordinator: mutual TLS as its id, plaintext, or an in-memory link. */
export type TestTransport = { tls: TlsMaterial } | { insecure: true } | { link: CoordinatorLink };

export interface TestInstitution {
  id: string;
  identity: IdentityKey;
  client: FederationClient;
  learner: Learner;
  privacy?: InstitutionPrivacy;
  /** Standardised validation split (TfjsLearner institutions only). */
  validation?: Dataset;
  /** The client's run loop, started by `start()`. */
  run?: Promise<ClientRunResult>;
  logs: string[];
}

export interface InstitutionOptions {
  id: string;
  address: string;
  learner: Learner;
  identity?: IdentityKey;
  /** Record-level DP: the institution's own ledger file and budget. */
  privacy?: { ledgerPath: string; budget?: { epsilon: number; delta: number } } | InstitutionPrivacy;
  reconnectForMs?: number;
  pollMs?: number;
  /** The public example count the institution declares (its capped FedAvg weight); a ShiftLearner declares its own count. */
  declaredExamples?: number;
  /** Enrol the identity at the coordinator of `address` (default true); false: one the operator never admitted. */
  enrol?: boolean;
  /** Transport instead of the one the coordinator at `address` was started with (default: mutual TLS as this id). */
  transport?: TestTransport;
  /** Options of the FederationClient's own (e.g. wireBytes, a log callback instead of collecting `logs`). */
  clientOptions?: Partial<FederationClientOptions>;
}

export function makeInstitution(o: InstitutionOptions): TestInstitution {
  const identity = o.identity ?? generateIdentity();
  const transport = joinTestFederation(o.address, o.id, identity.publicKey, { enrol: o.enrol });
  const logs: string[] = [];
  let privacy: InstitutionPrivacy | undefined;
  let budget: { epsilon: number; delta: number } | undefined;
  if (o.privacy instanceof InstitutionPrivacy) privacy = o.privacy;
  else if (o.privacy) {
    budget = o.privacy.budget ?? { epsilon: 10, delta: 1e-5 };
    privacy = new InstitutionPrivacy({ institutionId: o.id, identity, budget, ledgerPath: o.privacy.ledgerPath });
  }
  const client = new FederationClient({
    coordinator: o.address,
    institutionId: o.id,
    identity,
    learner: o.learner,
    privacy,
    budget,
    declaredExamples: o.declaredExamples ?? (o.learner instanceof ShiftLearner ? o.learner.numTrainExamples : undefined),
    pollMs: o.pollMs ?? 5_000,
    reconnectForMs: o.reconnectForMs ?? 30_000,
    log: (line) => logs.push(line),
    ...(o.transport ?? transport),
    ...o.clientOptions,
  });
  return { id: o.id, identity, client, learner: o.learner, privacy, logs };
}

/** An institution with the default TfjsLearner on its slice of data (loaded as `dpfed client` loads its CSV). */
export async function tfjsInstitution(o: Omit<InstitutionOptions, 'learner'> & { data: Dataset; seed?: string }): Promise<TestInstitution> {
  const tf = await wasmTf();
  const { train, validation, schema } = await prepareBank(o.data, o.seed);
  const institution = makeInstitution({ ...o, learner: new TfjsLearner(tf, train, validation, { schema }) });
  institution.validation = validation;
  return institution;
}

export function start(institutions: TestInstitution[]): Promise<ClientRunResult[]> {
  for (const i of institutions) i.run ??= i.client.run();
  return Promise.all(institutions.map((i) => i.run!));
}

/** A test file's federation: what its test sets up here is cleaned up after each test (cleanUp). */
export interface FederationScope {
  dir?: string;
  coordinator?: Coordinator;
  institutions: TestInstitution[];
}

/** Registers the after-each clean-up of the returned scope (call at the top of a test file). */
export function federationScope(): FederationScope {
  const scope: FederationScope = { institutions: [] };
  afterEach(async () => {
    await cleanUp({ institutions: scope.institutions, coordinators: [scope.coordinator], dir: scope.dir });
    scope.institutions = [];
    scope.coordinator = undefined;
    scope.dir = undefined;
  });
  return scope;
}

/** Stops and closes clients, their ledgers and the coordinator, then removes the temp dir. */
export async function cleanUp(o: { institutions?: TestInstitution[]; coordinators?: (Coordinator | undefined)[]; dir?: string; closePrivacy?: boolean }): Promise<void> {
  for (const i of o.institutions ?? []) i.client.close();
  await Promise.all(
    (o.institutions ?? []).map((i) =>
      i.run
        ? within(
            i.run.catch(() => undefined),
            5_000,
            `${i.id} to stop`,
          ).catch(() => undefined)
        : undefined,
    ),
  );
  for (const c of o.coordinators ?? []) await c?.close();
  if (o.closePrivacy !== false) for (const i of o.institutions ?? []) i.privacy?.close();
  if (o.dir) rmSync(o.dir, { recursive: true, force: true });
}
