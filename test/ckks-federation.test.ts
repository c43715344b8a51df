// CKKS aggregation over real gRPC: institutions encrypt under the key holder's public key, the coordinator
// adds ciphertexts it cannot read, the key holder decrypts only the round's sum, and refuses to decrypt a
// "sum" of a single update.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { ckksSumErrorBound } from '@dpfed/ckks/ckks';
import {
  cleanUp,
  expectedFedAvg,
  makeInstitution,
  recordRounds,
  runConfig,
  startTestCoordinator,
  tempDir,
  within,
  ShiftLearner,
  maxAbsDifference,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

let dir: string | undefined;
let coordinator: Coordinator | undefined;
let institutions: TestInstitution[] = [];

afterEach(async () => {
  await cleanUp({ institutions, coordinators: [coordinator], dir });
  institutions = [];
  coordinator = undefined;
  dir = undefined;
});

const SHIFTS = [0.01, -0.02, 0.005];
const WEIGHTS = [300, 500, 1000];

describe('CKKS aggregation over real gRPC', () => {
  it('commits the weighted FedAvg of encrypted updates within the CKKS error bound', async () => {
    dir = tempDir('dpfed-ckks-');
    const config = runConfig(['--rounds', '2', '--min-clients', '3', '--aggregation', 'ckks', '--ckks-key-holder', 'bank-2', '--round-timeout', '30', '--phase-timeout', '20']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    institutions = SHIFTS.map((shift, k) => makeInstitution({ id: `bank-${k + 1}`, address, learner: new ShiftLearner(shift, WEIGHTS[k]), pollMs: 2_000 }));
    for (const i of institutions) i.run = i.client.run();
    await within(coordinator.finished, 90_000, 'the run');
    expect(seen.failures).toEqual([]);
    const { store, runId } = coordinator;
    expect(institutions[1].logs.some((l) => l.includes('CKKS: generated the federation key pair'))).toBe(true);
    expect(institutions[0].logs.some((l) => l.includes('CKKS: generated'))).toBe(false);
    let global = store.model(runId, 0)!.parameters;
    // weight cap 1024 (next power of two above 1000); the error of Σ (w/cap)·x is bounded per coordinate
    const bound = (ckksSumErrorBound(3) * 1024) / WEIGHTS.reduce((a, b) => a + b, 0) + 1e-6;
    for (const round of [1, 2]) {
      const expected = expectedFedAvg(
        global,
        SHIFTS.map((shift, k) => ({ shift, weight: WEIGHTS[k] })),
      );
      const committed = store.model(runId, round)!.parameters;
      const worst = maxAbsDifference(committed, expected);
      expect(worst).toBeLessThan(bound);
      global = committed;
      expect(store.metric(runId, round, '', 'auc')).toBe(1); // histograms went through the secure sum
    }
    expect(store.rounds(runId).map((r) => [r.round, r.participants, r.aggregation])).toEqual([
      [1, 3, 'ckks'],
      [2, 3, 'ckks'],
    ]);
  });

  it('the key holder refuses to decrypt a single update: the round is not committed and the reason is recorded', async () => {
    dir = tempDir('dpfed-ckks-one-');
    const config = runConfig(['--rounds', '1', '--min-clients', '1', '--aggregation', 'ckks', '--round-timeout', '10', '--phase-timeout', '2']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    institutions = [makeInstitution({ id: 'bank-1', address, learner: new ShiftLearner(0.01, 100), pollMs: 2_000 })];
    institutions[0].run = institutions[0].client.run();
    await within(new Promise<void>((resolve) => coordinator!.machine.once('round-failed', () => resolve())), 30_000, 'the round to fail');
    expect(seen.failures[0].reason).toMatch(/did not return the decrypted sum/);
    expect(institutions[0].logs.some((l) => /refused: CKKS decryption of a "sum" of 1 update/.test(l))).toBe(true);
    expect(coordinator.store.rounds(coordinator.runId)).toEqual([]);
    expect(coordinator.store.roundFailures(coordinator.runId)[0].reason).toMatch(/CKKS aggregation failed/);
  });
});
