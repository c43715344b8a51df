// Secure aggregation over real gRPC on 127.0.0.1: the coordinator learns only sums, yet commits the same
// FedAvg model; an institution that dies mid-round is dropped and the sum is still exact; with client-level
// DP the ledger records the noise actually present, not the planned one.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { FEDERATION_ID } from '@dpfed/coordinator/ledger-privacy';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
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
  type TestInstitution,
  maxAbsDifference,
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

const SHIFTS = [0.001, -0.002, 0.003, 0.0005];
const WEIGHTS = [100, 200, 300, 400];

function bank(k: number, address: string): TestInstitution {
  return makeInstitution({ id: `bank-${k + 1}`, address, learner: new ShiftLearner(SHIFTS[k], WEIGHTS[k]), pollMs: 2_000, reconnectForMs: 2_000 });
}

describe('secure aggregation over real gRPC', () => {
  it('commits exactly the weighted FedAvg of the masked updates, and the AUC of the securely summed histograms', async () => {
    dir = tempDir('dpfed-secagg-');
    const config = runConfig(['--rounds', '2', '--min-clients', '4', '--aggregation', 'secagg', '--round-timeout', '20', '--phase-timeout', '10']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    institutions = SHIFTS.map((_, k) => bank(k, address));
    for (const i of institutions) i.run = i.client.run();
    await within(coordinator.finished, 60_000, 'the run');
    expect(seen.failures).toEqual([]);
    const { store, runId } = coordinator;
    let global = store.model(runId, 0)!.parameters;
    for (const round of [1, 2]) {
      const expected = expectedFedAvg(
        global,
        SHIFTS.map((shift, k) => ({ shift, weight: WEIGHTS[k] })),
      );
      const committed = store.model(runId, round)!.parameters;
      const worst = maxAbsDifference(committed, expected);
      expect(worst).toBeLessThan(1e-6); // quantisation error only
      expect(worst).toBeGreaterThanOrEqual(0);
      global = committed;
      expect(store.metric(runId, round, '', 'auc')).toBe(1);
      expect(store.metric(runId, round, '', 'eval_examples')).toBe(4 * 25);
      // the coordinator never saw an institution's own evaluation
      expect(store.metric(runId, round, 'bank-1', 'auc')).toBeNull();
    }
    expect(store.rounds(runId).map((r) => [r.round, r.participants, r.aggregation])).toEqual([
      [1, 4, 'secagg'],
      [2, 4, 'secagg'],
    ]);
  });

  it('an institution killed after advertising its keys is dropped; the round commits the exact sum of the other three', async () => {
    dir = tempDir('dpfed-secagg-drop-');
    const config = runConfig(['--rounds', '1', '--min-clients', '3', '--wait-for', '4', '--aggregation', 'secagg', '--round-timeout', '20', '--phase-timeout', '3']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    institutions = SHIFTS.map((_, k) => bank(k, address));
    const victim = institutions[3];
    victim.client.once('trained', () => victim.client.close()); // dies right after advertising its keys
    for (const i of institutions) i.run = i.client.run().catch(() => ({ roundsTrained: 0, roundsEvaluated: 0, declined: null, doneMessage: 'killed' }));
    await within(coordinator.finished, 60_000, 'the run');
    expect(seen.failures).toEqual([]);
    const { store, runId } = coordinator;
    expect(store.participants(runId, 1).map((p) => [p.institutionId, p.status])).toEqual([
      ['bank-1', 'reported'],
      ['bank-2', 'reported'],
      ['bank-3', 'reported'],
      ['bank-4', 'dropped'],
    ]);
    const global = store.model(runId, 0)!.parameters;
    const expected = expectedFedAvg(
      global,
      SHIFTS.slice(0, 3).map((shift, k) => ({ shift, weight: WEIGHTS[k] })),
    );
    const committed = store.model(runId, 1)!.parameters;
    const worst = maxAbsDifference(committed, expected);
    expect(worst).toBeLessThan(1e-6);
  });

  it('client-level DP: each institution adds its noise share; with a dropout the ledger records the smaller noise actually present', async () => {
    dir = tempDir('dpfed-secagg-dp-');
    const config = runConfig([
      '--rounds',
      '1',
      '--min-clients',
      '3',
      '--wait-for',
      '4',
      '--aggregation',
      'secagg',
      '--privacy',
      'client',
      '--epsilon',
      '2',
      '--update-clip-norm',
      '1',
      '--round-timeout',
      '20',
      '--phase-timeout',
      '3',
    ]);
    const z = config.task.privacy.client!.noiseMultiplier;
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const address = `127.0.0.1:${coordinator.port}`;
    const dirNow = dir;
    institutions = SHIFTS.map((shift, k) =>
      makeInstitution({
        id: `bank-${k + 1}`,
        address,
        learner: new ShiftLearner(shift, WEIGHTS[k]),
        pollMs: 2_000,
        reconnectForMs: 2_000,
        privacy: { ledgerPath: join(dirNow, `bank-${k + 1}.ledger.sqlite`), budget: { epsilon: 10, delta: 1e-5 } },
      }),
    );
    const victim = institutions[3];
    victim.client.once('trained', () => victim.client.close());
    for (const i of institutions) i.run = i.client.run().catch(() => ({ roundsTrained: 0, roundsEvaluated: 0, declined: null, doneMessage: 'killed' }));
    await within(coordinator.finished, 60_000, 'the run');
    const { store, runId } = coordinator;
    const ledger = new PrivacyLedger(store.db);
    const events = ledger.events({ institutionId: FEDERATION_ID, runId });
    expect(events).toHaveLength(1);
    // planned for 4 survivors (z calibrated to ε = 2 over 1 round); 3 survived, so the noise present is √(3/4) of the plan
    expect(events[0].event.noiseMultiplier).toBeGreaterThan(Math.sqrt(3 / 4) * z * 0.98);
    expect(events[0].event.noiseMultiplier).toBeLessThan(Math.sqrt(3 / 4) * z * 1.0001);
    expect(ledger.verify().ok).toBe(true);
    // the noise really is in the model: it moved far more than the clipped shifts could move it
    const before = store.model(runId, 0)!.parameters;
    const after = store.model(runId, 1)!.parameters;
    let moved = 0;
    for (let i = 0; i < before.length; i++) moved = Math.max(moved, Math.abs(after[i] - before[i]));
    expect(moved).toBeGreaterThan(0.05);
  });
});
