// Cross-site evaluation at the end of a run: every institution scores the final model on its own
// validation rows and releases its own histograms; the coordinator records each one's AUC. Under
// record-level DP the release goes through the private evaluation mechanism, is a "cross-site" event in
// both ledgers, and is part of each institution's planned ε; an institution that cannot afford it
// declines and says why. With privacy off the figures are exact.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { crossSiteResults } from '@dpfed/coordinator/cross-site-results';
import { FEDERATION_ID } from '@dpfed/coordinator/ledger-privacy';
import { exportModel } from '@dpfed/coordinator/model-export';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import type { TaskContext } from '@dpfed/client/learner';
import { UsageError } from '@dpfed/proto/command-flags';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { aucFromHistogram } from '@dpfed/privacy/auc-histogram';
import { composedEpsilon } from '@dpfed/privacy/budget';
import { planInstitutionEvaluations, planInstitutionNoise } from '@dpfed/privacy/evaluation-mechanism';
import { generateIdentity } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import type { ModelCard } from '@dpfed/proto/model-file-format';
import { parseTaskConfig, type TaskConfig } from '@dpfed/proto/task-config';
import { bankSlices, cleanUp, recordRounds, runConfig, start, startTestCoordinator, tempDir, tfjsInstitution, wasmTf, within, type TestInstitution } from './helpers/federation-fixture.ts';
import { taskConfigMessage } from '@dpfed/proto/task-config-message';

const DELTA = 1e-5;
let dir: string | undefined;
let coordinator: Coordinator | undefined;
let institutions: TestInstitution[] = [];

afterEach(async () => {
  await cleanUp({ institutions, coordinators: [coordinator], dir });
  institutions = [];
  coordinator = undefined;
  dir = undefined;
});

function ledgerEvents(path: string, id: string) {
  const db = new Database(path, { readonly: true });
  try {
    return new PrivacyLedger(db).events({ institutionId: id }).map((r) => r.event);
  } finally {
    db.close();
  }
}

const taskOf = (runId: string, round: number, config: ReturnType<typeof runConfig>): TaskContext => ({
  runId,
  round,
  modelVersion: round,
  spec: config.modelSpec,
  config: { ...config.task, strategy: 'fedavg', proximalMu: 0, seed: '1' } as TaskConfig,
});

describe('cross-site evaluation', () => {
  it("record-level DP with SecAgg: each institution's own noisy AUC of the final model is recorded, its cross-site event is in both ledgers and inside its planned epsilon, and one that cannot afford it declines saying why", async () => {
    dir = tempDir('dpfed-cross-site-');
    const rounds = 2;
    const config = runConfig([
      '--rounds',
      String(rounds),
      '--min-clients',
      '3',
      '--privacy',
      'record',
      '--epsilon',
      '3',
      '--delta',
      String(DELTA),
      '--aggregation',
      'secagg',
      '--model',
      'logistic',
      '--cross-site-evaluation',
      '--round-timeout',
      '60',
      '--phase-timeout',
      '30',
    ]);
    expect(config.task.evaluation.crossSite).toBe(true);
    const share = config.task.evaluation.private!;
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    const seen = recordRounds(coordinator);
    const summaries: unknown[] = [];
    coordinator.machine.on('cross-site', (s) => summaries.push(s));
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 1200, seed: 'cross-site' });
    const record = config.task.privacy.record!;

    // bank-3: budget 2 (below the run's target 3, so its own plan is bound by it) and, from an earlier run on
    // the same ledger, one evaluation-like release of 0.8 of a planned evaluation's RDP: everything of this
    // run fits except the cross-site release at the end (computed below from the ledger, not assumed)
    const poorBudget = { epsilon: 2, delta: DELTA };
    const poorIdentity = generateIdentity();
    const poorLedger = join(dir, 'bank-3.ledger.sqlite');
    const poor = new InstitutionPrivacy({ institutionId: 'bank-3', identity: poorIdentity, budget: poorBudget, ledgerPath: poorLedger });
    const poorPlan = planInstitutionNoise({
      targetEpsilon: record.targetEpsilon,
      budget: poorBudget,
      training: { sampleRate: record.sampleRate, steps: config.task.localSteps, rounds },
      evaluation: { epsilon: share.epsilon, every: 1, crossSite: true },
    });
    const priorMultiplier = poorPlan.evaluation!.multiplier / Math.sqrt(0.8);
    const earlier = { ...taskOf('an-earlier-run', 1, config) };
    poor.recordEvaluation(earlier, { sigma: priorMultiplier, recordedMultiplier: priorMultiplier, requiredMultiplier: priorMultiplier });

    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      institutions.push(
        await tfjsInstitution({
          id,
          address,
          data: slices[k],
          seed: id,
          ...(k === 2 ? { identity: poorIdentity, privacy: poor } : { privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`), budget: { epsilon: 3, delta: DELTA } } }),
        }),
      );
    }
    const results = await within(start(institutions), 180_000, 'the clients to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);
    expect(seen.rounds.map((r) => [r.round, r.participants])).toEqual([
      [1, 3],
      [2, 3],
    ]);
    const runId = coordinator.runId;

    // the coordinator's record: bank-1 and bank-2 each with its own AUC and the error from its noise; bank-3 declined
    const stored = crossSiteResults(coordinator.store.db, runId)!;
    expect(summaries).toEqual([stored]);
    expect(stored.round).toBe(rounds);
    expect(stored.private).toBe(true);
    expect(stored.institutions.map((r) => [r.institutionId, r.status])).toEqual([
      ['bank-1', 'evaluated'],
      ['bank-2', 'evaluated'],
      ['bank-3', 'declined'],
    ]);
    const coordinatorLedger = new PrivacyLedger(coordinator.store.db);
    for (const k of [0, 1]) {
      const row = stored.institutions[k];
      const id = row.institutionId;
      expect(row.auc).toBeGreaterThanOrEqual(0);
      expect(row.auc).toBeLessThanOrEqual(1);
      expect(row.aucStderr).toBeGreaterThan(0);
      expect(row.examples).toBeNull(); // no row count is released
      // its ledger: 2 training events, 2 evaluations, and the cross-site release of the final model
      const own = ledgerEvents(join(dir, `${id}.ledger.sqlite`), id).filter((e) => e.runId === runId);
      expect(own.map((e) => [e.mode, e.round]).sort()).toEqual([
        ['cross-site', 2],
        ['evaluation', 1],
        ['evaluation', 2],
        ['record', 1],
        ['record', 2],
      ]);
      const crossSite = own.find((e) => e.mode === 'cross-site')!;
      expect(crossSite.modelVersion).toBe(rounds);
      expect(row.noiseMultiplier).toBe(crossSite.noiseMultiplier);
      // the institution added its full planned noise, planned from the start as one more evaluation release
      const withCrossSite = planInstitutionEvaluations({ targetEpsilon: 3, budget: { epsilon: 3, delta: DELTA }, rounds, epsilon: share.epsilon, every: 1, crossSite: true });
      const without = planInstitutionEvaluations({ targetEpsilon: 3, budget: { epsilon: 3, delta: DELTA }, rounds, epsilon: share.epsilon, every: 1 });
      expect(withCrossSite.count).toBe(without.count + 1);
      expect(crossSite.noiseMultiplier).toBeGreaterThanOrEqual(withCrossSite.multiplier * (1 - 1e-9));
      expect(withCrossSite.multiplier).toBeGreaterThan(without.multiplier);
      // and the whole run, cross-site release included, composes within the run's target
      const spent = composedEpsilon(own, DELTA, makeAccountant('rdp')).epsilon;
      expect(spent).toBeLessThanOrEqual(3 + 1e-9);
      expect(spent).toBeGreaterThan(2.5);
      // the coordinator's ledger holds the same signed event
      const theirs = coordinatorLedger
        .events({ institutionId: id, runId })
        .map((r) => r.event)
        .filter((e) => e.mode === 'cross-site');
      expect(theirs).toEqual([crossSite]);
      expect(results[k].declined).toBeNull();
    }

    // bank-3 trained and evaluated every round, then declined the cross-site release, saying why
    const declined = stored.institutions[2];
    expect(declined.auc).toBeNull();
    expect(declined.detail).toMatch(/^budget: cross-site evaluation: .*epsilon/);
    expect(results[2].roundsTrained).toBe(rounds);
    expect(results[2].declined).toMatch(/cross-site evaluation/);
    expect(institutions[2].logs.some((l) => /declining \(budget\): cross-site evaluation/.test(l))).toBe(true);
    const poorEvents = ledgerEvents(poorLedger, 'bank-3');
    expect(
      poorEvents
        .filter((e) => e.runId === runId)
        .map((e) => e.mode)
        .sort(),
    ).toEqual(['evaluation', 'evaluation', 'record', 'record']);
    expect(coordinatorLedger.events({ institutionId: 'bank-3', runId }).some((r) => r.event.mode === 'cross-site')).toBe(false);
    // why: everything it released fits its budget, and the cross-site release on top would not
    const accountant = makeAccountant('rdp');
    expect(composedEpsilon(poorEvents, DELTA, accountant).epsilon).toBeLessThanOrEqual(poorBudget.epsilon);
    const crossSiteEvent = { sampleRate: 1, noiseMultiplier: poorPlan.evaluation!.multiplier, steps: 1 };
    expect(composedEpsilon([...poorEvents, crossSiteEvent], DELTA, accountant).epsilon).toBeGreaterThan(poorBudget.epsilon);
    // without the earlier run's release the same plan affords it: the cross-site release is inside the plan
    expect(composedEpsilon([...poorEvents.filter((e) => e.runId === runId), crossSiteEvent], DELTA, accountant).epsilon).toBeLessThanOrEqual(poorBudget.epsilon + 1e-9);
    expect(coordinatorLedger.events({ institutionId: FEDERATION_ID }).length).toBe(0);
  }, 300_000);

  it("privacy off: each institution's exact AUC of the final model, as its own histograms give it; in the exported model card", async () => {
    dir = tempDir('dpfed-cross-site-off-');
    const config = runConfig([
      '--rounds',
      '1',
      '--min-clients',
      '3',
      '--privacy',
      'off',
      '--aggregation',
      'secagg',
      '--model',
      'logistic',
      '--cross-site-evaluation',
      '--round-timeout',
      '60',
      '--phase-timeout',
      '30',
    ]);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 900, seed: 'cross-site-off' });
    for (let k = 0; k < 3; k++) institutions.push(await tfjsInstitution({ id: `bank-${k + 1}`, address, data: slices[k], seed: `off-${k}` }));
    await within(start(institutions), 120_000, 'the clients to finish');
    await coordinator.finished;
    const runId = coordinator.runId;
    const stored = crossSiteResults(coordinator.store.db, runId)!;
    expect(stored.private).toBe(false);
    const final = coordinator.store.model(runId, 1)!.parameters;
    for (const [k, institution] of institutions.entries()) {
      const row = stored.institutions[k];
      expect(row.institutionId).toBe(institution.id);
      expect(row.status).toBe('evaluated');
      const exact = await institution.learner.evaluate(final, taskOf(runId, 1, config));
      expect(row.auc).toBe(aucFromHistogram(exact.histogram));
      expect(row.examples).toBe(institution.validation!.n);
      expect(row.aucStderr).toBeNull();
    }
    // the sites differ: cross-site figures are each site's own, not one shared sum
    expect(new Set(stored.institutions.map((r) => r.auc)).size).toBeGreaterThan(1);
    const out = mkdtempSync(join(tmpdir(), 'dpfed-cross-site-export-'));
    try {
      await exportModel({ db: coordinator.store.db, runId, outDir: join(out, 'model'), tf: await wasmTf() });
      const card = JSON.parse(readFileSync(join(out, 'model', 'model-card.json'), 'utf8')) as ModelCard;
      expect(card.crossSite?.private).toBe(false);
      expect(card.crossSite?.institutions.map((r) => [r.institution, r.auc])).toEqual(stored.institutions.map((r) => [r.institutionId, r.auc]));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 180_000);

  it('is refused under client-level DP, naming the flags, and a run that did not plan it gets no release', () => {
    expect(() => runConfig(['--privacy', 'client', '--aggregation', 'secagg', '--cross-site-evaluation'])).toThrow(UsageError);
    expect(() => runConfig(['--privacy', 'client', '--aggregation', 'secagg', '--cross-site-evaluation'])).toThrow(/--cross-site-evaluation cannot be used with --privacy client/);
    expect(() => runConfig(['--privacy', 'record', '--evaluation-data', 'rows.csv', '--cross-site-evaluation'])).toThrow(/--cross-site-evaluation with --evaluation-data/);
    const client = runConfig(['--privacy', 'client', '--aggregation', 'secagg']);
    expect(() => parseTaskConfig(taskConfigMessage({ ...client.task, strategy: 'fedavg', proximalMu: 0, seed: '1', evaluation: { ...client.task.evaluation, crossSite: true } }))).toThrow(
      /evaluation.crossSite is not defined under privacy.mode client/,
    );

    const ledgerDir = tempDir('dpfed-cross-site-unplanned-');
    const privacy = new InstitutionPrivacy({ institutionId: 'bank-1', identity: generateIdentity(), budget: { epsilon: 3, delta: DELTA }, ledgerPath: join(ledgerDir, 'l.sqlite') });
    try {
      const config = runConfig(['--rounds', '2', '--privacy', 'record']);
      const decision = privacy.beforeEvaluation(taskOf('run-x', 2, config), { requested: config.task.evaluation.private!.noiseSigma, crossSite: true });
      expect(decision).toMatchObject({ allowed: false, reason: 'unplanned' });
      expect(decision.detail).toMatch(/did not plan one/);
    } finally {
      privacy.close();
      rmSync(ledgerDir, { recursive: true, force: true });
    }
  });
});
