// The coordinator's process SIGKILLed at each phase of a round (waiting, training, each phase of the
// update's secure sum, evaluating, committing: in round 1 one after another, then committing in round 2)
// and started again on the same --db, key dir and port: it resumes after the last committed round, the
// institutions (real `dpfed client` processes) wait with backoff and carry on, every round is committed once, no ledger event is recorded
// twice on either side, and `dpfed ledger --verify` passes on both sides.
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/federation-fixture.ts';
import { dpfed, ledgerKeys, processFederation, repeated, type ProcessFederation, type ProcessHandle } from './helpers/process-federation.ts';

let federation: ProcessFederation | undefined;
let dir: string | undefined;
afterAll(() => {
  federation?.killAll();
  // DPFED_TEST_KEEP=1 keeps the folder: each process's output is in its own NN-<process>.log there
  if (dir && !process.env.DPFED_TEST_KEEP) rmSync(dir, { recursive: true, force: true });
});

/** Where each coordinator process kills itself, in order (each later process resumes from the database). */
const KILLS = ['waiting@1', 'training@1', 'update/advertise@1', 'update/share-keys@1', 'update/masked-input@1', 'update/unmask@1', 'evaluating@1', 'committing@1', 'committing@2'];
const ROUNDS = 2;

describe('faults: the coordinator killed at each phase', () => {
  it('SIGKILLed while waiting, training, in each secure-aggregation phase, evaluating and committing, restarted on the same db: it resumes, nothing lost or twice', async () => {
    dir = tempDir('dpfed-faults-coordinator-');
    const fed = (federation = await processFederation(dir, 3, [
      '--rounds',
      String(ROUNDS),
      '--min-clients',
      '3',
      '--privacy',
      'record',
      '--epsilon',
      '3',
      '--aggregation',
      'secagg',
      '--local-steps',
      '4',
      '--round-timeout',
      '40',
      '--phase-timeout',
      '15',
      '--evaluate-every',
      '1',
    ]));
    const lives: ProcessHandle[] = [];
    const killed: string[] = [];
    let port = 0;
    let runId = '';
    let banks: Promise<number[]> | null = null;
    const plan = [...KILLS];
    let last: ProcessHandle;
    for (;;) {
      const exitAt = plan.shift();
      const coordinator = fed.startCoordinator({ exitAt, port });
      lives.push(coordinator);
      last = coordinator;
      const listening = await coordinator.waitFor((e) => e.event === 'listening', 30_000, `coordinator ${lives.length} to listen`);
      if (!port) {
        port = Number(listening.port);
        runId = String(listening.runId);
        banks = Promise.all(
          fed.banks.map(async (id) => {
            const bank = fed.startBank(id, port);
            const end = await bank.exited;
            if (end.code !== 0) throw new Error(`${id} exited with ${end.code ?? end.signal}:\n${bank.logs.slice(-20).join('\n')}`);
            expect(bank.events.at(-1)).toMatchObject({ doneMessage: 'run complete' });
            return end.code;
          }),
        );
        banks.catch(() => undefined); // awaited below
      }
      expect(Number(listening.port)).toBe(port);
      expect(listening.runId).toBe(runId);
      const end = await coordinator.exited;
      if (end.signal === 'SIGKILL' && exitAt) {
        killed.push(exitAt);
        continue;
      }
      expect(end.code, coordinator.logs.slice(-20).join('\n')).toBe(0);
      break;
    }
    expect(killed).toEqual(KILLS);
    await banks;
    expect(last.events.find((e) => e.event === 'done')).toMatchObject({ runId, rounds: ROUNDS });
    // each restart resumed after the last committed round: a kill at a point of round r leaves r - 1 committed
    expect(lives.map((c) => c.events.find((e) => e.event === 'listening')!.resumedFromRound ?? 0)).toEqual([0, ...KILLS.map((k) => Number(k.split('@')[1]) - 1)]);
    // a round run again after its evaluation was revealed (killed while committing) is not evaluated
    // twice: the institutions decline, their evaluation already released (the round commits without AUC)
    const declines = lives.flatMap((c) => c.events.filter((e) => e.event === 'declined'));
    for (const d of declines) expect(d, JSON.stringify(d)).toMatchObject({ reason: 'already-released', detail: expect.stringContaining('already evaluated') });
    // every round committed once (by one of the processes), one run
    const committed = lives.flatMap((c) => c.events.filter((e) => e.event === 'round').map((e) => e.round));
    expect(committed).toEqual([1, 2]);
    const db = new Database(fed.db, { readonly: true });
    expect(db.prepare('SELECT round FROM rounds WHERE run_id = ? ORDER BY round').all(runId)).toEqual([{ round: 1 }, { round: 2 }]);
    expect(db.prepare('SELECT id, status FROM runs').all()).toEqual([{ id: runId, status: 'done' }]);
    db.close();

    const coordinatorKeys = ledgerKeys(fed.db);
    expect(repeated(coordinatorKeys)).toEqual([]);
    for (const id of fed.banks) {
      const own = ledgerKeys(fed.ledgerOf(id), id);
      expect(repeated(own), id).toEqual([]);
      // trained and released once per round, and both rounds' updates are in the coordinator's ledger
      for (let round = 1; round <= ROUNDS; round++) {
        expect(own, id).toContain(`${id}/${runId}/${round}/record`);
        expect(coordinatorKeys, id).toContain(`${id}/${runId}/${round}/record`);
      }
      for (const k of coordinatorKeys.filter((k) => k.startsWith(`${id}/`))) expect(own, `${id}: ${k}`).toContain(k);
      const verified = await dpfed(['ledger', '--db', fed.ledgerOf(id), '--verify']);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    }
    const verified = await dpfed(['ledger', '--db', fed.db, '--verify']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  }, 300_000);
});
