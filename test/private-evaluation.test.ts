// Private evaluation end to end over real gRPC on 127.0.0.1 (record-level DP, TfjsLearner institutions,
// real SQLite ledgers): a coordinator that sends a "model" equal to one feature and asks for almost no
// noise gets that feature's histograms back only under the noise each institution's own plan requires,
// recorded in both ledgers; under SecAgg with --evaluate-every the skipped round commits without AUC and
// the evaluated one carries auc_stderr and an evaluation event per institution in both ledgers.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import type { ResultSink, RoundSummary } from '@dpfed/coordinator/round-machine';
import { FedAvgStrategy } from '@dpfed/coordinator/strategies/fedavg';
import type { EvaluationDecision } from '@dpfed/client/client-privacy';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import type { TaskContext } from '@dpfed/client/learner';
import { generateIdentity } from '@dpfed/privacy/identity';
import { calibrateEvaluationSigma, DEFAULT_EVALUATION_EPSILON_SHARE } from '@dpfed/privacy/evaluation-mechanism';
import { decodeNoisyHistograms } from '@dpfed/privacy/evaluation-vector';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { parameterCount, parameterShapes } from '@dpfed/proto/model-spec';
import type { NamedTensor } from '@dpfed/proto/tensor-stream';
import { bankSlices, cleanUp, recordRounds, runConfig, start, startTestCoordinator, tempDir, tfjsInstitution, within, type TestInstitution } from './helpers/federation-fixture.ts';

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

/** Column V14 of the card-fraud data (Time is column 0): a strong fraud signal. */
const FEATURE = 14;

/** A coordinator's strategy that, whatever the updates, makes the candidate score every row by one feature. */
class FeatureProbe extends FedAvgStrategy {
  constructor(private readonly probe: Float32Array) {
    super();
  }

  override aggregateFit(): Float32Array {
    return new Float32Array(this.probe);
  }

  override aggregateFitFromSum(): Float32Array {
    return new Float32Array(this.probe);
  }
}

/** Observes, at the coordinator, the tensors of every evaluation result as they arrive. */
function captureEvaluations(c: Coordinator): Map<string, Uint32Array> {
  const captured = new Map<string, Uint32Array>();
  const machine = c.machine;
  const open = machine.openResult.bind(machine);
  machine.openResult = (institution, header): ResultSink => {
    const sink = open(institution, header);
    if (header.kind !== 'EVALUATE_RESULT') return sink;
    return {
      ...sink,
      finish: (tensors: NamedTensor[]) => {
        const [positive, negative] = tensors.map((t) => t.data as Uint32Array);
        const vector = new Uint32Array(positive.length + negative.length);
        vector.set(positive, 0);
        vector.set(negative, positive.length);
        captured.set(institution.id, vector);
        sink.finish(tensors);
      },
    };
  };
  return captured;
}

function ledgerEvents(path: string, id: string): { round: number; mode: string; noiseMultiplier: number; modelVersion: number }[] {
  const db = new Database(path, { readonly: true });
  try {
    return new PrivacyLedger(db).events({ institutionId: id }).map((r) => ({ round: r.event.round, mode: r.event.mode, noiseMultiplier: r.event.noiseMultiplier, modelVersion: r.event.modelVersion }));
  } finally {
    db.close();
  }
}

describe('private evaluation over real gRPC', () => {
  it("a feature-as-model candidate with a request for almost no noise: each institution adds its own plan's noise, records it in both ledgers, and the coordinator keeps no exact figure", async () => {
    dir = tempDir('dpfed-private-eval-probe-');
    const dbPath = join(dir, 'coordinator.sqlite');
    const config = runConfig([
      '--rounds',
      '1',
      '--min-clients',
      '3',
      '--privacy',
      'record',
      '--epsilon',
      '3',
      '--delta',
      String(DELTA),
      '--model',
      'logistic',
      '--round-timeout',
      '60',
      '--phase-timeout',
      '30',
    ]);
    expect(config.task.aggregation).toBe('plain');
    expect(config.task.evaluation.bins).toBe(32);
    config.task.evaluation.private!.noiseSigma = 1; // the coordinator asks for far less noise than any plan needs
    const probe = new Float32Array(parameterCount(config.modelSpec));
    expect(parameterShapes(config.modelSpec)[0]).toEqual({ name: 'dense_0/kernel', shape: [30, 1] });
    probe[FEATURE] = 1; // logit = the row's (standardised) feature value
    coordinator = await startTestCoordinator({ dbPath, config, strategy: new FeatureProbe(probe) });
    const seen = recordRounds(coordinator);
    const captured = captureEvaluations(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 1200, seed: 'private-eval-probe' });
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      institutions.push(await tfjsInstitution({ id, address, data: slices[k], privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`), budget: { epsilon: 3, delta: DELTA } } }));
    }
    await within(start(institutions), 90_000, 'the clients to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);
    const summary: RoundSummary = seen.rounds[0];
    expect(summary.evaluated).toBe(true);

    const required = calibrateEvaluationSigma({ epsilon: DEFAULT_EVALUATION_EPSILON_SHARE * 3, delta: DELTA, evaluations: 1 });
    expect(required).toBeGreaterThan(4); // the whole share on one evaluation: still several counts of noise per cell
    const task: TaskContext = { runId: coordinator.runId, round: 1, modelVersion: 1, spec: config.modelSpec, config: { ...config.task, strategy: 'fedavg', proximalMu: 0, seed: '1' } };
    const coordinatorLedger = new PrivacyLedger(coordinator.store.db);
    for (const institution of institutions) {
      expect(
        institution.logs.some((l) => /asked for noise 1\.000; this institution's plan requires/.test(l)),
        `${institution.id} says it overrode the request`,
      ).toBe(true);
      expect(institution.logs.some((l) => /round 1 global model on my validation rows \(stays here\): AUC/.test(l))).toBe(true);
      // what arrived at the coordinator: the feature's exact per-class histogram plus noise of the planned σ
      const exact = (await institution.learner.evaluate(probe, task)).histogram;
      const released = decodeNoisyHistograms(captured.get(institution.id)!, 32, 16);
      let squares = 0;
      for (let i = 0; i < 32; i++) squares += (released.positive[i] - exact.positive[i]) ** 2 + (released.negative[i] - exact.negative[i]) ** 2;
      const std = Math.sqrt(squares / 64);
      expect(std, `${institution.id}: noise in what the coordinator received`).toBeGreaterThan(0.7 * required);
      expect(std).toBeLessThan(1.35 * required);
      // the evaluation event, recorded by the institution and countersigned into the coordinator's ledger
      const own = ledgerEvents(join(dir, `${institution.id}.ledger.sqlite`), institution.id);
      expect(own.map((e) => [e.round, e.mode, e.modelVersion])).toEqual([
        [1, 'record', 0],
        [1, 'evaluation', 1],
      ]);
      expect(own[1].noiseMultiplier).toBeCloseTo(required, 9);
      const held = coordinatorLedger.events({ institutionId: institution.id }).map((r) => [r.event.round, r.event.mode, r.event.noiseMultiplier]);
      expect(held).toEqual(own.map((e) => [e.round, e.mode, e.noiseMultiplier]));
    }
    expect(coordinatorLedger.verify().ok).toBe(true);
    // the run's figures come from the noisy sum only, with their error; no per-institution evaluation is kept
    expect(summary.aucStderr).toBeGreaterThan(0);
    expect(summary.aucStderr).toBeLessThan(0.5);
    expect(summary.institutions).toEqual([]);
    expect(coordinator.store.metric(coordinator.runId, 1, '', 'auc_stderr')).toBeCloseTo(summary.aucStderr!, 12);
    const perInstitution = coordinator.store.db.prepare("SELECT COUNT(*) AS n FROM metrics WHERE institution_id != '' AND (name = 'auc' OR name LIKE 'eval_%')").get() as { n: number };
    expect(perInstitution.n).toBe(0);
  });

  it('secagg with --evaluate-every 2: round 1 commits without AUC and spends nothing on evaluation; round 2 has AUC ± auc_stderr and an evaluation event per institution in both ledgers', async () => {
    dir = tempDir('dpfed-private-eval-secagg-');
    const dbPath = join(dir, 'coordinator.sqlite');
    const config = runConfig([
      '--rounds',
      '2',
      '--evaluate-every',
      '2',
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
      '--round-timeout',
      '60',
      '--phase-timeout',
      '30',
    ]);
    coordinator = await startTestCoordinator({ dbPath, config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 1200, seed: 'private-eval-secagg' });
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      institutions.push(await tfjsInstitution({ id, address, data: slices[k], privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`), budget: { epsilon: 3, delta: DELTA } } }));
    }
    const results = await within(start(institutions), 120_000, 'the clients to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);
    expect(results.map((r) => r.roundsEvaluated)).toEqual([1, 1, 1]);
    const [first, second] = seen.rounds;
    expect(first).toMatchObject({ round: 1, evaluated: false });
    expect(first.auc).toBeNaN();
    expect(first.aucStderr).toBeUndefined();
    expect(second).toMatchObject({ round: 2, evaluated: true });
    expect(second.auc).toBeGreaterThan(0);
    expect(second.auc).toBeLessThanOrEqual(1);
    expect(second.aucStderr).toBeGreaterThan(0);
    const metricRows = (round: number) =>
      (coordinator!.store.db.prepare("SELECT name FROM metrics WHERE round = ? AND institution_id = '' ORDER BY name").all(round) as { name: string }[]).map((r) => r.name);
    expect(metricRows(1)).not.toContain('auc');
    expect(metricRows(2)).toEqual(expect.arrayContaining(['accuracy', 'auc', 'auc_stderr', 'eval_examples', 'loss']));
    expect(coordinator.store.participants(coordinator.runId, 1).every((p) => p.status === 'reported' && !/no evaluation/.test(p.detail))).toBe(true);

    // one planned evaluation over the run: the whole evaluation share on it, relied upon over t shares
    const required = calibrateEvaluationSigma({ epsilon: DEFAULT_EVALUATION_EPSILON_SHARE * 3, delta: DELTA, evaluations: 1 });
    const coordinatorLedger = new PrivacyLedger(coordinator.store.db);
    for (const institution of institutions) {
      const own = ledgerEvents(join(dir, `${institution.id}.ledger.sqlite`), institution.id);
      expect(own.map((e) => [e.round, e.mode])).toEqual([
        [1, 'record'],
        [2, 'record'],
        [2, 'evaluation'],
      ]);
      expect(own[2].noiseMultiplier).toBeGreaterThanOrEqual(required);
      expect(own[2].noiseMultiplier).toBeLessThan(required * 1.02);
      expect(institution.logs.some((l) => /round 2: evaluation released with noise .* \(a share; \d+ shares relied upon\)/.test(l))).toBe(true);
      expect(coordinatorLedger.events({ institutionId: institution.id }).map((r) => [r.event.round, r.event.mode, r.event.noiseMultiplier])).toEqual(
        own.map((e) => [e.round, e.mode, e.noiseMultiplier]),
      );
      expect(institution.privacy!.spent().epsilon).toBeLessThanOrEqual(3 + 1e-9);
    }
    expect(coordinatorLedger.verify().ok).toBe(true);
  });

  it('an institution whose released cells go lower than any count plus its recorded noise can, is refused naming tensor.data; the round commits with the others', async () => {
    dir = tempDir('dpfed-private-eval-floor-');
    const config = runConfig([
      '--rounds',
      '1',
      '--min-clients',
      '3',
      '--wait-for',
      '4',
      '--privacy',
      'record',
      '--epsilon',
      '3',
      '--delta',
      String(DELTA),
      '--model',
      'logistic',
      '--round-timeout',
      '60',
      '--phase-timeout',
      '30',
    ]);
    expect(config.task.aggregation).toBe('plain');
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(4, { rowsPerBank: 800, seed: 'private-eval-floor' });
    const budget = { epsilon: 3, delta: DELTA };
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      institutions.push(await tfjsInstitution({ id, address, data: slices[k], privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`), budget } }));
    }
    // bank-4 records the planned noise in its ledger but releases cells 10^5 times noisier than that
    const identity = generateIdentity();
    const liar = new NoisierThanRecorded({ institutionId: 'bank-4', identity, budget, ledgerPath: join(dir, 'bank-4.ledger.sqlite') });
    institutions.push(await tfjsInstitution({ id: 'bank-4', address, identity, data: slices[3], privacy: liar }));
    await within(start(institutions), 90_000, 'the clients to finish');
    await coordinator.finished;
    expect(seen.failures).toEqual([]);
    const liarLogs = institutions[3].logs.join('\n');
    expect(liarLogs).toMatch(/refused by the coordinator: tensor\.data: "histogram\/(positive|negative)" cell \d+ is -?\d+(\.\d+)?, below -\d+/);
    const summary: RoundSummary = seen.rounds[0];
    expect(summary.evaluated).toBe(true);
    expect(Number.isFinite(summary.auc)).toBe(true);
  }, 120_000);

  it('under a privacy mode an institution refuses an exact evaluation task (a coordinator configured without the mechanism), and client-level DP evaluates nothing at the institutions', async () => {
    dir = tempDir('dpfed-private-eval-exact-refused-');
    const config = runConfig(['--rounds', '1', '--min-clients', '3', '--privacy', 'record', '--epsilon', '3', '--delta', String(DELTA), '--model', 'logistic', '--phase-timeout', '10']);
    delete config.task.evaluation.private; // a coordinator that asks for exact histograms under record-level DP
    config.task.evaluation.bins = 1024;
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    const seen = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    const slices = bankSlices(3, { rowsPerBank: 600, seed: 'exact-refused' });
    for (let k = 0; k < 3; k++) {
      const id = `bank-${k + 1}`;
      institutions.push(await tfjsInstitution({ id, address, data: slices[k], privacy: { ledgerPath: join(dir, `${id}.ledger.sqlite`), budget: { epsilon: 3, delta: DELTA } } }));
    }
    await within(start(institutions), 90_000, 'the clients to finish');
    await coordinator.finished;
    for (const institution of institutions) {
      expect(institution.logs.join('\n')).toMatch(/declining \(privacy\): round 1: exact evaluation under privacy record would release validation figures without noise/);
    }
    expect(seen.rounds[0].institutions).toEqual([]); // nothing per institution reached the coordinator

    const client = runConfig(['--rounds', '1', '--privacy', 'client', '--aggregation', 'secagg']);
    expect(client.task.evaluation.none).toBe(true);
    expect(client.task.evaluation.private).toBeUndefined();
  }, 120_000);
});

/** An institution that lies about its evaluation noise: it records the planned multiplier, then adds far more (negative cells the recorded noise cannot produce). */
class NoisierThanRecorded extends InstitutionPrivacy {
  override beforeEvaluation(task: TaskContext, o: { requested: number; secure?: { threshold: number } }): EvaluationDecision {
    const decision = super.beforeEvaluation(task, o);
    return decision.noise ? { ...decision, noise: { ...decision.noise, sigma: decision.noise.sigma * 1e5 } } : decision;
  }
}
