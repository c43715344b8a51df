// Restarting the coordinator on the same SQLite file: it resumes after the last committed round, the
// institutions reconnect on their own (they retry UNAVAILABLE and register again), and nothing is counted
// twice: every round once, one ledger event per institution per round.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { coordinatorKeyPath, defaultKeyDir, loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import {
  ShiftLearner,
  bankSlices,
  cleanUp,
  expectedFedAvg,
  makeInstitution,
  recordRounds,
  roundCommitted,
  runConfig,
  start,
  startTestCoordinator,
  tempDir,
  tfjsInstitution,
  within,
  type TestInstitution,
  HoldingLearner,
} from './helpers/federation-fixture.ts';

let dir: string | undefined;
let coordinators: Coordinator[] = [];
let institutions: TestInstitution[] = [];

afterEach(async () => {
  await cleanUp({ institutions, coordinators, dir });
  institutions = [];
  coordinators = [];
  dir = undefined;
});

function roundsOf(db: Database.Database, runId: string): number[] {
  return (db.prepare('SELECT round FROM rounds WHERE run_id = ? ORDER BY round').all(runId) as { round: number }[]).map((r) => r.round);
}

describe('coordinator restart', () => {
  it('record mode: closed after round 1 and restarted on the same db and port, it resumes at round 2 and records nothing twice', async () => {
    dir = tempDir('dpfed-restart-');
    const dbPath = join(dir, 'coordinator.sqlite');
    const config = runConfig(['--rounds', '3', '--min-clients', '3', '--privacy', 'record', '--epsilon', '3', '--round-timeout', '30']);
    const first = await startTestCoordinator({ dbPath, config });
    coordinators.push(first);
    const port = first.port;
    const address = `127.0.0.1:${port}`;
    const slices = bankSlices(3, { rowsPerBank: 1200, seed: 'restart' });
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      institutions.push(await tfjsInstitution({ id, address, data: slices[k], privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`) } }));
    }
    const round1 = roundCommitted(first, 1);
    const runs = start(institutions);
    await within(round1, 60_000, 'round 1');
    await first.close();

    const second = await startTestCoordinator({ dbPath, config, port });
    coordinators.push(second);
    const seen = recordRounds(second);
    expect(second.port).toBe(port);
    expect(second.runId).toBe(first.runId);
    expect(second.resumedFromRound).toBe(1);
    expect(second.machine.status.round).toBe(2);

    const results = await within(runs, 90_000, 'the clients to finish after the restart');
    await second.finished;
    expect(seen.rounds.map((r) => r.round)).toEqual([2, 3]);
    expect(seen.failures).toEqual([]);
    for (const r of results) expect([r.roundsTrained, r.roundsEvaluated, r.doneMessage]).toEqual([3, 3, 'run complete']);
    for (const i of institutions) expect(i.logs.filter((l) => l.includes('registered with')).length).toBeGreaterThanOrEqual(2);

    const { store, runId } = second;
    expect(roundsOf(store.db, runId)).toEqual([1, 2, 3]);
    expect(store.rounds(runId).map((r) => r.participants)).toEqual([3, 3, 3]);
    expect((store.db.prepare('SELECT COUNT(*) AS n FROM runs').get() as { n: number }).n).toBe(1);
    expect(store.getRun(runId)?.status).toBe('done');
    const ledger = new PrivacyLedger(store.db);
    for (const i of institutions) {
      // one training and one private-evaluation release per round, none recorded twice
      expect(ledger.events({ institutionId: i.id }).map((e) => [e.event.runId, e.event.round, e.event.mode])).toEqual(
        [1, 2, 3].flatMap((round) => [
          [runId, round, 'record'],
          [runId, round, 'evaluation'],
        ]),
      );
      // and the institution's own ledger: one release per round, none repeated after the reconnect
      expect(i.privacy!.spent().epsilon).toBeGreaterThan(0);
    }
    expect(ledger.verify({ countersignerPublicKey: loadOrCreateIdentity(coordinatorKeyPath(defaultKeyDir(), dbPath)).publicKey })).toMatchObject({ ok: true });
    for (const i of institutions) {
      const own = new Database(join(dir, `${i.id}.ledger.sqlite`), { readonly: true });
      expect(new PrivacyLedger(own).events({ institutionId: i.id }).map((e) => e.event.round)).toEqual([1, 1, 2, 2, 3, 3]);
      own.close();
    }
  });

  it('restarted while round 2 is training (uploads fail while it is down): the clients resend their round-2 update, spending nothing twice', async () => {
    dir = tempDir('dpfed-restart-mid-');
    const dbPath = join(dir, 'coordinator.sqlite');
    const config = runConfig(['--rounds', '3', '--min-clients', '2', '--privacy', 'record', '--epsilon', '3', '--round-timeout', '30']);
    const first = await startTestCoordinator({ dbPath, config });
    coordinators.push(first);
    const port = first.port;
    // Round 2's training is held until the first coordinator is gone: the upload then finds no server.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding = 0;
    const slices = bankSlices(2, { rowsPerBank: 1000, seed: 'mid-round' });
    const learners: HoldingLearner[] = [];
    for (let k = 0; k < 2; k++) {
      const id = `bank-${k + 1}`;
      const institution = await tfjsInstitution({ id, address: `127.0.0.1:${port}`, data: slices[k], privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`) } });
      institution.client.close(); // only its learner, identity and ledger are used, by the client below
      const learner = new HoldingLearner(institution.learner, async (calls) => {
        if (calls !== 2) return;
        holding++;
        await released;
      });
      learners.push(learner);
      institutions.push(makeInstitution({ id, address: `127.0.0.1:${port}`, learner, identity: institution.identity, privacy: institution.privacy }));
    }
    const runs = start(institutions);
    runs.catch(() => undefined); // awaited below; a failure must not surface as an unhandled rejection first
    await within(
      new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          if (holding === 2) {
            clearInterval(timer);
            resolve();
          }
        }, 5);
      }),
      30_000,
      'both clients to hold round 2',
    );
    await first.close();
    release();
    await new Promise((r) => setTimeout(r, 300));
    const second = await startTestCoordinator({ dbPath, config, port });
    coordinators.push(second);
    expect(second.resumedFromRound).toBe(1);

    const results = await within(runs, 60_000, 'the clients to finish after a mid-round restart');
    await within(second.finished, 30_000, 'the resumed run');
    expect(results.map((r) => r.doneMessage)).toEqual(['run complete', 'run complete']);
    expect(roundsOf(second.store.db, second.runId)).toEqual([1, 2, 3]);
    // trained once per round: round 2's update was resent, not recomputed
    expect(learners.map((l) => l.calls)).toEqual([3, 3]);
    const ledger = new PrivacyLedger(second.store.db);
    for (const i of institutions) {
      expect(ledger.events({ institutionId: i.id }).map((e) => [e.event.round, e.event.mode])).toEqual(
        [1, 2, 3].flatMap((round) => [
          [round, 'record'],
          [round, 'evaluation'],
        ]),
      );
      const own = new Database(join(dir, `${i.id}.ledger.sqlite`), { readonly: true });
      expect(new PrivacyLedger(own).events({ institutionId: i.id }).map((e) => e.event.round)).toEqual([1, 1, 2, 2, 3, 3]);
      own.close();
    }
  });

  it('a finished run restarted with a larger --rounds extends the same run', async () => {
    dir = tempDir('dpfed-extend-');
    const dbPath = join(dir, 'coordinator.sqlite');
    const first = await startTestCoordinator({ dbPath, config: runConfig(['--rounds', '2', '--min-clients', '2', '--privacy', 'off', '--model', 'logistic']) });
    coordinators.push(first);
    const runId = first.runId;
    const shifts = [0.5, -0.25];
    const weights = [64, 192];
    const make = (port: number, identities?: TestInstitution[]) =>
      shifts.map((shift, k) => makeInstitution({ id: `bank-${k + 1}`, address: `127.0.0.1:${port}`, learner: new ShiftLearner(shift, weights[k]), identity: identities?.[k].identity }));
    const phase1 = make(first.port);
    institutions.push(...phase1);
    await within(start(phase1), 30_000, 'the first two rounds');
    await first.finished;
    expect(first.store.getRun(runId)?.status).toBe('done');
    const model2 = first.store.model(runId, 2)!.parameters;
    await first.close();

    const second = await startTestCoordinator({ dbPath, runId, config: runConfig(['--rounds', '3', '--min-clients', '2', '--privacy', 'off', '--model', 'logistic']) });
    coordinators.push(second);
    expect(second.runId).toBe(runId);
    expect(second.resumedFromRound).toBe(2);
    const phase2 = make(second.port, phase1);
    institutions.push(...phase2);
    const results = await within(start(phase2), 30_000, 'the extension round');
    await second.finished;
    expect(results.map((r) => r.roundsTrained)).toEqual([1, 1]);
    const { store } = second;
    expect(roundsOf(store.db, runId)).toEqual([1, 2, 3]);
    expect(store.db.prepare('SELECT id, status, rounds_planned AS planned FROM runs').all()).toEqual([{ id: runId, status: 'done', planned: 3 }]);
    // round 3 continued from round 2's model
    expect(store.model(runId, 3)!.parameters).toEqual(
      expectedFedAvg(
        model2,
        shifts.map((shift, k) => ({ shift, weight: weights[k] })),
      ),
    );
  });
});
