// An institution's process SIGKILLed at each phase of a round (training, each secure-aggregation phase of
// the update's secure sum, the private evaluation's secure sum) and started again with the same identity,
// key dir and ledger: the federation goes on, every round commits once, no ledger event is recorded twice
// on either side, and no release is recorded twice (the restarted institution declines a round it already
// released: its ledger holds one event per run, round and kind).
import { rmSync } from 'node:fs';
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

/** Where each bank kills itself, in order: a bank restarted after its first kill carries its second. */
const KILLS: Record<string, string[]> = {
  'bank-1': ['train@1', 'update/unmask@5'],
  'bank-2': ['update/advertise@2', 'evaluation/advertise@6'],
  'bank-3': ['update/share-keys@3'],
  'bank-4': ['update/masked-input@4'],
};
/** Rounds after the last kill (round 6), for the last restarted institution to come back. */
const ROUNDS = 9;

describe('faults: an institution killed at each phase', () => {
  it('SIGKILLed in training, in each secure-aggregation phase and in the evaluation, restarted with the same identity and ledger: nothing lost, nothing twice', async () => {
    dir = tempDir('dpfed-faults-institution-');
    const fed = (federation = await processFederation(dir, 4, [
      '--rounds',
      String(ROUNDS),
      '--min-clients',
      '3',
      '--wait-for',
      '4',
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
      // an institution restarted after the last round still finds the coordinator, which tells it DONE
      '--exit-when-done=false',
    ]));
    const coordinator = fed.startCoordinator();
    const listening = await coordinator.waitFor((e) => e.event === 'listening', 30_000, 'the coordinator to listen');
    const port = Number(listening.port);
    const runId = String(listening.runId);

    // each bank runs, and after a SIGKILL is started again (carrying its next kill point, if any)
    const killedAt: Record<string, string[]> = {};
    const lives: Record<string, ProcessHandle[]> = {};
    const supervise = async (id: string): Promise<void> => {
      const plan = [...KILLS[id]];
      for (;;) {
        const exitAt = plan.shift();
        const bank = fed.startBank(id, port, { exitAt });
        (lives[id] ??= []).push(bank);
        const end = await bank.exited;
        if (end.signal === 'SIGKILL' && exitAt) {
          (killedAt[id] ??= []).push(exitAt);
          continue;
        }
        if (end.code !== 0) throw new Error(`${id} exited with ${end.code ?? end.signal}:\n${bank.logs.slice(-20).join('\n')}`);
        return;
      }
    };
    const banks = Promise.all(fed.banks.map(supervise));
    const done = await coordinator.waitFor((e) => e.event === 'done', 240_000, 'the run to finish');
    await banks;
    coordinator.child.kill('SIGTERM');
    await coordinator.exited;

    // every kill point was reached, in its round
    expect(killedAt).toEqual(KILLS);
    // every round committed once, in order, and the killed institutions came back to later rounds
    const committed = coordinator.events.filter((e) => e.event === 'round').map((e) => e.round);
    expect(committed).toEqual(Array.from({ length: ROUNDS }, (_, i) => i + 1));
    expect(done.rounds).toBe(ROUNDS);
    for (const r of coordinator.events.filter((e) => e.event === 'round')) expect(r.participants).toBeGreaterThanOrEqual(3);

    const coordinatorKeys = ledgerKeys(fed.db);
    expect(repeated(coordinatorKeys)).toEqual([]);
    for (const id of fed.banks) {
      const own = ledgerKeys(fed.ledgerOf(id), id);
      // one release per run, round and kind in the institution's own ledger
      expect(repeated(own), id).toEqual([]);
      // the coordinator recorded only what the institution recorded (and so released) itself
      for (const k of coordinatorKeys.filter((k) => k.startsWith(`${id}/`))) expect(own, `${id}: ${k}`).toContain(k);
      // every restart registered again with the coordinator (and the last one ended on its DONE)
      expect(
        lives[id].slice(1).every((life) => life.logs.some((l) => l.includes('registered with'))),
        id,
      ).toBe(true);
      const verified = await dpfed(['ledger', '--db', fed.ledgerOf(id), '--verify']);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    }
    // a bank killed once, in round 3 or 4, took part in a later round (banks 1 and 2 show it by their second kill)
    for (const [id, round] of [
      ['bank-3', 3],
      ['bank-4', 4],
    ] as const) {
      expect(coordinatorKeys.filter((k) => k.startsWith(`${id}/${runId}/`) && Number(k.split('/')[2]) > round && k.endsWith('/record')).length, id).toBeGreaterThan(0);
    }
    // killed while training (before recording) bank-1 released nothing in round 1; killed after recording
    // but before advertising its keys, bank-2's round-2 update is in its ledger and never entered a sum
    expect(ledgerKeys(fed.ledgerOf('bank-1'), 'bank-1')).not.toContain(`bank-1/${runId}/1/record`);
    expect(ledgerKeys(fed.ledgerOf('bank-2'), 'bank-2')).toContain(`bank-2/${runId}/2/record`);
    expect(coordinatorKeys).not.toContain(`bank-2/${runId}/2/record`);
    const verified = await dpfed(['ledger', '--db', fed.db, '--verify']);
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  }, 300_000);
});
