// A federation on 127.0.0.1 for tests: a real coordinator (gRPC on an ephemeral port, SQLite in a temp
// dir), run configs built through the same flags the CLI parses, institutions on slices of the bundled
// card-fraud data with the default TfjsLearner (wasm), and cleanup of all of it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../../cli/flags.ts';
import { runConfigFromFlags, runFlags } from '../../cli/run-flags.ts';
import type { CandidateEvaluator } from '../../coordinator/candidate-evaluator.ts';
import { startCoordinator, type Coordinator } from '../../coordinator/coordinator-server.ts';
import { coordinatorPrivacy } from '../../coordinator/ledger-privacy.ts';
import type { RoundSummary } from '../../coordinator/round-machine.ts';
import type { RunConfig } from '../../coordinator/run-config.ts';
import type { Strategy } from '../../coordinator/strategy.ts';
import { loadCsv, selectRows, type Dataset } from '../../client-sdk/csv-dataset.ts';
import { splitTrainValidation } from '../../client-sdk/data-split.ts';
import { FederationClient, type ClientRunResult } from '../../client-sdk/federation-client.ts';
import { InstitutionPrivacy } from '../../client-sdk/institution-privacy.ts';
import type { EvalOutcome, Learner, TaskContext, TrainOutcome } from '../../client-sdk/learner.ts';
import { fitStandardiser, standardise } from '../../client-sdk/standardiser.ts';
import { selectBackend } from '../../client-sdk/tf-backend.ts';
import { TfjsLearner } from '../../client-sdk/tfjs-learner.ts';
import { emptyHistogram } from '../../privacy/auc-histogram.ts';
import { generateIdentity, type IdentityKey } from '../../privacy/identity.ts';
import { SeededRandom } from '../../proto/seeded-random.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const FRAUD_CSV = join(ROOT, 'data', 'creditcard_fraud_ulb_sample.csv');
export const DPFED_BIN = join(ROOT, 'bin', 'dpfed.js');

export function tempDir(prefix = 'dpfed-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A RunConfig from `dpfed coordinator`-style flags (defaults: 3 rounds, 3 clients, privacy off, plain). */
export function runConfig(argv: string[] = []): RunConfig {
  const flags = runFlags({ rounds: 3, minClients: 3, privacy: 'off', aggregation: 'plain' });
  return runConfigFromFlags(parseFlags({ name: 'test', summary: 'test run', flags }, argv));
}

export interface TestCoordinatorOptions {
  dbPath: string;
  config: RunConfig;
  port?: number;
  runId?: string;
  livenessMs?: number;
  log?: (line: string) => void;
  strategy?: Strategy;
  evaluator?: CandidateEvaluator;
}

/** A coordinator on 127.0.0.1 with the real privacy hooks (the ε ledger in its own SQLite file). */
export function startTestCoordinator(o: TestCoordinatorOptions): Promise<Coordinator> {
  return startCoordinator({
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
  });
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

export function fraudData(): Dataset {
  fraud ??= loadCsv(FRAUD_CSV, 'label');
  return fraud;
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

/** Writes a dataset as the CSV a bank would hold (features, then the label column). */
export function writeBankCsv(path: string, data: Dataset, labelColumn = 'label'): void {
  const lines = [[...data.featureNames, labelColumn].join(',')];
  for (let r = 0; r < data.n; r++) {
    const row: string[] = [];
    for (let j = 0; j < data.dim; j++) row.push(String(data.x[r * data.dim + j]));
    row.push(String(data.y[r]));
    lines.push(row.join(','));
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

/** What `dpfed client` does with its CSV: stratified split, standardisation fitted on the train split. */
export function prepareBank(data: Dataset, seed = '1'): { train: Dataset; validation: Dataset } {
  const { train, validation } = splitTrainValidation(data, 0.2, seed);
  const standardiser = fitStandardiser(train);
  return { train: standardise(train, standardiser), validation: standardise(validation, standardiser) };
}

export async function wasmTf(): Promise<typeof import('@tensorflow/tfjs')> {
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

  constructor(private readonly inner: Learner, private readonly hold: (call: number) => Promise<void>) {}

  get numTrainExamples(): number {
    return this.inner.numTrainExamples;
  }

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
}

export function makeInstitution(o: InstitutionOptions): TestInstitution {
  const identity = o.identity ?? generateIdentity();
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
    pollMs: o.pollMs ?? 5_000,
    reconnectForMs: o.reconnectForMs ?? 30_000,
    log: (line) => logs.push(line),
  });
  return { id: o.id, identity, client, learner: o.learner, privacy, logs };
}

/** An institution with the default TfjsLearner on its slice of data (split and standardised locally). */
export async function tfjsInstitution(o: Omit<InstitutionOptions, 'learner'> & { data: Dataset; seed?: string }): Promise<TestInstitution> {
  const tf = await wasmTf();
  const { train, validation } = prepareBank(o.data, o.seed);
  const institution = makeInstitution({ ...o, learner: new TfjsLearner(tf, train, validation) });
  institution.validation = validation;
  return institution;
}

export function start(institutions: TestInstitution[]): Promise<ClientRunResult[]> {
  for (const i of institutions) i.run ??= i.client.run();
  return Promise.all(institutions.map((i) => i.run!));
}

/** Stops and closes clients, their ledgers and the coordinator, then removes the temp dir. */
export async function cleanUp(o: { institutions?: TestInstitution[]; coordinators?: (Coordinator | undefined)[]; dir?: string; closePrivacy?: boolean }): Promise<void> {
  for (const i of o.institutions ?? []) i.client.close();
  await Promise.all((o.institutions ?? []).map((i) => (i.run ? within(i.run.catch(() => undefined), 5_000, `${i.id} to stop`).catch(() => undefined) : undefined)));
  for (const c of o.coordinators ?? []) await c?.close();
  if (o.closePrivacy !== false) for (const i of o.institutions ?? []) i.privacy?.close();
  if (o.dir) rmSync(o.dir, { recursive: true, force: true });
}
