// Bounded influence and no clear counts, over real gRPC on 127.0.0.1: one participant with a huge update
// and a huge declared size moves the committed model no more than the update bound and the public weight
// cap allow (plain: a hand-made client that skips the SDK's own clipping; secagg: a hand-made learner
// through the SDK), and no institution's true row count reaches the coordinator's SQLite file.
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import type { EvalOutcome, TaskContext } from '@dpfed/client/learner';
import { TfjsLearner } from '@dpfed/client/tfjs-learner';
import { generateIdentity } from '@dpfed/privacy/identity';
import { modelSpecFromMessage, parameterShapes } from '@dpfed/proto/model-spec';
import { signedRegistration } from '@dpfed/client/registration-request';
import { PROTOCOL_VERSION, type Envelope } from '@dpfed/proto/wire';
import {
  bankSlices,
  cleanUp,
  makeInstitution,
  recordRounds,
  runConfig,
  ShiftLearner,
  startTestCoordinator,
  testCredentials,
  enrol,
  tempDir,
  tfjsInstitution,
  within,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

let dir: string | undefined;
let coordinator: Coordinator | undefined;
let institutions: TestInstitution[] = [];
let rogue: CoordinatorConnection | undefined;

afterEach(async () => {
  rogue?.close();
  rogue = undefined;
  await cleanUp({ institutions, coordinators: [coordinator], dir });
  institutions = [];
  coordinator = undefined;
  dir = undefined;
});

const BOUND = 0.5;
const CAP = 1000;
const HONEST_SHIFT = 0.001;

function distance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

/** The farthest the committed model may be from the global one: 3 honest updates and one clipped to BOUND, each of weight CAP. */
function allowedMove(dimension: number): number {
  const honest = HONEST_SHIFT * Math.sqrt(dimension);
  return (3 * CAP * honest + CAP * BOUND) / (4 * CAP);
}

/** A client without the SDK: registers with a huge declared size and answers its TRAIN task with a 1e30 update claiming 1e12 examples. */
async function rogueClient(coordinator: Coordinator, address: string, stopAt: Promise<void>): Promise<void> {
  rogue = new CoordinatorConnection(address, testCredentials('rogue'));
  const identity = generateIdentity();
  // An enrolled participant gone rogue: admission lets it in, the bounds must hold anyway.
  enrol(coordinator, 'rogue', identity.publicKey);
  const challenge = await rogue.challenge({ institutionId: 'rogue' });
  const { session, runId } = await rogue.register(signedRegistration(challenge, { institutionId: 'rogue', identity, budget: null, declaredExamples: 1e12, clientVersion: 'hand-made' }));
  let stopped = false;
  void stopAt.then(() => (stopped = true));
  while (!stopped) {
    const task = await rogue.pullTask({ runId, round: 0, modelVersion: 0, institutionId: 'rogue', session }, 500);
    if (task.kind === 'DONE') return;
    if (task.kind !== 'TRAIN') continue;
    const envelope: Envelope = { ...task.envelope, institutionId: 'rogue', session };
    const shapes = parameterShapes(modelSpecFromMessage(task.modelSpec));
    const tensors = shapes.map((s) => ({ name: s.name, shape: s.shape, dtype: 'FLOAT32' as const, data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)).fill(1e30) }));
    await rogue.pushResult({ envelope, kind: 'TRAIN_RESULT', numExamples: 1e12, metrics: {}, privacyEvent: undefined, encrypted: false, tensorCount: tensors.length, masked: false }, tensors);
  }
}

describe('bounded influence', () => {
  it('plain: the coordinator clips a 1e30 update to --max-update-norm, caps its 1e12 declared size at --weight-cap, and records the clipping', async () => {
    dir = tempDir('dpfed-bound-plain-');
    const config = runConfig([
      '--rounds',
      '1',
      '--min-clients',
      '4',
      '--aggregation',
      'plain',
      '--max-update-norm',
      String(BOUND),
      '--weight-cap',
      String(CAP),
      '--round-timeout',
      '20',
      '--phase-timeout',
      '2',
    ]);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    institutions = [1, 2, 3].map((k) => makeInstitution({ id: `bank-${k}`, address, learner: new ShiftLearner(HONEST_SHIFT, 5000), pollMs: 2_000 }));
    for (const i of institutions) i.run = i.client.run();
    const attack = rogueClient(coordinator, address, coordinator.finished);
    await within(coordinator.finished, 60_000, 'the run');
    await attack.catch(() => undefined);
    expect(seen.failures).toEqual([]);
    const { store, runId } = coordinator;
    expect(store.participants(runId, 1).find((p) => p.institutionId === 'rogue')).toMatchObject({ status: 'reported', detail: `weight ${CAP}` });
    expect(store.metric(runId, 1, '', 'updates_clipped')).toBe(1);
    const before = store.model(runId, 0)!.parameters;
    const after = store.model(runId, 1)!.parameters;
    const moved = distance(after, before);
    expect(moved).toBeLessThanOrEqual(allowedMove(before.length) * (1 + 1e-4));
    expect(moved).toBeGreaterThan((BOUND / 4) * 0.9); // the attacker did move it, by its capped share of the bound
  }, 90_000);

  it('secagg: a learner returning a 1e30 update and declaring 1e12 examples is clipped by its own SDK and weighs the public cap', async () => {
    dir = tempDir('dpfed-bound-secagg-');
    const config = runConfig([
      '--rounds',
      '1',
      '--min-clients',
      '4',
      '--aggregation',
      'secagg',
      '--max-update-norm',
      String(BOUND),
      '--weight-cap',
      String(CAP),
      '--round-timeout',
      '20',
      '--phase-timeout',
      '10',
    ]);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    institutions = [1, 2, 3].map((k) => makeInstitution({ id: `bank-${k}`, address, learner: new ShiftLearner(HONEST_SHIFT, 5000), pollMs: 2_000 }));
    institutions.push(makeInstitution({ id: 'attacker', address, learner: new ShiftLearner(1e30, 1e12), pollMs: 2_000 }));
    for (const i of institutions) i.run = i.client.run();
    await within(coordinator.finished, 60_000, 'the run');
    expect(seen.failures).toEqual([]);
    const { store, runId } = coordinator;
    const before = store.model(runId, 0)!.parameters;
    const after = store.model(runId, 1)!.parameters;
    const moved = distance(after, before);
    // quantisation adds at most a few 1e-5 per coordinate
    expect(moved).toBeLessThanOrEqual(allowedMove(before.length) + 1e-3);
    expect(moved).toBeGreaterThan((BOUND / 4) * 0.9);
  }, 90_000);
});

describe('evaluations the mechanism cannot produce', () => {
  it('exact evaluation (privacy off): an accuracy above 1 is refused naming header.metrics.accuracy; the round commits with the others', async () => {
    dir = tempDir('dpfed-bound-eval-');
    const config = runConfig(['--rounds', '1', '--min-clients', '3', '--wait-for', '4', '--privacy', 'off', '--aggregation', 'plain', '--round-timeout', '20', '--phase-timeout', '5']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    institutions = [1, 2, 3].map((k) => makeInstitution({ id: `bank-${k}`, address, learner: new ShiftLearner(HONEST_SHIFT, 5000), pollMs: 2_000 }));
    institutions.push(makeInstitution({ id: 'attacker', address, learner: new ImpossibleAccuracy(HONEST_SHIFT, 5000), pollMs: 2_000 }));
    for (const i of institutions) i.run = i.client.run();
    await within(coordinator.finished, 60_000, 'the run');
    expect(seen.failures).toEqual([]);
    expect(institutions[3].logs.join('\n')).toMatch(/refused by the coordinator: header\.metrics\.accuracy: 2 is outside \[0, 1\]/);
    expect(seen.rounds[0].participants).toBe(4); // it trained; only its evaluation was refused
  }, 90_000);
});

/** A learner whose evaluation claims an accuracy no evaluation produces. */
class ImpossibleAccuracy extends ShiftLearner {
  override async evaluate(model: Float32Array, task: TaskContext): Promise<EvalOutcome> {
    return { ...(await super.evaluate(model, task)), accuracy: 2 };
  }
}

describe('no clear counts', () => {
  it("record-level DP with plain aggregation: no institution's training row count is anywhere in the coordinator's SQLite file (Register, events, metrics, participants)", async () => {
    dir = tempDir('dpfed-no-counts-');
    const config = runConfig([
      '--rounds',
      '1',
      '--min-clients',
      '3',
      '--privacy',
      'record',
      '--aggregation',
      'plain',
      '--local-steps',
      '4',
      '--epsilon',
      '5',
      '--round-timeout',
      '60',
      '--phase-timeout',
      '30',
    ]);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 900 + Math.floor(Math.random() * 200) });
    institutions = await Promise.all(
      slices.map((data, k) =>
        tfjsInstitution({
          id: `bank-${k + 1}`,
          address,
          data,
          privacy: { ledgerPath: join(dir!, `bank-${k + 1}.ledger.sqlite`), budget: { epsilon: 10, delta: 1e-5 } },
        }),
      ),
    );
    const counts = institutions.map((i) => (i.learner as TfjsLearner).numTrainExamples);
    for (const i of institutions) i.run = i.client.run();
    await within(coordinator.finished, 120_000, 'the run');
    const dbPath = join(dir, 'c.sqlite');
    await coordinator.close();
    coordinator = undefined;

    const db = new Database(dbPath, { readonly: true });
    try {
      const hits: string[] = [];
      const batch = config.task.batchSize;
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name);
      let values = 0;
      for (const table of tables) {
        for (const row of db.prepare(`SELECT * FROM "${table}"`).all() as Record<string, unknown>[]) {
          for (const [column, value] of Object.entries(row)) {
            values++;
            for (const n of counts) {
              const token = new RegExp(`(^|[^0-9a-zA-Z.])${n}([^0-9a-zA-Z]|$)`); // a whole number, not part of a hex string or a decimal
              if (typeof value === 'number' && (value === n || Math.abs(value - batch / n) < 1e-12)) hits.push(`${table}.${column} = ${value} (n = ${n})`);
              if (typeof value === 'string' && token.test(value)) hits.push(`${table}.${column} contains ${n}`);
            }
          }
        }
      }
      expect(values).toBeGreaterThan(100); // the scan did read the run
      expect(hits).toEqual([]);
      expect(db.prepare('SELECT num_train_examples FROM institutions').all()).toEqual(counts.map(() => ({ num_train_examples: null })));
      // the training events carry the plan's public q; the private evaluations are the Gaussian mechanism at rate 1 (no count either)
      const rates = db.prepare('SELECT mode, sample_rate FROM ledger_events GROUP BY mode, sample_rate ORDER BY mode').all();
      expect(rates).toEqual([
        { mode: 'evaluation', sample_rate: 1 },
        { mode: 'record', sample_rate: config.task.privacy.record!.sampleRate },
      ]);
    } finally {
      db.close();
    }
  }, 150_000);
});
