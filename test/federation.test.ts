// A federation over real gRPC on 127.0.0.1: the coordinator in this process, institutions as in-process
// FederationClients (TfjsLearner on wasm) or as real `dpfed client` processes, state in a real SQLite file.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { FedAvgStrategy } from '@dpfed/coordinator/strategies/fedavg';
import type { ClientUpdate, FitConfig, RoundMetrics } from '@dpfed/coordinator/strategy';
import type { EvaluationTotals } from '@dpfed/privacy/evaluation-vector';
import { LocalTrainer } from '@dpfed/client/local-trainer';
import { addHistograms, aucFromHistogram, type ScoreHistogram } from '@dpfed/privacy/auc-histogram';
import { coordinatorKeyPath, defaultKeyDir, loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { ReceiptStore } from '@dpfed/privacy/receipts';
import {
  DPFED_BIN,
  ShiftLearner,
  bankSlices,
  cleanUp,
  expectedFedAvg,
  makeInstitution,
  maxAbsDifference,
  recordRounds,
  runConfig,
  start,
  startTestCoordinator,
  enrol,
  testPki,
  tempDir,
  tfjsInstitution,
  wasmTf,
  within,
  writeBankCsv,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

let dir: string | undefined;
let coordinator: Coordinator | undefined;
let institutions: TestInstitution[] = [];
const children: ChildProcess[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await cleanUp({ institutions, coordinators: [coordinator], dir });
  institutions = [];
  coordinator = undefined;
  dir = undefined;
});

describe('federation over real gRPC', () => {
  it('3 clients, 3 rounds, privacy off: every round committed with 3 participants, AUC beats the initial model', async () => {
    dir = tempDir('dpfed-federation-');
    const config = runConfig(['--rounds', '3', '--min-clients', '3', '--privacy', 'off', '--aggregation', 'plain', '--round-timeout', '30', '--phase-timeout', '30']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 2500 });
    for (let k = 0; k < 3; k++) institutions.push(await tfjsInstitution({ id: `bank-${k + 1}`, address, data: slices[k] }));

    const results = await within(start(institutions), 90_000, 'the clients to finish');
    await coordinator.finished;
    expect(results.map((r) => [r.roundsTrained, r.roundsEvaluated, r.doneMessage])).toEqual(Array(3).fill([3, 3, 'run complete']));
    expect(seen.failures).toEqual([]);

    const { store, runId } = coordinator;
    const rounds = store.rounds(runId);
    expect(rounds.map((r) => [r.round, r.modelVersion, r.participants])).toEqual([
      [1, 1, 3],
      [2, 2, 3],
      [3, 3, 3],
    ]);
    for (const r of rounds) {
      expect(store.participants(runId, r.round).map((p) => [p.institutionId, p.status])).toEqual([
        ['bank-1', 'reported'],
        ['bank-2', 'reported'],
        ['bank-3', 'reported'],
      ]);
      for (const id of ['bank-1', 'bank-2', 'bank-3']) {
        const auc = store.metric(runId, r.round, id, 'auc');
        expect(auc, `${id} AUC of round ${r.round}`).not.toBeNull();
        expect(auc!).toBeGreaterThanOrEqual(0);
        expect(auc!).toBeLessThanOrEqual(1);
        expect(store.metric(runId, r.round, id, 'eval_examples')).toBe(institutions.find((i) => i.id === id)!.validation!.n);
      }
    }
    expect(store.getRun(runId)?.status).toBe('done');

    // The initial model (version 0), scored the same way: each institution's validation histogram, summed.
    const spec = config.modelSpec;
    const initial = store.model(runId, 0)!.parameters;
    const trainer = new LocalTrainer(await wasmTf(), spec);
    let summed: ScoreHistogram | null = null;
    for (const i of institutions) {
      const h = trainer.evaluate(initial, i.validation!, config.task.evaluation).histogram;
      summed = summed ? addHistograms(summed, h) : h;
    }
    trainer.dispose();
    const initialAuc = aucFromHistogram(summed!);
    const finalAuc = rounds[2].auc!;
    expect(finalAuc).toBe(seen.rounds[2].auc);
    expect(finalAuc).toBeGreaterThan(initialAuc);
    expect(finalAuc).toBeGreaterThan(0.85);
    // the global AUC is the one of the summed histograms, which the round summary also reports per institution
    expect(seen.rounds[2].institutions.map((i) => i.id)).toEqual(['bank-1', 'bank-2', 'bank-3']);
  });

  it("an operator's own strategy: the round loop calls its configure, aggregate and evaluate hooks, and commits what they return", async () => {
    const calls: string[] = [];
    class AuditedFedAvg extends FedAvgStrategy {
      override readonly name = 'audited-fedavg';
      override configureFit(round: number): FitConfig {
        calls.push(`configure ${round}`);
        return { proximalMu: 0.5 };
      }
      override aggregateFit(round: number, global: Float32Array, updates: readonly ClientUpdate[]): Float32Array {
        calls.push(`aggregate ${round}`);
        return super.aggregateFit(round, global, updates);
      }
      override aggregateFitFromSum(round: number, global: Float32Array, sum: Parameters<FedAvgStrategy['aggregateFitFromSum']>[2]): Float32Array {
        calls.push(`aggregate ${round}`);
        return super.aggregateFitFromSum(round, global, sum);
      }
      override evaluate(round: number, totals: EvaluationTotals): RoundMetrics {
        calls.push(`evaluate ${round} over ${totals.n} examples`);
        return { ...super.evaluate(round, totals), auc: 0.5 + round / 100 };
      }
    }
    dir = tempDir('dpfed-own-strategy-');
    const config = runConfig(['--rounds', '2', '--min-clients', '2', '--privacy', 'off', '--aggregation', 'plain', '--model', 'logistic', '--round-timeout', '30', '--phase-timeout', '30']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, strategy: new AuditedFedAvg() });
    const address = `127.0.0.1:${coordinator.port}`;
    const clients = [
      { shift: 0.25, weight: 10 },
      { shift: -0.5, weight: 30 },
    ];
    const mus: number[] = [];
    institutions = clients.map((c, k) => {
      const learner = new ShiftLearner(c.shift, c.weight);
      const train = learner.train.bind(learner);
      learner.train = async (global, task, noise) => (mus.push(task.config.proximalMu), train(global, task, noise));
      return makeInstitution({ id: `bank-${k + 1}`, address, learner });
    });
    await within(start(institutions), 30_000, 'the clients to finish');
    await coordinator.finished;
    expect(calls).toEqual(['configure 1', 'aggregate 1', 'evaluate 1 over 50 examples', 'configure 2', 'aggregate 2', 'evaluate 2 over 50 examples']);
    expect(mus).toEqual([0.5, 0.5, 0.5, 0.5]);
    const { store, runId } = coordinator;
    for (const round of [1, 2]) {
      expect(store.metric(runId, round, '', 'auc')).toBeCloseTo(0.5 + round / 100, 12);
      expect(maxAbsDifference(store.model(runId, round)!.parameters, expectedFedAvg(store.model(runId, round - 1)!.parameters, clients))).toBe(0);
    }
  });

  it("record-level DP: rounds commit, every institution's signed events are in the coordinator's ledger and it verifies", async () => {
    dir = tempDir('dpfed-federation-dp-');
    const dbPath = join(dir, 'coordinator.sqlite');
    const config = runConfig(['--rounds', '2', '--min-clients', '3', '--privacy', 'record', '--epsilon', '3', '--delta', '1e-5', '--round-timeout', '30']);
    coordinator = await startTestCoordinator({ dbPath, config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 1500, seed: 'dp' });
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      institutions.push(await tfjsInstitution({ id, address, data: slices[k], privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`), budget: { epsilon: 10, delta: 1e-5 } } }));
    }
    await within(start(institutions), 90_000, 'the clients to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);
    const { store, runId } = coordinator;
    expect(store.rounds(runId).map((r) => [r.round, r.participants])).toEqual([
      [1, 3],
      [2, 3],
    ]);

    const ledger = new PrivacyLedger(store.db); // read-only: no countersigner
    const coordinatorKey = loadOrCreateIdentity(coordinatorKeyPath(defaultKeyDir(), dbPath)).publicKey;
    expect(Buffer.from(ledger.countersignerPublicKey).equals(Buffer.from(coordinatorKey))).toBe(true);
    for (const i of institutions) {
      const events = ledger.events({ institutionId: i.id, runId });
      expect(events.map((e) => [e.event.round, e.event.mode, e.event.modelVersion])).toEqual([
        [1, 'record', 0],
        [1, 'evaluation', 1],
        [2, 'record', 1],
        [2, 'evaluation', 2],
      ]);
      for (const e of events) {
        expect(e.event.noiseMultiplier).toBeGreaterThan(0);
        expect(e.event.sampleRate).toBeGreaterThan(0);
        expect(e.event.sampleRate).toBeLessThanOrEqual(1);
        expect(e.event.steps).toBeGreaterThan(0);
        expect(e.event.clipNorm).toBe(1);
        // the noise sampler's cut tail is charged to the event's delta (privacy/discretisation-cost.ts): a
        // little above the budget's delta, far below it
        expect(e.event.delta).toBeGreaterThan(1e-5);
        expect(e.event.delta - 1e-5).toBeLessThan(1e-10);
      }
      // the institution's own ledger holds the same releases
      const ownDb = new Database(join(dir, `${i.id}.ledger.sqlite`), { readonly: true });
      const own = new PrivacyLedger(ownDb);
      expect(own.events({ institutionId: i.id }).map((e) => [e.event.round, e.event.noiseMultiplier, e.event.steps])).toEqual(
        events.map((e) => [e.event.round, e.event.noiseMultiplier, e.event.steps]),
      );
      // receipts both ways: the coordinator holds the institution's signed head after its last release; the
      // institution holds the coordinator's signed head after round 1 committed (sent with the next task); each
      // ledger verifies against the receipts the other party holds
      const held = ReceiptStore.read(store.db, { subject: i.id });
      expect(held.at(-1)).toMatchObject({ seq: own.head().seq, hash: own.head().hash, ledgerKey: Buffer.from(own.countersignerPublicKey).toString('hex') });
      expect(own.verify({ receipts: held })).toMatchObject({ ok: true });
      const fromCoordinator = ReceiptStore.read(ownDb);
      expect(fromCoordinator.length).toBeGreaterThan(0);
      expect(fromCoordinator.every((r) => r.ledgerKey === Buffer.from(coordinatorKey).toString('hex'))).toBe(true);
      expect(Math.max(...fromCoordinator.map((r) => r.seq))).toBeGreaterThanOrEqual(ledger.events({ institutionId: i.id, runId })[0].seq);
      expect(ledger.verify({ receipts: fromCoordinator })).toMatchObject({ ok: true });
      ownDb.close();
    }
    expect(ledger.verify({ countersignerPublicKey: coordinatorKey })).toMatchObject({ ok: true });
    const summary = coordinator.machine.privacySummary();
    expect(summary.map((s) => s.id).sort()).toEqual(['bank-1', 'bank-2', 'bank-3']);
    for (const s of summary) {
      expect(s.epsilon).toBeGreaterThan(0);
      expect(s.epsilon).toBeLessThanOrEqual(3 + 1e-9);
    }
  });

  it('a client process killed mid-round: the round closes once its Session stream is gone (not at the deadline) and commits with the other two; the killed one is "dropped"', async () => {
    dir = tempDir('dpfed-federation-kill-');
    // The first round waits for all three banks (a bank process can start slowly on a loaded machine);
    // later rounds need two.
    const config = runConfig(['--rounds', '4', '--min-clients', '2', '--wait-for', '3', '--privacy', 'off', '--round-timeout', '6', '--phase-timeout', '6']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, livenessMs: 1_500 });
    const seen = recordRounds(coordinator);
    const pki = await testPki();
    const slices = bankSlices(3, { rowsPerBank: 2000, seed: 'kill' });
    const logs: string[] = [];
    const banks = ['bank-1', 'bank-2', 'bank-3'];
    const exits = banks.map((id, k) => {
      const csv = join(dir!, `${id}.csv`);
      writeBankCsv(csv, slices[k]);
      // the operator enrols each bank's identity key; each bank connects with its own certificate
      const identityPath = join(dir!, `${id}.identity`);
      enrol(coordinator!, id, loadOrCreateIdentity(identityPath).publicKey);
      const child = spawn(
        process.execPath,
        [
          DPFED_BIN,
          'client',
          '--coordinator',
          `127.0.0.1:${coordinator!.port}`,
          '--institution',
          id,
          '--data',
          csv,
          '--label-column',
          'label',
          '--backend',
          'wasm',
          '--identity',
          identityPath,
          '--ledger',
          join(dir!, `${id}.ledger.sqlite`),
          ...pki.clientFlags(id),
        ],
        { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      child.stderr!.on('data', (d: Buffer) => logs.push(d.toString()));
      children.push(child);
      return new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    });

    // The victim's round: the first one that samples after all three banks registered (round 2 unless a
    // bank started slowly). Sampling takes every live institution, so all three are in it.
    const registered = () => (coordinator!.store.db.prepare('SELECT COUNT(*) AS n FROM institutions').get() as { n: number }).n;
    const victim = 'bank-2';
    let timer: NodeJS.Timeout | undefined;
    const killedIn = await within(
      new Promise<number>((resolve, reject) => {
        let target = 0;
        timer = setInterval(() => {
          const early = children.findIndex((c) => c.exitCode !== null || c.signalCode !== null);
          if (early >= 0) reject(new Error(`${banks[early]} exited early (${children[early].exitCode ?? children[early].signalCode})`));
          const { phase, round } = coordinator!.machine.status;
          if (target === 0 && registered() === 3) target = Math.max(2, phase === 'waiting' || phase === 'starting' ? round : round + 1);
          if (target > 0 && round === target && phase === 'training') {
            children[1].kill('SIGKILL');
            resolve(round);
          }
        }, 2);
      }),
      60_000,
      'the victim round to start training',
    )
      .catch((error: Error) => {
        throw new Error(`${error.message}; status ${JSON.stringify(coordinator!.machine.status)}, ${registered()} registered; bank logs: ${logs.join('').slice(-3000)}`);
      })
      .finally(() => clearInterval(timer));
    expect(killedIn).toBe(2);

    await within(coordinator.finished, 60_000, `the run to finish (logs: ${logs.join('').slice(-2000)})`);
    const { store, runId } = coordinator;
    expect(seen.failures).toEqual([]);
    const rounds = store.rounds(runId);
    expect(rounds.map((r) => r.round)).toEqual([1, 2, 3, 4]);
    expect(rounds[0].participants).toBe(3);
    const killedRound = rounds.find((r) => r.round === killedIn)!;
    expect(killedRound.participants).toBe(2);
    const participants = store.participants(runId, killedIn);
    expect(participants.map((p) => [p.institutionId, p.status])).toEqual([
      ['bank-1', 'reported'],
      ['bank-2', 'dropped'],
      ['bank-3', 'reported'],
    ]);
    expect(participants[1].detail).toMatch(/Session stream closed/);
    // the closed connection dropped it at once: the round did not wait for its 6 s deadline
    expect(killedRound.seconds).toBeLessThan(5.9);
    const summary = seen.rounds.find((s) => s.round === killedIn)!;
    expect(summary.dropped).toEqual([victim]);
    expect(summary.institutions.map((i) => i.id)).toEqual(['bank-1', 'bank-3']);
    // later rounds go on with the two survivors only
    for (const r of rounds.filter((x) => x.round > killedIn)) {
      expect(store.participants(runId, r.round).map((p) => p.institutionId)).toEqual(['bank-1', 'bank-3']);
    }
    const ended = await within(Promise.all(exits), 20_000, 'the surviving banks to exit');
    expect(ended[1].signal).toBe('SIGKILL');
    expect([ended[0].code, ended[2].code]).toEqual([0, 0]);
  });
});
