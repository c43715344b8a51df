// The privacy layer of training releases over real gRPC on 127.0.0.1: every (privacy × aggregation) pair
// runs or is refused at startup; client-level DP by secret coins (the recorded q is the true probability),
// z calibrated to the run's ε and no round past it, institutions refusing less noise than their own
// calibration, every revealed sum recorded even when its round fails, and a retry with fresh noise.
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { FEDERATION_ID } from '@dpfed/coordinator/ledger-privacy';
import type { Learner, TaskContext, TrainOutcome } from '@dpfed/client/learner';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { calibrateNoiseMultiplier } from '@dpfed/privacy/calibrate';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { participationCoin, releasePairRefusal } from '@dpfed/privacy/release-policy';
import type { AggregationMode, PrivacyMode } from '@dpfed/proto/task-config';
import {
  cleanUp,
  DPFED_BIN,
  HoldingLearner,
  makeInstitution,
  recordRounds,
  runConfig,
  ShiftLearner,
  startTestCoordinator,
  tempDir,
  within,
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

/** A learner that shifts the model and reports the plan's DP-SGD mechanism (record mode needs one). */
class PlanLearner extends ShiftLearner implements Learner {
  override async train(global: Float32Array, task: TaskContext, noiseMultiplier: number | null): Promise<TrainOutcome> {
    const out = await super.train(global, task, noiseMultiplier);
    const record = task.config.privacy.record;
    return record ? { ...out, mechanism: { sampleRate: record.sampleRate, noiseMultiplier: noiseMultiplier!, steps: task.config.localSteps, clipNorm: record.clipNorm } } : out;
  }

  plannedMechanism(task: TaskContext): { sampleRate: number; steps: number } | null {
    const record = task.config.privacy.record;
    return record ? { sampleRate: record.sampleRate, steps: task.config.localSteps } : null;
  }
}

/** The events in an institution's own ledger file (read through a second connection). */
function ownEvents(id: string) {
  const db = new Database(join(dir!, `${id}.ledger.sqlite`));
  try {
    return new PrivacyLedger(db).events({ institutionId: id });
  } finally {
    db.close();
  }
}

const ledgerOf = (id: string) => ({ ledgerPath: join(dir!, `${id}.ledger.sqlite`), budget: { epsilon: 50, delta: 1e-5 } });

function banks(address: string, count: number, o: { learner?: (k: number) => Learner; budget?: (k: number) => number; privacy?: boolean } = {}): TestInstitution[] {
  return Array.from({ length: count }, (_, k) => {
    const id = `bank-${k + 1}`;
    const privacy = o.privacy === false ? undefined : { ...ledgerOf(id), budget: { epsilon: o.budget?.(k) ?? 50, delta: 1e-5 } };
    return makeInstitution({ id, address, learner: o.learner?.(k) ?? new PlanLearner(0.001 * (k + 1), 100), privacy, pollMs: 2_000, reconnectForMs: 3_000 });
  });
}

describe('release policy: every (privacy × aggregation) pair', () => {
  const modes: PrivacyMode[] = ['off', 'record', 'client'];
  const aggregations: AggregationMode[] = ['plain', 'secagg', 'ckks'];
  const pairs = modes.flatMap((m) => aggregations.map((a) => [m, a] as const));

  it('client × plain is refused at startup with exit 2 naming the flags; the others are accepted', () => {
    for (const [mode, aggregation] of pairs) {
      const refusal = releasePairRefusal(mode, aggregation);
      expect(refusal === null, `${mode} × ${aggregation}`).toBe(!(mode === 'client' && aggregation === 'plain'));
      const build = () => runConfig(['--privacy', mode, '--aggregation', aggregation]);
      if (refusal) expect(build).toThrow(/--privacy client cannot run with --aggregation/);
      else expect(build).not.toThrow();
    }
    const cli = spawnSync(process.execPath, [DPFED_BIN, 'coordinator', '--privacy', 'client', '--aggregation', 'plain', '--db', '/nonexistent/never-created.sqlite'], { encoding: 'utf8' });
    expect(cli.status).toBe(2);
    expect(cli.stderr).toMatch(/--privacy client cannot run with --aggregation plain/);
    // client mode never takes a cohort size: the coins decide
    expect(() => runConfig(['--privacy', 'client', '--aggregation', 'secagg', '--sample-fraction', '0.5'])).toThrow(/--sample-fraction and --sample-count cannot be used with --privacy client/);
  });

  for (const [mode, aggregation] of pairs.filter(([m, a]) => releasePairRefusal(m, a) === null)) {
    it(`${mode} × ${aggregation} runs a round over real gRPC`, async () => {
      dir = tempDir('dpfed-pair-');
      const config = runConfig(['--rounds', '1', '--min-clients', '3', '--privacy', mode, '--aggregation', aggregation, '--epsilon', '5', '--round-timeout', '20', '--phase-timeout', '10']);
      coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
      const seen = recordRounds(coordinator);
      institutions = banks(`127.0.0.1:${coordinator.port}`, 3);
      for (const i of institutions) i.run = i.client.run();
      await within(coordinator.finished, 60_000, `the ${mode} × ${aggregation} run`);
      expect(seen.failures).toEqual([]);
      expect(seen.rounds.map((r) => r.round)).toEqual([1]);
      const ledger = new PrivacyLedger(coordinator.store.db);
      const events = ledger.events({ runId: coordinator.runId });
      if (mode === 'off') expect(events).toEqual([]);
      if (mode === 'record') {
        const training = events.filter((e) => e.event.mode === 'record');
        expect(training).toHaveLength(3);
        for (const e of training) expect([e.event.sampleRate, e.event.steps]).toEqual([config.task.privacy.record!.sampleRate, config.task.localSteps]);
        // the last round's private evaluation: one evaluation event per institution, recorded when its sum was revealed
        expect(
          events
            .filter((e) => e.event.mode === 'evaluation')
            .map((e) => [e.event.institutionId, e.event.round])
            .sort(),
        ).toEqual([
          ['bank-1', 1],
          ['bank-2', 1],
          ['bank-3', 1],
        ]);
        expect(events).toHaveLength(6);
      }
      if (mode === 'client') {
        expect(events.map((e) => [e.event.institutionId, e.event.sampleRate])).toEqual([[FEDERATION_ID, 1]]);
        const z = config.task.privacy.client!.noiseMultiplier;
        // all three added their share: CKKS's real-valued noise is exactly z; SecAgg's integer noise is accounted a little below it
        if (aggregation === 'ckks') expect(events[0].event.noiseMultiplier).toBeCloseTo(z, 9);
        else expect(events[0].event.noiseMultiplier).toBeLessThanOrEqual(z);
        expect(events[0].event.noiseMultiplier).toBeGreaterThan(0.9 * z);
        // the institutions' noise is in the committed model: it moved far more than the shifts (at most 0.003) could move it
        const before = coordinator.store.model(coordinator.runId, 0)!.parameters;
        const after = coordinator.store.model(coordinator.runId, 1)!.parameters;
        let moved = 0;
        for (let i = 0; i < before.length; i++) moved = Math.max(moved, Math.abs(after[i] - before[i]));
        expect(moved).toBeGreaterThan(0.05);
      }
    }, 90_000);
  }
});

describe('client-level DP', () => {
  it('the participation coin is a Bernoulli(q) from node:crypto: its frequency over 40,000 draws is q within 5 standard errors', () => {
    for (const q of [0.05, 0.3, 0.6]) {
      const n = 40_000;
      let heads = 0;
      for (let i = 0; i < n; i++) if (participationCoin(q)) heads++;
      expect(Math.abs(heads / n - q)).toBeLessThan(5 * Math.sqrt((q * (1 - q)) / n));
    }
    expect(participationCoin(1)).toBe(true);
    expect(() => participationCoin(0)).toThrow(/q must be in \(0, 1\]/);
  });

  it('over 30 real rounds at --client-sample-rate 0.4, the institutions joined at that rate and every federation event records q = 0.4', async () => {
    dir = tempDir('dpfed-client-rate-');
    const rounds = 30;
    const config = runConfig([
      '--rounds',
      String(rounds),
      '--min-clients',
      '3',
      '--wait-for',
      '4',
      '--privacy',
      'client',
      '--aggregation',
      'secagg',
      '--client-sample-rate',
      '0.4',
      '--epsilon',
      '50',
      '--round-timeout',
      '20',
      '--phase-timeout',
      '5',
    ]);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    institutions = banks(`127.0.0.1:${coordinator.port}`, 4, { learner: () => new ShiftLearner(0.001, 100), budget: () => 100 });
    const coins: boolean[] = [];
    for (const i of institutions) i.client.on('participation', (p: { joined: boolean }) => coins.push(p.joined));
    for (const i of institutions) i.run = i.client.run();
    await within(coordinator.finished, 120_000, 'the run');
    expect(coins).toHaveLength(4 * rounds);
    const rate = coins.filter(Boolean).length / coins.length;
    expect(Math.abs(rate - 0.4)).toBeLessThan(5 * Math.sqrt((0.4 * 0.6) / coins.length));
    const events = new PrivacyLedger(coordinator.store.db).events({ institutionId: FEDERATION_ID, runId: coordinator.runId });
    expect(events).toHaveLength(rounds);
    expect(new Set(events.map((e) => e.event.sampleRate))).toEqual(new Set([0.4]));
    for (const i of institutions) expect(ownEvents(i.id).map((e) => e.event.sampleRate)).toEqual(Array.from({ length: rounds }, () => 0.4));
  }, 150_000);

  it("every live institution is offered every round and the recorded q is the coins' rate; z is calibrated to ε; a round whose noise fell short makes the next one pass ε, and the coordinator refuses it", async () => {
    dir = tempDir('dpfed-client-');
    const config = runConfig([
      '--rounds',
      '2',
      '--min-clients',
      '3',
      '--wait-for',
      '4',
      '--privacy',
      'client',
      '--aggregation',
      'secagg',
      '--client-sample-rate',
      '0.5',
      '--epsilon',
      '2',
      '--update-clip-norm',
      '1',
      '--round-timeout',
      '20',
      '--phase-timeout',
      '3',
    ]);
    const c = config.task.privacy.client!;
    // z calibrated over the planned rounds: 2 subsampled events at z compose to ε just under 2
    expect(c.noiseMultiplier).toBe(calibrateNoiseMultiplier({ targetEpsilon: 2, delta: 1e-5, sampleRate: 0.5, steps: 2 }).noiseMultiplier);
    const planned = makeAccountant('rdp').epsilon([{ sampleRate: 0.5, noiseMultiplier: c.noiseMultiplier, steps: 2 }], 1e-5).epsilon;
    expect(planned).toBeLessThanOrEqual(2);
    expect(planned).toBeGreaterThan(1.98);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const seen = recordRounds(coordinator);
    institutions = banks(`127.0.0.1:${coordinator.port}`, 4, { learner: (k) => new ShiftLearner(0.001 * (k + 1), 100) });
    const victim = institutions[3];
    victim.client.once('trained', () => victim.client.close()); // dies after advertising its keys: less noise in round 1
    for (const i of institutions) i.run = i.client.run().catch(() => ({ roundsTrained: 0, roundsEvaluated: 0, declined: null, doneMessage: 'killed' }));
    await within(coordinator.finished, 60_000, 'the run');
    const { store, runId } = coordinator;
    // offered to all four, whatever the coins said (the coordinator does not know who joined)
    expect(store.participants(runId, 1).map((p) => p.institutionId)).toEqual(['bank-1', 'bank-2', 'bank-3', 'bank-4']);
    const ledger = new PrivacyLedger(store.db);
    const events = ledger.events({ institutionId: FEDERATION_ID, runId });
    expect(events.map((e) => [e.event.round, e.event.sampleRate])).toEqual([[1, 0.5]]);
    expect(events[0].event.noiseMultiplier).toBeLessThan(c.noiseMultiplier);
    // round 2 at the planned z would pass ε = 2: refused before it was offered, the reason recorded
    expect(seen.rounds.map((r) => r.round)).toEqual([1]);
    expect(store.roundFailures(runId)).toEqual([{ round: 2, reason: expect.stringMatching(/round 2: refused: client-level epsilon after it would be [\d.]+ > the run's target 2/) }]);
    // each surviving institution recorded its own client-level event at the coins' rate
    for (const i of institutions.slice(0, 3)) {
      const own = ownEvents(i.id);
      expect(own.map((e) => [e.event.round, e.event.mode, e.event.sampleRate, e.event.noiseMultiplier])).toEqual([[1, 'client', 0.5, c.noiseMultiplier]]);
    }
  }, 90_000);

  it("an institution refuses a plan with less noise than its own calibration (its budget is below the run's target): it declines and records nothing", async () => {
    dir = tempDir('dpfed-client-noise-');
    const config = runConfig([
      '--rounds',
      '1',
      '--min-clients',
      '3',
      '--wait-for',
      '5',
      '--privacy',
      'client',
      '--aggregation',
      'secagg',
      '--epsilon',
      '4',
      '--update-clip-norm',
      '1',
      '--round-timeout',
      '20',
      '--phase-timeout',
      '3',
    ]);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    institutions = banks(`127.0.0.1:${coordinator.port}`, 5, { learner: () => new ShiftLearner(0.001, 100), budget: (k) => (k === 4 ? 1 : 50) });
    const declines: { reason: string; detail: string }[] = [];
    institutions[4].client.on('declined', (d: { reason: string; detail: string }) => declines.push(d));
    for (const i of institutions) i.run = i.client.run();
    await within(coordinator.finished, 60_000, 'the run');
    expect(declines).toHaveLength(1);
    expect(declines[0].reason).toBe('noise');
    expect(declines[0].detail).toMatch(/below this institution's own calibration/);
    expect(ownEvents('bank-5')).toEqual([]);
    expect(coordinator.store.rounds(coordinator.runId).map((r) => [r.round, r.participants])).toEqual([[1, 4]]);
  }, 90_000);

  it('a sum revealed in a round that then fails is recorded; the retry is a new round with fresh noise, recorded as its own event', async () => {
    dir = tempDir('dpfed-client-retry-');
    const config = runConfig([
      '--rounds',
      '3',
      '--min-clients',
      '5',
      '--privacy',
      'client',
      '--aggregation',
      'secagg',
      '--secagg-threshold',
      '0.5',
      '--epsilon',
      '4',
      '--update-clip-norm',
      '1',
      '--round-timeout',
      '2',
      '--phase-timeout',
      '3',
    ]);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'c.sqlite'), config });
    const seen = recordRounds(coordinator);
    // bank-5 is late in round 1 only: the other four's sum is revealed, then the round fails (4 < --min-clients 5)
    institutions = banks(`127.0.0.1:${coordinator.port}`, 5, {
      learner: (k) => (k === 4 ? new HoldingLearner(new ShiftLearner(0.001, 100), (call) => new Promise((r) => setTimeout(r, call === 1 ? 3_500 : 0))) : new ShiftLearner(0.001, 100)),
    });
    const digests = new Map<string, string[]>();
    for (const i of institutions) i.client.on('released', (r: { round: number; digest: string }) => digests.set(i.id, [...(digests.get(i.id) ?? []), `${r.round}:${r.digest}`]));
    for (const i of institutions) i.run = i.client.run();
    await within(coordinator.finished, 60_000, 'the run');
    const { store, runId } = coordinator;
    // round 3 is refused: round 1's revealed sum carried only 4 of the 5 planned noise shares, so the run's ε has no room left
    expect(seen.failures.map((f) => f.round)).toEqual([1, 3]);
    expect(seen.failures[0].reason).toMatch(/only 4 of 5/);
    expect(seen.failures[1].reason).toMatch(/round 3: refused: client-level epsilon/);
    expect(seen.rounds.map((r) => r.round)).toEqual([2]);
    const events = new PrivacyLedger(store.db).events({ institutionId: FEDERATION_ID, runId });
    expect(events.map((e) => e.event.round)).toEqual([1, 2]);
    for (const i of institutions.slice(0, 4)) {
      // the same update from the same model in both rounds; the encoded vectors differ by their fresh noise
      const [first, second] = digests.get(i.id)!;
      expect(first.startsWith('1:') && second.startsWith('2:')).toBe(true);
      expect(first.slice(2)).not.toBe(second.slice(2));
      const own = ownEvents(i.id);
      expect(own.map((e) => [e.event.round, e.event.modelVersion])).toEqual([
        [1, 0],
        [2, 0],
      ]);
    }
  }, 90_000);
});
