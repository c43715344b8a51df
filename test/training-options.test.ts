// Training options of the plan: --class-weight (the per-example loss weighted before clipping, so the
// clip bound holds), --weight-decay (decoupled, in the optimiser step), --lr-schedule, and --keep best|last
// (recorded in the run; model export takes it when no round is named).
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { FlatOptimizer } from '@dpfed/client/flat-optimizer';
import { LocalTrainer } from '@dpfed/client/local-trainer';
import { MlpNetwork } from '@dpfed/client/mlp-network';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { exportModel } from '@dpfed/coordinator/model-export';
import { initialParameters, flattenParameters, modelSpecFromShorthand } from '@dpfed/proto/model-spec';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { parseTaskConfig, scheduledLearningRate } from '@dpfed/proto/task-config';
import { taskConfigMessage } from '@dpfed/proto/task-config-message';
import {
  bankSlices,
  cleanUp,
  DPFED_BIN,
  fraudData,
  writeBankCsv,
  recordRounds,
  runConfig,
  start,
  startTestCoordinator,
  tempDir,
  tfjsInstitution,
  wasmTf,
  within,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

describe('training option flags', () => {
  it('--class-weight auto balances a public --positive-rate; W weighs positives; none leaves the task unweighted', () => {
    const auto = runConfig(['--class-weight', 'auto', '--positive-rate', '0.01']).task.classWeight!;
    expect(auto.positive).toBeCloseTo(50, 12);
    expect(auto.negative).toBeCloseTo(1 / 1.98, 12);
    expect(runConfig(['--class-weight', '4']).task.classWeight).toEqual({ positive: 4, negative: 1 });
    expect(runConfig([]).task.classWeight).toBeUndefined();
    expect(() => runConfig(['--class-weight', 'auto'])).toThrow(/^--class-weight auto needs --positive-rate/);
    expect(() => runConfig(['--class-weight', 'heavy'])).toThrow(/^--class-weight: expected none, auto or a positive number/);
    expect(() => runConfig(['--positive-rate', '0.1'])).toThrow(/^--positive-rate: only used with --class-weight auto/);
    expect(() => runConfig(['--class-weight', 'auto', '--positive-rate', '1'])).toThrow(/^--positive-rate: must be in \(0, 1\)/);
  });

  it('--lr-schedule, --weight-decay and --keep reach the run; bad values are refused naming the flag', () => {
    const config = runConfig(['--rounds', '8', '--lr-schedule', 'cosine', '--weight-decay', '0.01', '--keep', 'best']);
    expect(config.task.lrSchedule).toEqual({ kind: 'cosine', rounds: 8 });
    expect(config.task.weightDecay).toBe(0.01);
    expect(config.keep).toBe('best');
    expect(runConfig(['--lr-schedule', 'step:3:0.5']).task.lrSchedule).toEqual({ kind: 'step', every: 3, gamma: 0.5 });
    expect(runConfig([]).task.lrSchedule).toBeUndefined();
    expect(runConfig([]).keep).toBe('last');
    expect(() => runConfig(['--lr-schedule', 'step:0:0.5'])).toThrow(/^--lr-schedule: step:K:G needs K >= 1/);
    expect(() => runConfig(['--lr-schedule', 'step:2:1.5'])).toThrow(/^--lr-schedule: step:K:G needs G in \(0, 1\]/);
    expect(() => runConfig(['--lr-schedule', 'linear'])).toThrow(/^--lr-schedule: expected constant, cosine or step:K:G/);
    expect(() => runConfig(['--weight-decay', '-1'])).toThrow(/^--weight-decay: must be >= 0/);
    expect(() => runConfig(['--keep', 'first'])).toThrow(/^--keep: expected one of best\|last/);
    // the task travels as a TaskConfig message and is checked on arrival
    const task = { ...config.task, strategy: 'fedavg', proximalMu: 0, seed: '1' };
    expect(parseTaskConfig(taskConfigMessage(task)).lrSchedule).toEqual({ kind: 'cosine', rounds: 8 });
    expect(() => parseTaskConfig(taskConfigMessage({ ...task, classWeight: { positive: -1, negative: 1 } }))).toThrow(/classWeight\.positive/);
    expect(() => parseTaskConfig(taskConfigMessage({ ...task, lrSchedule: { kind: 'step', every: 2, gamma: 3 } }))).toThrow(/lrSchedule\.gamma/);
  });

  it('the schedule gives each round its learning rate', () => {
    expect(scheduledLearningRate(0.1, undefined, 5)).toBe(0.1);
    expect(scheduledLearningRate(0.1, { kind: 'cosine', rounds: 4 }, 1)).toBeCloseTo(0.1, 12);
    expect(scheduledLearningRate(0.1, { kind: 'cosine', rounds: 4 }, 3)).toBeCloseTo(0.05, 12);
    expect(scheduledLearningRate(0.1, { kind: 'cosine', rounds: 4 }, 5)).toBeCloseTo(0, 12);
    expect([1, 2, 3, 4, 5].map((r) => scheduledLearningRate(0.1, { kind: 'step', every: 2, gamma: 0.5 }, r))).toEqual([0.1, 0.1, 0.05, 0.05, 0.025]);
  });
});

describe('weight decay in the optimiser step', () => {
  it.each(['sgd', 'adam'] as const)('%s: a zero gradient shrinks every parameter by (1 − lr·λ); without decay nothing moves', (kind) => {
    const params = Float32Array.from([1, -2, 0.5, 4, -0.25]);
    const zero = new Float32Array(5);
    new FlatOptimizer(kind, 0.1, 5, 0.5).apply(params, zero);
    expect(Array.from(params)).toEqual(Array.from(Float32Array.from([1, -2, 0.5, 4, -0.25].map((p) => Math.fround(0.95 * p)))));
    const still = Float32Array.from([1, -2, 0.5, 4, -0.25]);
    new FlatOptimizer(kind, 0.1, 5).apply(still, zero);
    expect(Array.from(still)).toEqual(Array.from(Float32Array.from([1, -2, 0.5, 4, -0.25])));
    expect(() => new FlatOptimizer(kind, 0.1, 5, -1)).toThrow(/weightDecay/);
  });
});

describe('class weights in the per-example loss', () => {
  const spec = modelSpecFromShorthand('mlp:8,4', 30);

  it("scale an example's gradient before clipping: unclipped it is w times the plain one, clipped it still has norm C", async () => {
    const tf = await wasmTf();
    // one example with inputs in [-1, 1], as the schema's maps produce them
    const x = Float32Array.from({ length: 30 }, (_, i) => Math.sin(i + 1));
    const y = Float32Array.of(1);
    const network = new MlpNetwork(tf, spec, flattenParameters(spec, initialParameters(spec, new SeededRandom('cw'))));
    try {
      const plain = Float32Array.from(network.step(x, y, 1, 1e9).gradient);
      const weighted = Float32Array.from(network.step(x, y, 1, 1e9, { positive: 3, negative: 1 }).gradient);
      const norm = (g: Float32Array) => Math.sqrt(g.reduce((s, v) => s + v * v, 0));
      for (let i = 0; i < plain.length; i++) expect(weighted[i]).toBeCloseTo(3 * plain[i], 5);
      // a clip norm below both: the clipped weighted gradient has norm C, as an unweighted one does
      const C = norm(plain) / 2;
      const clipped = network.step(x, y, 1, C, { positive: 3, negative: 1 }).gradient;
      expect(norm(clipped)).toBeCloseTo(C, 4);
      // negatives keep their weight
      const y0 = Float32Array.of(0);
      const negPlain = Float32Array.from(network.step(x, y0, 1, 1e9).gradient);
      const negWeighted = network.step(x, y0, 1, 1e9, { positive: 3, negative: 0.5 }).gradient;
      for (let i = 0; i < negPlain.length; i++) expect(negWeighted[i]).toBeCloseTo(0.5 * negPlain[i], 5);
    } finally {
      network.dispose();
    }
  });

  it('a DP-SGD round with class weights, weight decay and a schedule trains and reports the same mechanism', async () => {
    const tf = await wasmTf();
    const data = fraudData();
    const trainer = new LocalTrainer(tf, spec, { noiseWorker: false });
    try {
      const config = runConfig([
        '--privacy',
        'record',
        '--model',
        'mlp:8,4',
        '--local-steps',
        '5',
        '--class-weight',
        'auto',
        '--positive-rate',
        '0.04',
        '--weight-decay',
        '0.01',
        '--lr-schedule',
        'cosine',
      ]).task;
      const global = flattenParameters(spec, initialParameters(spec, new SeededRandom('dp')));
      const result = trainer.train(global, data, { config: { ...config, proximalMu: 0, seed: '1' }, noiseMultiplier: 1.1, round: 2 });
      expect(result.steps).toBe(5);
      expect(result.noiseMultiplier).toBe(1.1);
      expect(result.clipNorm).toBe(1);
      expect(result.params.some((p, i) => p !== global[i])).toBe(true);
      expect(result.params.every(Number.isFinite)).toBe(true);
    } finally {
      trainer.dispose();
    }
  });
});

describe('--keep best', () => {
  const dir = tempDir();
  const institutions: TestInstitution[] = [];
  let coordinator: Coordinator | undefined;
  afterAll(() => cleanUp({ institutions, coordinators: [coordinator], dir }));

  it('is recorded with the run, and model export then takes the round with the highest recorded global AUC', async () => {
    const config = runConfig(['--rounds', '3', '--min-clients', '2', '--local-steps', '4', '--keep', 'best']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coord.sqlite'), config });
    const { rounds } = recordRounds(coordinator);
    const address = `127.0.0.1:${coordinator.port}`;
    for (const [i, slice] of bankSlices(2, { rowsPerBank: 500 }).entries()) institutions.push(await tfjsInstitution({ id: `bank-${i + 1}`, address, data: slice }));
    await within(start(institutions), 120_000, 'the run');
    expect(rounds).toHaveLength(3);
    const stored = JSON.parse((coordinator.store.db.prepare('SELECT config_json FROM runs WHERE id = ?').get(coordinator.runId) as { config_json: string }).config_json) as { keep: string };
    expect(stored.keep).toBe('best');
    const best = rounds.reduce((a, b) => (b.auc > a.auc || (b.auc === a.auc && b.round > a.round) ? b : a));
    const exported = await exportModel({ db: coordinator.store.db, runId: coordinator.runId, outDir: join(dir, 'model'), tf: await wasmTf() });
    expect(exported.card.roundSelection).toBe('best');
    expect(exported.card.round).toBe(best.round);
    // a round named explicitly still wins
    const last = await exportModel({ db: coordinator.store.db, runId: coordinator.runId, round: 'last', outDir: join(dir, 'model-last'), tf: await wasmTf() });
    expect(last.card.round).toBe(3);
  }, 180_000);

  it('dpfed coordinator names the kept round in its done event', async () => {
    const run = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [DPFED_BIN, ...args], { timeout: 90_000 }, (error, stdout, stderr) => resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }));
      });
    const csv = join(dir, 'bank-keep.csv');
    writeBankCsv(csv, bankSlices(1, { rowsPerBank: 400, seed: 'keep-cli' })[0]);
    const identity = join(dir, 'bank-keep.identity');
    const { publicKey } = JSON.parse((await run('identity', 'init', '--identity', identity, '--json')).stdout) as { publicKey: string };
    const enrolFile = join(dir, 'enrol-keep.json');
    writeFileSync(enrolFile, JSON.stringify([{ institution: 'bank-keep', publicKey }]));
    const coordinator = spawn(
      process.execPath,
      [
        DPFED_BIN,
        'coordinator',
        '--insecure',
        '--port',
        '0',
        '--db',
        join(dir, 'keep.sqlite'),
        '--json',
        '--rounds',
        '3',
        '--min-clients',
        '1',
        '--privacy',
        'off',
        '--aggregation',
        'plain',
        '--model',
        'logistic',
        '--keep',
        'best',
        '--enrol-file',
        enrolFile,
        '--key-dir',
        join(dir, 'keys'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const events: Record<string, unknown>[] = [];
    const exited = new Promise<number | null>((resolve) => coordinator.on('exit', resolve));
    const listening = new Promise<number>((resolve) => {
      createInterface({ input: coordinator.stdout! }).on('line', (line) => {
        const event = JSON.parse(line) as Record<string, unknown>;
        events.push(event);
        if (event.event === 'listening') resolve(Number(event.port));
      });
    });
    try {
      const port = await listening;
      const client = await run(
        'client',
        '--insecure',
        '--coordinator',
        `127.0.0.1:${port}`,
        '--institution',
        'bank-keep',
        '--data',
        csv,
        '--identity',
        identity,
        '--ledger',
        join(dir, 'bank-keep.ledger.sqlite'),
      );
      expect(client.code, client.stderr).toBe(0);
      expect(await exited).toBe(0);
    } finally {
      coordinator.kill('SIGTERM');
    }
    const rounds = events.filter((e) => e.event === 'round') as { round: number; auc: number }[];
    const best = rounds.reduce((a, b) => (b.auc > a.auc || (b.auc === a.auc && b.round > a.round) ? b : a));
    expect(events.find((e) => e.event === 'done')).toMatchObject({ kept: { keep: 'best', round: best.round } });
  }, 120_000);
});
