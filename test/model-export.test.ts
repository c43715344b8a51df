// A model leaves the federation as a file: a real 2-round federation (privacy off, plain aggregation) for
// a logistic model and an MLP, `dpfed model export` of its global model, the folder loaded by
// tf.loadLayersModel in a fresh node process, and its scores compared with `dpfed predict`'s and with the
// coordinator's own parameters through client-sdk/mlp-network.ts. Then `dpfed evaluate`, and the CLI's
// refusals (exit 2 naming the flag).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { averagePrecision, logLoss, rocAuc } from '@dpfed/client/classification-metrics';
import { MlpNetwork } from '@dpfed/client/mlp-network';
import { loadModel, predict } from '@dpfed/client/model-file';
import { CoordinatorStore } from '@dpfed/coordinator/coordinator-store';
import { compileSchema, mapFeature } from '@dpfed/proto/data-schema';
import { parseModelSpec } from '@dpfed/proto/model-spec';
import {
  bankSlices,
  bankCsvText,
  cleanUp,
  DPFED_BIN,
  FRAUD_SCHEMA,
  fraudSchemaOf,
  ROOT,
  roundCommitted,
  runConfig,
  start,
  startTestCoordinator,
  tempDir,
  tfjsInstitution,
  wasmTf,
  within,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

const TOLERANCE = 1e-5;

/** Runs a process without blocking this worker's event loop (vitest's own messages keep flowing). */
function run(args: string[], cwd = ROOT): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function dpfed(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run([DPFED_BIN, ...args]);
}

/** The CSV's rows mapped by the schema, written out here from proto/data-schema.ts's per-column maps. */
function schemaInputs(csvText: string): { x: Float32Array; rows: number; labels: number[] } {
  const schema = fraudSchemaOf();
  const { maps, featureIndex, labelIndex } = compileSchema(schema);
  const [header, ...rows] = parse(csvText, { skip_empty_lines: true }) as string[][];
  expect(header).toEqual(schema.columns.map((c) => c.name));
  const dim = maps.length;
  const x = new Float32Array(rows.length * dim);
  rows.forEach((row, r) =>
    row.forEach((cell, i) => {
      if (featureIndex[i] >= 0) x[r * dim + featureIndex[i]] = mapFeature(maps[featureIndex[i]], cell === '' ? Number.NaN : Number(cell));
    }),
  );
  return { x, rows: rows.length, labels: rows.map((row) => Number(row[labelIndex])) };
}

/** Loads model.json + weights from disk with tfjs's own loader in a new node process; prints the scores. */
const CHILD = `
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
const [dir, inputsPath] = process.argv.slice(1);
const fileHandler = {
  async load() {
    const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
    const group = json.weightsManifest[0];
    const bytes = readFileSync(join(dir, group.paths[0]));
    return { modelTopology: json.modelTopology, format: json.format, generatedBy: json.generatedBy, weightSpecs: group.weights,
      weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) };
  },
};
await tf.setBackend('cpu');
const model = await tf.loadLayersModel(fileHandler);
const { x, rows, dim } = JSON.parse(readFileSync(inputsPath, 'utf8'));
const scores = model.predict(tf.tensor2d(x, [rows, dim])).dataSync();
process.stdout.write(JSON.stringify({ layers: model.layers.map((l) => l.name), scores: Array.from(scores) }));
`;

interface Federation {
  name: string;
  dir: string;
  db: string;
  runId: string;
}

const root = tempDir('dpfed-model-export-');
const slices = bankSlices(4, { rowsPerBank: 700, seed: 'model-export' });
const testCsvText = bankCsvText(slices[3]);
const testCsv = join(root, 'test.csv');
const federations: Federation[] = [];

async function federate(name: string, model: string): Promise<Federation> {
  const dir = join(root, name);
  mkdirSync(dir);
  const db = join(dir, 'coordinator.sqlite');
  const config = runConfig(['--rounds', '2', '--min-clients', '3', '--privacy', 'off', '--aggregation', 'plain', '--model', model, '--round-timeout', '60', '--phase-timeout', '60']);
  const coordinator = await startTestCoordinator({ dbPath: db, config });
  const address = `127.0.0.1:${coordinator.port}`;
  const institutions: TestInstitution[] = [];
  try {
    for (let k = 0; k < 3; k++) institutions.push(await tfjsInstitution({ id: `bank-${k + 1}`, address, data: slices[k], seed: `${name}-${k}` }));
    const second = roundCommitted(coordinator, 2);
    void start(institutions).catch(() => undefined);
    await within(second, 150_000, `${name}: round 2`);
    return { name, dir, db, runId: coordinator.runId };
  } finally {
    await cleanUp({ institutions, coordinators: [coordinator] });
  }
}

beforeAll(async () => {
  writeFileSync(testCsv, testCsvText);
  federations.push(await federate('logistic', 'logistic'));
  federations.push(await federate('mlp', 'mlp:16,8:tanh'));
}, 400_000);

afterAll(() => cleanUp({ dir: root }));

describe.each(['logistic', 'mlp'])('%s: export, load elsewhere, predict', (name) => {
  const fed = () => federations.find((f) => f.name === name)!;

  it('the Layers model in a fresh process, dpfed predict and the stored parameters through MlpNetwork agree within 1e-5', async () => {
    const { db, dir, runId } = fed();
    const out = join(dir, 'model-last');
    const exported = await dpfed('model', 'export', '--db', db, '--round', 'last', '--schema', FRAUD_SCHEMA, '--out', out, '--json');
    expect(exported.stderr).toBe('');
    expect(exported.code).toBe(0);
    const card = JSON.parse(exported.stdout);
    expect(card).toMatchObject({ runId, round: 2, modelVersion: 2, roundSelection: 'last', strategy: 'fedavg', aggregation: 'plain', privacy: { mode: 'off' }, epsilon: [] });
    expect(readdirSync(out).sort()).toEqual(['SHA256SUMS', 'model-card.json', 'model.json', 'preprocessing.json', 'weights.bin']);

    // SHA256SUMS holds each file's hash, as sha256sum would compute it.
    const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split('  '));
    expect(sums.map(([, f]) => f)).toEqual(['model.json', 'weights.bin', 'preprocessing.json', 'model-card.json']);
    for (const [hash, file] of sums)
      expect(
        createHash('sha256')
          .update(readFileSync(join(out, file)))
          .digest('hex'),
      ).toBe(hash);

    // The card's recorded metrics are the store's.
    const store = new CoordinatorStore(db);
    const spec = parseModelSpec(store.getRun(runId)!.modelSpecJson);
    expect(card.metrics.auc).toBe(store.metric(runId, 2, '', 'auc'));
    const parameters = store.model(runId, 2)!.parameters;
    store.close();
    expect(card.modelSpec).toEqual(spec);

    // The coordinator's own forward pass over the stored parameters.
    const { x, rows } = schemaInputs(testCsvText);
    const tf = await wasmTf();
    const network = new MlpNetwork(tf, spec, parameters);
    const input = tf.tensor2d(x, [rows, spec.inputDim]);
    const own = network.scores(input).dataSync() as Float32Array;
    input.dispose();
    network.dispose();

    // A new node process: only @tensorflow/tfjs, model.json and the weights file.
    const inputsPath = join(dir, 'inputs.json');
    writeFileSync(inputsPath, JSON.stringify({ x: Array.from(x), rows, dim: spec.inputDim }));
    const child = await run(['--input-type=module', '-e', CHILD, out, inputsPath]);
    expect(child.code, child.stderr).toBe(0);
    const fresh = JSON.parse(child.stdout) as { layers: string[]; scores: number[] };
    expect(fresh.layers).toEqual(spec.hidden.map((_, i) => `dense_${i}`).concat(`dense_${spec.hidden.length}`));

    // dpfed predict on the raw CSV.
    const scoresPath = join(dir, 'scores.csv');
    const predicted = await dpfed('predict', '--model', out, '--data', testCsv, '--out', scoresPath);
    expect(predicted.code, predicted.stderr).toBe(0);
    const [head, ...lines] = readFileSync(scoresPath, 'utf8').trim().split('\n');
    expect(head).toBe('score');
    const cli = lines.map(Number);

    expect(fresh.scores).toHaveLength(rows);
    expect(cli).toHaveLength(rows);
    let spread = 0;
    for (let i = 0; i < rows; i++) {
      expect(Math.abs(fresh.scores[i] - own[i])).toBeLessThanOrEqual(TOLERANCE);
      expect(Math.abs(cli[i] - own[i])).toBeLessThanOrEqual(TOLERANCE);
      spread = Math.max(spread, Math.abs(own[i] - own[0]));
    }
    expect(spread).toBeGreaterThan(1e-3); // the scores depend on the row: a constant model would prove nothing

    // The SDK: loadModel verifies the hashes; predict() takes raw rows by name.
    const model = await loadModel(out);
    expect(model.card.modelHash).toBe(card.modelHash);
    const [firstRaw] = parse(testCsvText, { columns: true, to: 1, cast: (v, ctx) => (ctx.header ? v : Number(v)) }) as Record<string, number>[];
    expect(Math.abs(predict(model, [firstRaw])[0] - own[0])).toBeLessThanOrEqual(TOLERANCE);

    // dpfed evaluate: the exact metrics of these scores.
    const evaluated = await dpfed('evaluate', '--model', out, '--data', testCsv, '--label-column', 'label', '--threshold', '0.3', '--json');
    expect(evaluated.code, evaluated.stderr).toBe(0);
    const report = JSON.parse(evaluated.stdout);
    const { labels } = schemaInputs(testCsvText);
    const positives = labels.filter((l) => l === 1).length;
    expect(report).toMatchObject({ rows, positives, negatives: rows - positives, threshold: 0.3 });
    expect(report.auc).toBeCloseTo(rocAuc(own, labels)!, 4);
    expect(report.prAuc).toBeCloseTo(averagePrecision(own, labels)!, 4);
    expect(report.logLoss).toBeCloseTo(logLoss(own, labels), 4);
    expect(report.auc).toBeGreaterThan(0.8); // two rounds on card fraud already separate the classes
    expect(report.calibration.bins.reduce((n: number, b: { count: number }) => n + b.count, 0)).toBe(rows);
  }, 120_000);

  it('--round best takes the round with the highest recorded global AUC and says so', async () => {
    const { db, dir, runId } = fed();
    const store = new CoordinatorStore(db);
    const rounds = store.rounds(runId);
    store.close();
    const best = rounds.reduce((a, b) => (b.auc! >= a.auc! ? b : a));
    const out = join(dir, 'model-best');
    const r = await dpfed('model', 'export', '--db', db, '--run', runId, '--round', 'best', '--schema', FRAUD_SCHEMA, '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const card = JSON.parse(r.stdout);
    expect(card.round).toBe(best.round);
    expect(card.metrics.auc).toBe(best.auc);
    expect(card.roundSelectionNote).toMatch(/highest recorded global AUC/);
  }, 60_000);
});

describe('CLI contracts', () => {
  const fed = () => federations[0];
  const model = () => join(fed().dir, 'model-contracts');

  beforeAll(async () => {
    const r = await dpfed('model', 'export', '--db', fed().db, '--round', '1', '--schema', FRAUD_SCHEMA, '--out', model());
    expect(r.code, r.stderr).toBe(0);
  }, 60_000);

  it('bad flags exit 2 naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['model', 'export', '--db', fed().db, '--round', '0', '--out', join(root, 'x')], /--round/],
      [['model', 'export', '--db', fed().db, '--out', join(root, 'x'), '--colour', 'red'], /--colour/],
      [['model', 'export', '--db', fed().db], /--out is required/],
      [['model', 'export', '--db', fed().db, '--round', '9', '--out', join(root, 'x')], /--round: .*no committed round 9/],
      [['model', 'export', '--db', fed().db, '--run', 'nope', '--out', join(root, 'x')], /--run: .*"nope"/],
      [['model', 'export', '--db', fed().db, '--out', model()], /--out: .*not empty/],
      [['evaluate', '--model', model(), '--data', testCsv, '--label-column', 'label', '--threshold', '2'], /--threshold: must be in \[0, 1\]/],
      [['evaluate', '--model', model(), '--data', testCsv], /--label-column is required/],
      [['predict', '--model', model(), '--data', join(root, 'absent.csv'), '--out', join(root, 's.csv')], /--data: no such file/],
    ];
    for (const [args, message] of cases) {
      const r = await dpfed(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(existsSync(join(root, 'x'))).toBe(false);
  }, 120_000);

  it('a missing model folder, a damaged one and a file that is not a dpfed database are refused', async () => {
    const missing = await dpfed('predict', '--model', join(root, 'no-such-model'), '--data', testCsv, '--out', join(root, 's.csv'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--model: no such folder/);

    const damaged = join(root, 'damaged');
    const copy = await dpfed('model', 'export', '--db', fed().db, '--schema', FRAUD_SCHEMA, '--out', damaged);
    expect(copy.code, copy.stderr).toBe(0);
    const weights = readFileSync(join(damaged, 'weights.bin'));
    weights[0] ^= 1;
    writeFileSync(join(damaged, 'weights.bin'), weights);
    const refused = await dpfed('predict', '--model', damaged, '--data', testCsv, '--out', join(root, 's.csv'));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--model: .*weights\.bin does not match its hash/);
    expect(existsSync(join(root, 's.csv'))).toBe(false);

    const bare = join(root, 'bare');
    expect((await dpfed('model', 'export', '--db', fed().db, '--out', bare)).code).toBe(0);
    const noSchema = await dpfed('predict', '--model', bare, '--data', testCsv, '--out', join(root, 's.csv'));
    expect(noSchema.code).toBe(2);
    expect(noSchema.stderr).toMatch(/--schema: .*exported without a data schema/);

    const other = join(root, 'other.sqlite');
    new Database(other).exec('CREATE TABLE t (x)');
    const notDpfed = await dpfed('model', 'export', '--db', other, '--out', join(root, 'y'));
    expect(notDpfed.code).toBe(2);
    expect(notDpfed.stderr).toMatch(/--db: .*not a dpfed coordinator database/);

    const empty = join(root, 'empty.sqlite');
    const store = new CoordinatorStore(empty);
    store.createRun({
      id: 'run-empty',
      createdAt: new Date().toISOString(),
      configJson: '{}',
      modelSpecJson: JSON.stringify({ kind: 'logistic', inputDim: 30, hidden: [] }),
      status: 'running',
      roundsPlanned: 2,
    });
    store.close();
    const noModel = await dpfed('model', 'export', '--db', empty, '--out', join(root, 'z'));
    expect(noModel.code).toBe(2);
    expect(noModel.stderr).toMatch(/run run-empty has no committed round/);
    expect(existsSync(join(root, 'z'))).toBe(false);
  }, 120_000);

  it('a CSV whose header does not match the preprocessing is refused naming the columns; an id column is carried', async () => {
    const [header, ...rows] = testCsvText.trim().split('\n');
    const renamed = join(root, 'renamed.csv');
    writeFileSync(renamed, [header.replace('V7,', 'V7x,'), ...rows].join('\n') + '\n');
    const r = await dpfed('predict', '--model', model(), '--data', renamed, '--out', join(root, 's.csv'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--data: .*line 1: the header does not match the model's preprocessing \(absent: "V7"; not in the model's preprocessing: "V7x"\)/);
    expect(existsSync(join(root, 's.csv'))).toBe(false);

    // Columns in another order plus an id column: the same scores, keyed by id.
    const cols = header.split(',');
    const order = [...cols.keys()].reverse();
    const shuffled = join(root, 'shuffled.csv');
    writeFileSync(
      shuffled,
      [
        ['application', ...order.map((i) => cols[i])].join(','),
        ...rows.map((row, k) => {
          const cells = row.split(',');
          return [`app-${k}`, ...order.map((i) => cells[i])].join(',');
        }),
      ].join('\n') + '\n',
    );
    const base = await dpfed('predict', '--model', model(), '--data', testCsv, '--out', join(root, 'base.csv'));
    expect(base.code, base.stderr).toBe(0);
    const keyed = await dpfed('predict', '--model', model(), '--data', shuffled, '--id-column', 'application', '--out', join(root, 'keyed.csv'));
    expect(keyed.code, keyed.stderr).toBe(0);
    const baseLines = readFileSync(join(root, 'base.csv'), 'utf8').trim().split('\n');
    const keyedLines = readFileSync(join(root, 'keyed.csv'), 'utf8').trim().split('\n');
    expect(keyedLines[0]).toBe('application,score');
    expect(keyedLines.slice(1)).toEqual(baseLines.slice(1).map((s, k) => `app-${k},${s}`));
  }, 120_000);
});

describe('dpfed coordinator --export-dir', () => {
  it('writes each committed round as a model folder the SDK loads; a bad --export-schema exits 2', async () => {
    const dir = join(root, 'export-dir');
    mkdirSync(dir);
    const csv = join(dir, 'bank.csv');
    writeFileSync(csv, bankCsvText(slices[0]));
    const identity = join(dir, 'bank-1.identity');
    const init = await dpfed('identity', 'init', '--identity', identity, '--institution', 'bank-1', '--json');
    expect(init.code, init.stderr).toBe(0);
    writeFileSync(join(dir, 'enrol.json'), JSON.stringify([{ institution: 'bank-1', publicKey: JSON.parse(init.stdout).publicKey }]));

    const bad = await dpfed('coordinator', '--insecure', '--db', join(dir, 'bad.sqlite'), '--export-dir', join(dir, 'models'), '--export-schema', join(dir, 'absent.json'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--export-schema: cannot read/);

    const exportDir = join(dir, 'models');
    const coordinator = spawn(
      process.execPath,
      [
        DPFED_BIN,
        'coordinator',
        '--insecure',
        '--port',
        '0',
        '--db',
        join(dir, 'coordinator.sqlite'),
        '--json',
        '--rounds',
        '2',
        '--min-clients',
        '1',
        '--privacy',
        'off',
        '--aggregation',
        'plain',
        '--model',
        'mlp:8',
        '--enrol-file',
        join(dir, 'enrol.json'),
        '--export-dir',
        exportDir,
        '--export-schema',
        FRAUD_SCHEMA,
        '--cross-site-evaluation',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const events: Record<string, unknown>[] = [];
    let err = '';
    coordinator.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((r) => coordinator.on('exit', (code) => r(code)));
    try {
      const port = await new Promise<number>((resolve, reject) => {
        createInterface({ input: coordinator.stdout }).on('line', (line) => {
          const event = JSON.parse(line) as Record<string, unknown>;
          events.push(event);
          if (event.event === 'listening') resolve(Number(event.port));
        });
        void exited.then((code) => reject(new Error(`coordinator exited with ${code}: ${err}`)));
      });
      const client = await run(
        [
          DPFED_BIN,
          'client',
          '--insecure',
          '--coordinator',
          `127.0.0.1:${port}`,
          '--institution',
          'bank-1',
          '--data',
          csv,
          '--schema',
          FRAUD_SCHEMA,
          '--identity',
          identity,
          '--ledger',
          join(dir, 'bank-1.ledger.sqlite'),
          '--backend',
          'wasm',
        ],
        dir,
      );
      expect(client.code, client.stderr).toBe(0);
      expect(await exited, err).toBe(0);
    } finally {
      if (coordinator.exitCode === null) coordinator.kill('SIGKILL');
    }
    const runId = String(events.find((e) => e.event === 'listening')!.runId);
    const exported = events.filter((e) => e.event === 'exported');
    // the final round is exported again once the cross-site evaluation (--cross-site-evaluation) is recorded
    expect(exported.map((e) => [e.round, e.crossSite ?? false])).toEqual([
      [1, false],
      [2, false],
      [2, true],
    ]);
    expect(readdirSync(join(exportDir, runId)).sort()).toEqual(['round-1', 'round-2']);
    const crossSite = events.find((e) => e.event === 'cross-site') as { round: number; private: boolean; institutions: { institutionId: string; status: string; auc: number; examples: number }[] };
    expect(crossSite).toMatchObject({ round: 2, private: false, institutions: [{ institutionId: 'bank-1', status: 'evaluated' }] });
    expect(crossSite.institutions[0].examples).toBeGreaterThan(0);
    expect(events.find((e) => e.event === 'done')).toMatchObject({ crossSite: { round: 2, institutions: crossSite.institutions } });
    const model = await loadModel(join(exportDir, runId, 'round-2'));
    expect(model.card).toMatchObject({ runId, round: 2, modelHash: exported[1].modelHash });
    expect(model.card.crossSite?.institutions).toEqual([
      { institution: 'bank-1', status: 'evaluated', auc: crossSite.institutions[0].auc, aucStderr: null, examples: crossSite.institutions[0].examples, noiseMultiplier: null, detail: '' },
    ]);
    expect(model.preprocessing.featureNames).toHaveLength(30);
    const store = new CoordinatorStore(join(dir, 'coordinator.sqlite'));
    const parameters = store.model(runId, 2)!.parameters;
    store.close();
    const [w] = model.network.layers[0].getWeights();
    expect(Array.from(w.dataSync())).toEqual(Array.from(parameters.subarray(0, 30 * 8)));
  }, 180_000);
});
