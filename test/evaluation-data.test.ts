// `--evaluation-data`: the coordinator scores each candidate on rows it holds itself, over real gRPC with
// record-level DP institutions: no EVALUATE task reaches them, their ledgers hold training releases only,
// and their training noise is calibrated to the whole target (no evaluation share is set aside).
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { evaluationDataEvaluator } from 'dpfed/evaluation-data';
import type { CandidateEvaluator } from '@dpfed/coordinator/candidate-evaluator';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { aucFromHistogram } from '@dpfed/privacy/auc-histogram';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import {
  bankSlices,
  cleanUp,
  FRAUD_SCHEMA,
  recordRounds,
  runConfig,
  start,
  startTestCoordinator,
  tempDir,
  tfjsInstitution,
  within,
  writeBankCsv,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

const DELTA = 1e-5;
let dir: string | undefined;
let coordinator: Coordinator | undefined;
let evaluator: CandidateEvaluator | undefined;
let institutions: TestInstitution[] = [];

afterEach(async () => {
  await cleanUp({ institutions, coordinators: [coordinator], dir });
  evaluator?.close?.();
  institutions = [];
  coordinator = undefined;
  evaluator = undefined;
  dir = undefined;
});

describe('--evaluation-data', () => {
  it("scores candidates on the coordinator's own rows: institutions get no EVALUATE task and spend their whole target on training", async () => {
    dir = tempDir('dpfed-evaluation-data-');
    const [own, ...banks] = bankSlices(4, { rowsPerBank: 1200, seed: 'evaluation-data' });
    const csv = join(dir, 'coordinator-holdout.csv');
    writeBankCsv(csv, own);
    const config = runConfig([
      '--rounds',
      '2',
      '--min-clients',
      '3',
      '--privacy',
      'record',
      '--epsilon',
      '3',
      '--delta',
      String(DELTA),
      '--evaluation-data',
      csv,
      '--round-timeout',
      '60',
      '--phase-timeout',
      '30',
    ]);
    expect(config.task.evaluation).toMatchObject({ coordinatorData: true, bins: 1024 });
    expect(config.task.evaluation.private).toBeUndefined();
    evaluator = await evaluationDataEvaluator(csv, 'label', config.modelSpec, { schemaPath: FRAUD_SCHEMA });
    await expect(startTestCoordinator({ dbPath: join(dir, 'no-evaluator.sqlite'), config })).rejects.toThrow(/--evaluation-data/);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, evaluator });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      institutions.push(await tfjsInstitution({ id, address, data: banks[k], privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`), budget: { epsilon: 5, delta: DELTA } } }));
    }
    const results = await within(start(institutions), 90_000, 'the clients to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);
    expect(results.map((r) => r.roundsEvaluated)).toEqual([0, 0, 0]);
    expect(seen.rounds.map((r) => r.evaluated)).toEqual([true, true]);
    // the reported figures are the committed model's on the coordinator's rows, exact (no error term)
    for (const summary of seen.rounds) {
      const model = coordinator.store.model(coordinator.runId, summary.round)!.parameters;
      const totals = await evaluator.evaluate(model, config.modelSpec, config.task.evaluation);
      expect(totals.n).toBe(own.n);
      expect(summary.auc).toBe(aucFromHistogram(totals.histogram));
      expect(summary.loss).toBeCloseTo(totals.lossSum / totals.n, 9);
      expect(summary.aucStderr).toBeUndefined();
    }
    // (the figure itself is pinned above to the evaluator's exact histogram; two DP rounds need not beat chance)
    for (const r of seen.rounds) {
      expect(r.auc).toBeGreaterThanOrEqual(0);
      expect(r.auc).toBeLessThanOrEqual(1);
    }
    const rdp = makeAccountant('rdp');
    const coordinatorLedger = new PrivacyLedger(coordinator.store.db);
    for (const institution of institutions) {
      const db = new Database(join(dir, `${institution.id}.ledger.sqlite`), { readonly: true });
      const events = new PrivacyLedger(db).events({ institutionId: institution.id }).map((r) => r.event);
      db.close();
      expect(events.map((e) => [e.round, e.mode])).toEqual([
        [1, 'record'],
        [2, 'record'],
      ]);
      expect(coordinatorLedger.events({ institutionId: institution.id }).map((r) => r.event.mode)).toEqual(['record', 'record']);
      // calibrated to the run's target over 2 planned rounds with nothing set aside: 2 rounds spend ≈ 3
      const spent = rdp.epsilon(events, DELTA).epsilon;
      expect(spent).toBeLessThanOrEqual(3 + 1e-9);
      expect(spent).toBeGreaterThan(2.95);
    }
  });
});
