// Secure aggregation changes how updates are summed, not what is learned: the same seed, data and
// institutions (TfjsLearner, privacy off, 3 rounds) with --aggregation plain and with --aggregation secagg
// commit nearly the same models and reach the same global AUC. The only difference is the stochastic
// quantisation of each update (and of the example-count weight) before the masked sum.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import type { Dataset } from '@dpfed/client/csv-dataset';
import { bankSlices, cleanUp, recordRounds, runConfig, start, startTestCoordinator, tempDir, tfjsInstitution, within, type TestInstitution, maxAbsDifference } from './helpers/federation-fixture.ts';

let dir: string | undefined;
let coordinators: Coordinator[] = [];
let institutions: TestInstitution[] = [];

afterEach(async () => {
  await cleanUp({ institutions, coordinators, dir });
  institutions = [];
  coordinators = [];
  dir = undefined;
});

interface RunOutcome {
  aggregation: string;
  aucs: number[];
  models: Float32Array[];
  participants: number[];
  bank1Auc: (number | null)[];
}

async function federate(aggregation: 'plain' | 'secagg', slices: Dataset[]): Promise<RunOutcome> {
  const config = runConfig(['--rounds', '3', '--min-clients', '3', '--privacy', 'off', '--aggregation', aggregation, '--seed', '11', '--round-timeout', '30', '--phase-timeout', '20']);
  const coordinator = await startTestCoordinator({ dbPath: join(dir!, `${aggregation}.sqlite`), config });
  coordinators.push(coordinator);
  const seen = recordRounds(coordinator);
  const address = `127.0.0.1:${coordinator.port}`;
  const banks: TestInstitution[] = [];
  for (let k = 0; k < slices.length; k++) banks.push(await tfjsInstitution({ id: `bank-${k + 1}`, address, data: slices[k], seed: '5' }));
  institutions.push(...banks);
  const results = await within(start(banks), 60_000, `the ${aggregation} run`);
  await coordinator.finished;
  expect(seen.failures).toEqual([]);
  expect(results.map((r) => r.doneMessage)).toEqual(Array(slices.length).fill('run complete'));
  const { store, runId } = coordinator;
  const rounds = store.rounds(runId);
  return {
    aggregation: rounds.map((r) => r.aggregation).join(','),
    aucs: rounds.map((r) => r.auc!),
    models: [0, 1, 2, 3].map((round) => store.model(runId, round)!.parameters),
    participants: rounds.map((r) => r.participants),
    bank1Auc: rounds.map((r) => store.metric(runId, r.round, 'bank-1', 'auc')),
  };
}

describe('secure aggregation vs plain', () => {
  it('same seed, data and privacy off, 3 rounds: final global AUCs within 0.01 and committed models within a small tolerance', async () => {
    dir = tempDir('dpfed-secagg-vs-plain-');
    const slices = bankSlices(3, { rowsPerBank: 1500, seed: 'secagg-vs-plain' });
    const plain = await federate('plain', slices);
    const secure = await federate('secagg', slices);

    expect(plain.aggregation).toBe('plain,plain,plain');
    expect(secure.aggregation).toBe('secagg,secagg,secagg');
    expect(plain.participants).toEqual([3, 3, 3]);
    expect(secure.participants).toEqual([3, 3, 3]);
    // the secure run really went through the masked sums: no institution's own evaluation reached the coordinator
    expect(plain.bank1Auc.every((a) => a !== null)).toBe(true);
    expect(secure.bank1Auc).toEqual([null, null, null]);

    // same seed: the same initial model
    expect(maxAbsDifference(plain.models[0], secure.models[0])).toBe(0);
    // the models it commits round by round differ by quantisation noise only; training moved them by much more
    const moved = maxAbsDifference(plain.models[0], plain.models[3]);
    const diffs = [1, 2, 3].map((round) => maxAbsDifference(plain.models[round], secure.models[round]));
    console.log(
      `secagg vs plain: max |Δparameter| per round ${diffs.map((d) => d.toExponential(2)).join(', ')} (training moved up to ${moved.toFixed(3)}); ` +
        `AUC plain ${plain.aucs.map((a) => a.toFixed(6)).join(', ')}, secagg ${secure.aucs.map((a) => a.toFixed(6)).join(', ')}`,
    );
    expect(moved).toBeGreaterThan(0.05);
    for (const d of diffs) expect(d).toBeLessThan(1e-4);
    expect(diffs[0]).toBeGreaterThan(0); // quantisation is stochastic: the secure path is not a copy of the plain one

    // the acceptance bound is 0.01; the runs should in fact agree to ~1e-4
    for (let r = 0; r < 3; r++) expect(Math.abs(plain.aucs[r] - secure.aucs[r])).toBeLessThan(0.01);
    expect(Math.abs(plain.aucs[2] - secure.aucs[2])).toBeLessThan(1e-3);
    expect(plain.aucs[2]).toBeGreaterThan(0.85);
  });
});
