// Privacy budgets enforced end to end over real gRPC, record-level DP with TfjsLearner institutions:
// an institution that would pass its own budget declines (Decline RPC) and is no longer sampled; an
// institution that does not enforce its budget is refused by the coordinator once its recorded ε plus one
// more round would pass the budget it declared; a coordinator restarted after some updates of a round were
// pushed but before the round committed records nothing twice, in its ledger or in the institutions' own.
// The runs' private evaluation shares the target ε: the budget scenarios evaluate only in their last
// round (--evaluate-every), so the training rounds where budgets bite stay easy to compute; the restart
// scenario evaluates every round and checks evaluation events are not recorded twice either.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import type { Dataset } from '@dpfed/client/csv-dataset';
import { FederationClient } from '@dpfed/client/federation-client';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import type { Learner, TaskContext } from '@dpfed/client/learner';
import { TfjsLearner } from '@dpfed/client/tfjs-learner';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { planInstitutionNoise } from '@dpfed/privacy/evaluation-mechanism';
import { generateIdentity } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import type { MechanismEvent } from '@dpfed/privacy/mechanism-event';
import type { RunConfig } from '@dpfed/coordinator/run-config';
import {
  bankSlices,
  cleanUp,
  prepareBank,
  recordRounds,
  roundCommitted,
  runConfig,
  start,
  startTestCoordinator,
  joinTestFederation,
  tempDir,
  wasmTf,
  within,
  type TestInstitution,
  HoldingLearner,
} from './helpers/federation-fixture.ts';

let dir: string | undefined;
let coordinators: (Coordinator | undefined)[] = [];
let institutions: TestInstitution[] = [];

afterEach(async () => {
  await cleanUp({ institutions, coordinators, dir });
  institutions = [];
  coordinators = [];
  dir = undefined;
});

const DELTA = 1e-5;
const rdp = makeAccountant('rdp');
const epsilonOf = (events: readonly MechanismEvent[]) => (events.length ? rdp.epsilon(events, DELTA).epsilon : 0);
const repeat = (e: MechanismEvent, n: number): MechanismEvent[] => Array.from({ length: n }, () => ({ ...e }));

interface BankOptions {
  id: string;
  address: string;
  data: Dataset;
  /** The budget the institution enforces itself (its InstitutionPrivacy). */
  ownBudget: { epsilon: number; delta: number };
  /** The budget it declares to the coordinator at registration (default: its own). */
  declaredBudget?: { epsilon: number; delta: number };
  ledgerPath: string;
  wrap?: (learner: Learner) => Learner;
}

/** A bank as an SDK user builds it: TfjsLearner on its split, preprocessed by the public schema; its own ledger and budget. */
async function bank(o: BankOptions): Promise<TestInstitution> {
  const { train, validation } = await prepareBank(o.data);
  const base = new TfjsLearner(await wasmTf(), train, validation);
  const learner = o.wrap ? o.wrap(base) : base;
  const identity = generateIdentity();
  const privacy = new InstitutionPrivacy({ institutionId: o.id, identity, budget: o.ownBudget, ledgerPath: o.ledgerPath });
  const logs: string[] = [];
  const client = new FederationClient({
    coordinator: o.address,
    institutionId: o.id,
    identity,
    learner,
    privacy,
    budget: o.declaredBudget ?? o.ownBudget,
    pollMs: 5_000,
    reconnectForMs: 30_000,
    log: (line) => logs.push(line),
    ...joinTestFederation(o.address, o.id, identity.publicKey),
  });
  return { id: o.id, identity, client, learner, privacy, validation, logs };
}

/** A task context of `config` (as the coordinator would send it) for bookkeeping outside the run. */
function taskOf(config: RunConfig, runId: string, round: number): TaskContext {
  return { runId, round, modelVersion: round - 1, spec: config.modelSpec, config: { ...config.task, strategy: config.strategy, proximalMu: 0, seed: config.seed } };
}

/** The training mechanism of one round of `learner` in this run, with σ calibrated as InstitutionPrivacy does (beside the planned evaluations). */
function roundMechanism(config: RunConfig, learner: Learner, budgetEpsilon: number): MechanismEvent {
  const task = taskOf(config, 'planning', 1);
  const planned = learner.plannedMechanism!(task)!;
  const record = config.task.privacy.record!;
  const share = config.task.evaluation.private;
  const { trainingMultiplier } = planInstitutionNoise({
    targetEpsilon: record.targetEpsilon,
    budget: { epsilon: budgetEpsilon, delta: DELTA },
    accountant: 'rdp',
    training: { ...planned, rounds: record.plannedRounds },
    evaluation: share ? { epsilon: share.epsilon, every: config.task.evaluation.every ?? 1 } : null,
  });
  return { ...planned, noiseMultiplier: trainingMultiplier };
}

/** The institution's own ledger: training releases only, or with `all` its evaluation releases too. */
function ownLedgerEvents(path: string, id: string, all = false): { runId: string; round: number; mode: string; mechanism: MechanismEvent }[] {
  const db = new Database(path, { readonly: true });
  try {
    return new PrivacyLedger(db)
      .events({ institutionId: id })
      .filter((r) => all || r.event.mode === 'record')
      .map((r) => ({
        runId: r.event.runId,
        round: r.event.round,
        mode: r.event.mode,
        mechanism: { sampleRate: r.event.sampleRate, noiseMultiplier: r.event.noiseMultiplier, steps: r.event.steps },
      }));
  } finally {
    db.close();
  }
}

const SIX_ROUNDS = [
  '--rounds',
  '6',
  '--evaluate-every',
  '6',
  '--min-clients',
  '2',
  '--wait-for',
  '3',
  '--privacy',
  'record',
  '--epsilon',
  '3',
  '--delta',
  String(DELTA),
  '--round-timeout',
  '30',
  '--phase-timeout',
  '30',
];

describe('privacy budgets over real gRPC (record-level DP)', () => {
  it('refusal at the client: a bank with earlier spending declines once its projection passes its own budget; it is not sampled again', async () => {
    dir = tempDir('dpfed-budget-client-');
    const config = runConfig(SIX_ROUNDS);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    coordinators.push(coordinator);
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 700, seed: 'budget-client' });
    const ledgers = ['bank-1', 'bank-2', 'bank-3'].map((id) => join(dir!, `${id}.ledger.sqlite`));
    const thrifty = { epsilon: 2, delta: DELTA }; // smaller than the run's target of 3
    institutions.push(await bank({ id: 'bank-1', address, data: slices[0], ownBudget: { epsilon: 3, delta: DELTA }, ledgerPath: ledgers[0] }));
    institutions.push(await bank({ id: 'bank-2', address, data: slices[1], ownBudget: { epsilon: 3, delta: DELTA }, ledgerPath: ledgers[1] }));
    const b3 = await bank({ id: 'bank-3', address, data: slices[2], ownBudget: thrifty, ledgerPath: ledgers[2] });
    institutions.push(b3);

    // σ is calibrated to min(run target, own budget) over the run's planned rounds, so a smaller budget alone
    // is never overspent within one run. bank-3 took part in an earlier study: 3 rounds of the same
    // mechanism are already in its own ledger, so only 3 of this run's 6 rounds fit its budget of 2.
    const perRound = roundMechanism(config, b3.learner, thrifty.epsilon);
    for (let round = 1; round <= 3; round++) {
      const earlier = taskOf(config, 'earlier-study', round);
      b3.privacy!.recordRelease(earlier, { ...perRound, clipNorm: 1 });
    }
    expect(epsilonOf(repeat(perRound, 6))).toBeLessThanOrEqual(thrifty.epsilon);
    expect(epsilonOf(repeat(perRound, 7))).toBeGreaterThan(thrifty.epsilon);

    const declines: { projectedEpsilon: number; budgetEpsilon: number }[] = [];
    b3.client.on('declined', (d: { projectedEpsilon: number; budgetEpsilon: number }) => declines.push(d));
    const results = await within(start(institutions), 100_000, 'the clients to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);

    const { store, runId } = coordinator;
    // rounds 1-3 with all three; bank-3 declines round 4 (the others carry it) and is not sampled after
    expect(store.rounds(runId).map((r) => [r.round, r.participants])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
      [4, 2],
      [5, 2],
      [6, 2],
    ]);
    expect(store.participants(runId, 4).map((p) => [p.institutionId, p.status])).toEqual([
      ['bank-1', 'reported'],
      ['bank-2', 'reported'],
      ['bank-3', 'declined'],
    ]);
    for (const round of [5, 6]) expect(store.participants(runId, round).map((p) => p.institutionId)).toEqual(['bank-1', 'bank-2']);
    const refusals = store.schedulingRefusals(runId);
    expect(refusals.map((r) => [r.round, r.institutionId])).toEqual([[4, 'bank-3']]);
    expect(refusals[0].reason).toMatch(/institution declined/);

    expect(declines).toHaveLength(1);
    expect(declines[0].budgetEpsilon).toBe(thrifty.epsilon);
    expect(declines[0].projectedEpsilon).toBeGreaterThan(thrifty.epsilon);
    expect(results[0].doneMessage).toBe('run complete');
    expect(results[2].doneMessage).toMatch(/excluded/);

    // its own ledger: the earlier study and this run's 3 rounds, composed within its budget; one more round
    // of this run would not have been
    const own = ownLedgerEvents(ledgers[2], 'bank-3');
    expect(own.map((e) => [e.runId, e.round])).toEqual([
      ['earlier-study', 1],
      ['earlier-study', 2],
      ['earlier-study', 3],
      [runId, 1],
      [runId, 2],
      [runId, 3],
    ]);
    const spent = own.map((e) => e.mechanism);
    expect(epsilonOf(spent)).toBeLessThanOrEqual(thrifty.epsilon);
    expect(epsilonOf([...spent, spent[spent.length - 1]])).toBeGreaterThan(thrifty.epsilon);
    expect(declines[0].projectedEpsilon).toBeCloseTo(epsilonOf([...spent, spent[spent.length - 1]]), 9);
    expect(b3.privacy!.spent().epsilon).toBeLessThanOrEqual(thrifty.epsilon);
    // the others spent this run's target at most, over all 6 rounds
    for (const [k, id] of ['bank-1', 'bank-2'].entries()) {
      const events = ownLedgerEvents(ledgers[k], id, true);
      expect(events.map((e) => [e.round, e.mode])).toEqual([
        [1, 'record'],
        [2, 'record'],
        [3, 'record'],
        [4, 'record'],
        [5, 'record'],
        [6, 'record'],
        [6, 'evaluation'],
      ]);
      expect(epsilonOf(events.map((e) => e.mechanism))).toBeLessThanOrEqual(3);
    }

    // the coordinator's ledger has bank-3's three releases of this run, nothing for the declined round
    const ledger = new PrivacyLedger(store.db);
    expect(ledger.events({ institutionId: 'bank-3' }).map((r) => r.event.round)).toEqual([1, 2, 3]);
    expect(ledger.events({ institutionId: 'bank-1' }).map((r) => r.event.round)).toEqual([1, 2, 3, 4, 5, 6, 6]);
    expect(ledger.verify().ok).toBe(true);

    // what the SDK reports to the bank's own code: why it stopped, and the rounds it really trained
    expect(results[2].declined).toMatch(/exceed the budget/);
    expect(results.map((r) => r.roundsTrained)).toEqual([6, 6, 3]);
  });

  it('an institution already out of budget declines its first round: it trains nothing, spends nothing, and says why', async () => {
    dir = tempDir('dpfed-budget-declined-');
    const config = runConfig([
      '--rounds',
      '3',
      '--evaluate-every',
      '3',
      '--min-clients',
      '2',
      '--wait-for',
      '3',
      '--privacy',
      'record',
      '--epsilon',
      '3',
      '--delta',
      String(DELTA),
      '--round-timeout',
      '30',
      '--phase-timeout',
      '30',
    ]);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    coordinators.push(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 500, seed: 'budget-declined' });
    const own = { epsilon: 1, delta: DELTA };
    const ledgers = [1, 2, 3].map((k) => join(dir!, `bank-${k}.ledger.sqlite`));
    for (let k = 0; k < 3; k++) institutions.push(await bank({ id: `bank-${k + 1}`, address, data: slices[k], ownBudget: k === 2 ? own : { epsilon: 3, delta: DELTA }, ledgerPath: ledgers[k] }));
    // bank-3 spent all but a sliver of its budget elsewhere (a whole run's worth of this run's mechanism)
    const perRound = roundMechanism(config, institutions[2].learner, own.epsilon);
    institutions[2].privacy!.recordRelease(taskOf(config, 'earlier-study', 1), { sampleRate: perRound.sampleRate, noiseMultiplier: perRound.noiseMultiplier, steps: perRound.steps * 3, clipNorm: 1 });
    const results = await within(start(institutions), 60_000, 'the clients to finish');
    await coordinator.finished;
    const { store, runId } = coordinator;
    expect(store.schedulingRefusals(runId).map((r) => [r.round, r.institutionId])).toEqual([[1, 'bank-3']]);
    expect(store.rounds(runId).map((r) => r.participants)).toEqual([2, 2, 2]);
    expect(new PrivacyLedger(store.db).events({ institutionId: 'bank-3' })).toEqual([]);
    expect(ownLedgerEvents(ledgers[2], 'bank-3').map((e) => e.runId)).toEqual(['earlier-study']);
    expect(results[2].doneMessage).toMatch(/excluded/);
    expect(results[2].declined).toMatch(/exceed the budget/);
    expect(results[2].roundsTrained).toBe(0);
  });

  it('refusal at the coordinator: an institution that does not enforce its budget is not scheduled past the budget it declared', async () => {
    dir = tempDir('dpfed-budget-coordinator-');
    const dbPath = join(dir, 'coordinator.sqlite');
    const config = runConfig(SIX_ROUNDS);
    const coordinator = await startTestCoordinator({ dbPath, config });
    coordinators.push(coordinator);
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 700, seed: 'budget-coordinator' });
    const ledgers = ['bank-1', 'bank-2', 'bank-3'].map((id) => join(dir!, `${id}.ledger.sqlite`));
    institutions.push(await bank({ id: 'bank-1', address, data: slices[0], ownBudget: { epsilon: 3, delta: DELTA }, ledgerPath: ledgers[0] }));
    institutions.push(await bank({ id: 'bank-2', address, data: slices[1], ownBudget: { epsilon: 3, delta: DELTA }, ledgerPath: ledgers[1] }));
    // bank-3 enforces a lax budget of 100 locally (so it calibrates to the run's target of 3 over 6 rounds)
    // but declares a smaller one: halfway between ε after 3 and after 4 of its rounds.
    const { train, validation } = await prepareBank(slices[2]);
    const perRound = roundMechanism(config, new TfjsLearner(await wasmTf(), train, validation), 100);
    const after3 = epsilonOf(repeat(perRound, 3));
    const after4 = epsilonOf(repeat(perRound, 4));
    expect(after4 - after3).toBeGreaterThan(0.05);
    const declared = { epsilon: (after3 + after4) / 2, delta: DELTA };
    const b3 = await bank({ id: 'bank-3', address, data: slices[2], ownBudget: { epsilon: 100, delta: DELTA }, declaredBudget: declared, ledgerPath: ledgers[2] });
    institutions.push(b3);
    let declined = 0;
    b3.client.on('declined', () => declined++);

    const results = await within(start(institutions), 100_000, 'the clients to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);
    const { store, runId } = coordinator;
    expect(store.rounds(runId).map((r) => [r.round, r.participants])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
      [4, 2],
      [5, 2],
      [6, 2],
    ]);
    // not sampled at all from round 4 (refused before sampling, not a declined participant)
    for (const round of [4, 5, 6]) expect(store.participants(runId, round).map((p) => p.institutionId)).toEqual(['bank-1', 'bank-2']);
    const refusals = store.schedulingRefusals(runId);
    expect(refusals.map((r) => [r.round, r.institutionId])).toEqual([[4, 'bank-3']]);
    expect(refusals[0].reason).toMatch(/coordinator refused to schedule/);
    expect(declined).toBe(0); // the institution itself never objected
    expect(results.map((r) => r.roundsTrained)).toEqual([6, 6, 3]);
    expect(results[2].doneMessage).toMatch(/excluded/);

    const ledger = new PrivacyLedger(store.db);
    expect(ledger.institution('bank-3')!.budget).toEqual(declared);
    const events = ledger.events({ institutionId: 'bank-3' });
    expect(events.map((r) => r.event.round)).toEqual([1, 2, 3]);
    const recorded = events.map((r) => ({ sampleRate: r.event.sampleRate, noiseMultiplier: r.event.noiseMultiplier, steps: r.event.steps }));
    expect(ledger.spent('bank-3', rdp).epsilon).toBeLessThanOrEqual(declared.epsilon);
    expect(ledger.spent('bank-3', rdp).epsilon).toBeCloseTo(epsilonOf(recorded), 9);
    const ledgerRefusals = ledger.refusals({ institutionId: 'bank-3' });
    expect(ledgerRefusals.map((r) => [r.runId, r.round])).toEqual([[runId, 4]]);
    expect(ledgerRefusals[0].projectedEpsilon).toBeGreaterThan(declared.epsilon);
    expect(ledgerRefusals[0].projectedEpsilon).toBeCloseTo(epsilonOf([...recorded, recorded[2]]), 9);
    expect(ledger.refusals({ institutionId: 'bank-1' })).toEqual([]);
    expect(new PrivacyLedger(store.db).verify().ok).toBe(true);
    // its own ledger (lax budget) holds the same three releases
    expect(ownLedgerEvents(ledgers[2], 'bank-3').map((e) => e.round)).toEqual([1, 2, 3]);
  });

  it('restart without double counting: closed after two banks pushed round 2 but before it committed; the run completes, one event per (institution, round) everywhere', async () => {
    dir = tempDir('dpfed-budget-restart-');
    const dbPath = join(dir, 'coordinator.sqlite');
    const config = runConfig(['--rounds', '3', '--min-clients', '3', '--privacy', 'record', '--epsilon', '3', '--delta', String(DELTA), '--round-timeout', '30', '--phase-timeout', '30']);
    const first = await startTestCoordinator({ dbPath, config });
    coordinators.push(first);
    const port = first.port;
    const address = `127.0.0.1:${port}`;
    const slices = bankSlices(3, { rowsPerBank: 700, seed: 'budget-restart' });
    const ledgers = ['bank-1', 'bank-2', 'bank-3'].map((id) => join(dir!, `${id}.ledger.sqlite`));
    // bank-3's round-2 training waits for us: the round cannot commit before the restart
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding = false;
    const learners: HoldingLearner[] = [];
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      institutions.push(
        await bank({
          id,
          address,
          data: slices[k],
          ownBudget: { epsilon: 3, delta: DELTA },
          ledgerPath: ledgers[k],
          wrap: (inner) => {
            const learner = new HoldingLearner(inner, async (call) => {
              if (k !== 2 || call !== 2) return;
              holding = true;
              await released;
            });
            learners.push(learner);
            return learner;
          },
        }),
      );
    }
    const pushed = new Set<string>();
    for (const i of institutions.slice(0, 2)) i.client.on('trained', (t: { round: number }) => t.round === 2 && pushed.add(i.id));
    const failures: string[] = [];
    for (const i of institutions) {
      i.run = i.client.run().catch((error: Error) => {
        failures.push(`${i.id}: ${error.message}; log: ${i.logs.slice(-6).join(' | ')}`);
        throw error;
      });
      i.run.catch(() => undefined); // awaited below
    }
    const runs = Promise.all(institutions.map((i) => i.run!));
    await within(roundCommitted(first, 1), 60_000, 'round 1');
    await within(
      new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          if (holding && pushed.size === 2) {
            clearInterval(timer);
            resolve();
          }
        }, 5);
      }),
      30_000,
      'bank-1 and bank-2 to push round 2 while bank-3 holds',
    );
    expect(first.machine.status).toMatchObject({ phase: 'training', round: 2 });
    await first.close();

    const second = await startTestCoordinator({ dbPath, config, port });
    coordinators.push(second);
    expect(second.resumedFromRound).toBe(1);
    const seen = recordRounds(second);
    release(); // bank-3 now finishes round 2 and uploads to the restarted coordinator

    const results = await within(runs, 90_000, 'the clients to finish after the restart').catch((error: Error) => {
      throw new Error(`${error.message}\n${failures.join('\n')}`);
    });
    await within(second.finished, 30_000, 'the resumed run');
    expect(seen.failures).toEqual([]);
    expect(seen.rounds.map((r) => [r.round, r.participants])).toEqual([
      [2, 3],
      [3, 3],
    ]);
    expect(results.map((r) => r.doneMessage)).toEqual(['run complete', 'run complete', 'run complete']);
    // each bank trained once per round: round 2's update was resent to the new coordinator, not recomputed
    expect(learners.map((l) => l.calls)).toEqual([3, 3, 3]);
    expect(results.map((r) => r.roundsTrained)).toEqual([3, 3, 3]); // a re-sent update is not a trained round
    for (const i of institutions)
      expect(
        i.logs.some((l) => /round 2: re-?sending/.test(l)),
        `${i.id} resent round 2`,
      ).toBe(true);

    const { store, runId } = second;
    expect(store.rounds(runId).map((r) => [r.round, r.participants])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    const ledger = new PrivacyLedger(store.db);
    const perPair = new Map<string, number>();
    const keyOf = (e: { institutionId: string; runId: string; round: number; mode: string }) => `${e.institutionId}/${e.runId}/${e.round}/${e.mode}`;
    for (const r of ledger.events()) perPair.set(keyOf(r.event), (perPair.get(keyOf(r.event)) ?? 0) + 1);
    expect([...perPair.values()].every((n) => n === 1)).toBe(true);
    expect([...perPair.keys()].sort()).toEqual(
      ['bank-1', 'bank-2', 'bank-3'].flatMap((id) => [1, 2, 3].flatMap((round) => ['record', 'evaluation'].map((mode) => `${id}/${runId}/${round}/${mode}`))).sort(),
    );
    expect(ledger.verify().ok).toBe(true);
    for (const [k, id] of ['bank-1', 'bank-2', 'bank-3'].entries()) {
      const own = ownLedgerEvents(ledgers[k], id, true);
      expect(
        own.map((e) => [e.runId, e.round, e.mode]),
        `${id}'s own ledger`,
      ).toEqual(
        [1, 2, 3].flatMap((round) => [
          [runId, round, 'record'],
          [runId, round, 'evaluation'],
        ]),
      );
      // the coordinator holds exactly the mechanisms the institution recorded
      expect(ledger.events({ institutionId: id }).map((r) => r.event.noiseMultiplier)).toEqual(own.map((e) => e.mechanism.noiseMultiplier));
    }
  });
});
