// The public data schema: parsing with errors that name the column and the field, the canonical hash,
// mismatch descriptions, the fixed feature maps, `dpfed schema infer|hash`, and the learner's refusal of
// a private task when its schema was inferred from the data.
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { TaskContext } from '@dpfed/client/learner';
import { SchemaRequiredError, TfjsLearner } from '@dpfed/client/tfjs-learner';
import { describeSchemaMismatch, featureMap, mapFeature, parseSchema, readSchemaFile, SchemaError, schemaHash, type DataSchema } from '@dpfed/proto/data-schema';
import { loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { bankCsvText, DPFED_BIN, FRAUD_CSV, FRAUD_SCHEMA, fraudData, prepareBank, runConfig, selectRows, startTestCoordinator, enrol, tempDir, wasmTf } from './helpers/federation-fixture.ts';

const base = () => ({
  format: 'dpfed-data-schema/1',
  columns: [
    { name: 'age', type: 'number', bounds: [18, 100] },
    { name: 'amount', type: 'number', bounds: [0, 1e6], transform: 'log1p' },
    { name: 'score', type: 'number', bounds: [-10, 10], centre: 0, scale: 2, missing: 0 },
    { name: 'label', type: 'label' },
  ] as Record<string, unknown>[],
});

function schemaError(edit: (s: ReturnType<typeof base>) => void): string {
  const s = base();
  edit(s);
  try {
    parseSchema(s, 'bank.schema.json');
  } catch (error) {
    expect(error).toBeInstanceOf(SchemaError);
    return (error as Error).message;
  }
  throw new Error('expected a SchemaError, the schema was accepted');
}

describe('parseSchema', () => {
  it('accepts the bundled card-fraud schema: Time, V1..V28, Amount (log1p), label', () => {
    const schema = readSchemaFile(FRAUD_SCHEMA);
    expect(schema.columns.map((c) => c.name)).toEqual(['Time', ...Array.from({ length: 28 }, (_, i) => `V${i + 1}`), 'Amount', 'label']);
    expect(schema.columns[30]).toEqual({ name: 'label', type: 'label' });
    expect(schema.columns[29]).toMatchObject({ name: 'Amount', transform: 'log1p' });
  });

  it('errors name the column (position and name) and the field', () => {
    expect(schemaError((s) => (s.columns[1].type = 'string'))).toBe('bank.schema.json: column 2 "amount": field "type" must be "number" or "label", got "string"');
    expect(schemaError((s) => delete s.columns[0].bounds)).toMatch(/column 1 "age": field "bounds" must be \[min, max\]/);
    expect(schemaError((s) => (s.columns[0].bounds = [5, 5]))).toMatch(/column 1 "age": field "bounds": min 5 must be below max 5/);
    expect(schemaError((s) => (s.columns[0].bounds = [0, Infinity]))).toMatch(/column 1 "age": field "bounds"/);
    expect(schemaError((s) => (s.columns[1].bounds = [-2, 10]))).toMatch(/column 2 "amount": field "bounds": log1p needs min > -1/);
    expect(schemaError((s) => (s.columns[1].transform = 'sqrt'))).toMatch(/column 2 "amount": field "transform" must be one of none, log1p/);
    expect(schemaError((s) => delete s.columns[2].scale)).toMatch(/column 3 "score": fields "centre" and "scale" go together/);
    expect(schemaError((s) => (s.columns[2].scale = 0))).toMatch(/column 3 "score": field "scale" must be a positive/);
    expect(schemaError((s) => (s.columns[2].missing = 11))).toMatch(/column 3 "score": field "missing": 11 lies outside the bounds \[-10, 10\]/);
    expect(schemaError((s) => (s.columns[0].bound = [1, 2]))).toMatch(/column 1 "age": unknown field "bound"/);
    expect(schemaError((s) => (s.columns[3].bounds = [0, 1]))).toMatch(/column 4 "label": unknown field "bounds" for a label column/);
    expect(schemaError((s) => (s.columns[1].name = 'age'))).toMatch(/column 2 "age": field "name": the column appears twice/);
    expect(schemaError((s) => (s.columns[1].name = ''))).toMatch(/column 2 "": field "name" must be a non-empty string/);
    expect(schemaError((s) => s.columns.pop())).toMatch(/exactly one column must have type "label", found 0/);
    expect(schemaError((s) => (s.columns[0] = { name: 'age', type: 'label' }))).toMatch(/found 2/);
    expect(schemaError((s) => (s.format = 'v2'))).toMatch(/"format" must be "dpfed-data-schema\/1"/);
    expect(schemaError((s) => ((s as Record<string, unknown>).label = 'label'))).toMatch(/unknown field "label"/);
  });

  it('a file that is missing or not JSON is named', () => {
    const dir = tempDir('dpfed-schema-file-');
    try {
      writeFileSync(join(dir, 'bad.json'), '{"format": ');
      expect(() => readSchemaFile(join(dir, 'bad.json'))).toThrow(/bad.json: not valid JSON/);
      expect(() => readSchemaFile(join(dir, 'none.json'))).toThrow(/cannot read .*none.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('schemaHash and describeSchemaMismatch', () => {
  const hashOf = (edit: (s: ReturnType<typeof base>) => void = () => undefined) => {
    const s = base();
    edit(s);
    return schemaHash(parseSchema(s));
  };

  it('the same preprocessing gives the same hash: field order and spelled-out defaults do not matter', () => {
    expect(hashOf()).toMatch(/^[0-9a-f]{64}$/);
    expect(hashOf((s) => (s.columns[0] = { bounds: [18, 100], type: 'number', name: 'age', transform: 'none' }))).toBe(hashOf());
    expect(hashOf((s) => (s.columns[0].bounds = [18, 100.0]))).toBe(hashOf());
  });

  it('a change of name, order, bounds, transform, centre, scale or missing value changes the hash', () => {
    const edits: ((s: ReturnType<typeof base>) => void)[] = [
      (s) => (s.columns[0].name = 'Age'),
      (s) => s.columns.reverse(),
      (s) => (s.columns[0].bounds = [18, 101]),
      (s) => (s.columns[1].transform = 'none'),
      (s) => (s.columns[2].centre = 1),
      (s) => (s.columns[2].scale = 3),
      (s) => delete s.columns[2].missing,
      (s) => s.columns.splice(1, 1),
    ];
    const hashes = new Set([hashOf(), ...edits.map(hashOf)]);
    expect(hashes.size).toBe(edits.length + 1);
  });

  it('describeSchemaMismatch is null for identical schemas and names the differing columns otherwise', () => {
    const a = parseSchema(base());
    expect(describeSchemaMismatch(a, parseSchema(base()))).toBeNull();
    const changed = base();
    changed.columns[0].bounds = [0, 120];
    changed.columns[1].name = 'amount_eur';
    changed.columns.push({ name: 'extra', type: 'number', bounds: [0, 1] });
    expect(describeSchemaMismatch(a, parseSchema(changed))).toBe(
      'column 1 "age": expected number, bounds [18, 100]; got number, bounds [0, 120]; ' + 'column 2: expected "amount", got "amount_eur"; expected 4 columns, got 5 (extra: "extra")',
    );
    const fewer = base();
    fewer.columns.splice(2, 1);
    expect(describeSchemaMismatch(a, parseSchema(fewer))).toMatch(/column 3: expected "score", got "label"; expected 4 columns, got 3 \(missing: "label"\)/);
  });

  it('a mismatch of many long-named columns stays short', () => {
    const wide = (suffix: string): DataSchema =>
      parseSchema({
        format: 'dpfed-data-schema/1',
        columns: [...Array.from({ length: 1000 }, (_, i) => ({ name: `${'f'.repeat(5000)}${i}${suffix}`, type: 'number', bounds: [0, 1] })), { name: 'label', type: 'label' }],
      });
    const message = describeSchemaMismatch(wide('a'), wide('b'))!;
    expect(message.length).toBeLessThan(2000);
    expect(message).toMatch(/and 992 more$/);
  });
});

describe('the fixed feature maps', () => {
  it('clip, transform and map by the schema alone', () => {
    const s = parseSchema(base());
    const [age, amount, score] = s.columns.slice(0, 3).map((c) => featureMap(c as never));
    expect(mapFeature(age, 18)).toBe(-1);
    expect(mapFeature(age, 100)).toBe(1);
    expect(mapFeature(age, 59)).toBeCloseTo(0, 12);
    expect(mapFeature(age, -5)).toBe(-1);
    expect(mapFeature(age, Number.NaN)).toBe(0); // the centre
    expect(mapFeature(amount, 0)).toBe(-1);
    expect(mapFeature(amount, 1e6)).toBeCloseTo(1, 12);
    expect(mapFeature(amount, Math.sqrt(1e6 + 1) - 1)).toBeCloseTo(0, 12); // halfway in log1p units
    expect(mapFeature(score, 4)).toBe(2);
    expect(mapFeature(score, 1000)).toBe(5);
    expect(mapFeature(score, Number.NaN)).toBe(0); // declared missing 0 → (0 − 0) / 2
  });
});

describe('dpfed schema', () => {
  const dir = tempDir('dpfed-schema-cli-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const run = (args: string[]) =>
    promisify(execFile)(process.execPath, [DPFED_BIN, 'schema', ...args], { cwd: dir }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('infer drafts a schema from the data with a warning, refusing to overwrite without --force', async () => {
    const out = join(dir, 'drafted.json');
    const r = await run(['infer', '--data', FRAUD_CSV, '--label-column', 'label', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/WARNING: the bounds of this schema are the minimum and maximum of the data/);
    expect(r.stderr).toMatch(/outside every privacy guarantee/);
    const drafted = readSchemaFile(out);
    expect(drafted.columns).toHaveLength(31);
    expect(drafted.columns[0]).toEqual({ name: 'Time', type: 'number', bounds: [4, 172766], transform: 'none' });
    expect(drafted.columns[29]).toMatchObject({ name: 'Amount', bounds: [0, 5627.06], transform: 'log1p' });
    expect(r.stdout).toContain(schemaHash(drafted));
    const again = await run(['infer', '--data', FRAUD_CSV, '--label-column', 'label', '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--out: .*drafted.json exists/);
    const noLabel = await run(['infer', '--data', FRAUD_CSV, '--label-column', 'fraud', '--out', join(dir, 'x.json')]);
    expect(noLabel.code).toBe(2);
    expect(noLabel.stderr).toMatch(/--data: .*label column "fraud" not found/);
  });

  it('hash prints the canonical hash; a bad schema exits 2 naming the column and the field', async () => {
    const r = await run(['hash', '--schema', FRAUD_SCHEMA, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ schemaHash: schemaHash(readSchemaFile(FRAUD_SCHEMA)), features: 30, columns: 31 });
    const bad = base();
    bad.columns[2].scale = -1;
    writeFileSync(join(dir, 'bad.json'), JSON.stringify(bad));
    const refused = await run(['hash', '--schema', join(dir, 'bad.json')]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--schema: .*bad.json: column 3 "score": field "scale" must be a positive/);
  });
});

describe('TfjsLearner and its schema', () => {
  it('exposes the schema and its hash, and refuses a private task when the schema was inferred from the data', async () => {
    const tf = await wasmTf();
    const { train, validation, schema } = await prepareBank(
      selectRows(
        fraudData(),
        Array.from({ length: 400 }, (_, i) => i),
      ),
    );
    const declared = new TfjsLearner(tf, train, validation, { schema });
    expect(declared.schemaHash).toBe(schemaHash(readSchemaFile(FRAUD_SCHEMA)));
    expect(declared.featureCount).toBe(30);
    const inferred = new TfjsLearner(tf, train, validation, { schema, schemaInferred: true });
    const config = runConfig(['--privacy', 'record', '--model', 'logistic']);
    const task = { runId: 'r', round: 1, modelVersion: 0, spec: config.modelSpec, config: { ...config.task, strategy: 'fedavg', proximalMu: 0, seed: '1' } } as TaskContext;
    expect(() => inferred.plannedMechanism(task)).toThrow(SchemaRequiredError);
    await expect(inferred.train(new Float32Array(31), task, 1)).rejects.toThrow(/privacy record: a public data schema is required \(--schema FILE\)/);
    const off = runConfig(['--privacy', 'off', '--model', 'logistic']);
    const offTask = { runId: 'r', round: 1, modelVersion: 0, spec: off.modelSpec, config: { ...off.task, strategy: 'fedavg', proximalMu: 0, seed: '1' } } as TaskContext;
    const result = await inferred.evaluate(new Float32Array(31), offTask);
    expect(result.numExamples).toBe(validation.n);
    expect(() => new TfjsLearner(tf, train, validation, { schema: parseSchema(base()) })).toThrow(/the schema declares 3 features, the training data has 30/);
  });
});

describe('dpfed client and its data flags', () => {
  const dir = tempDir('dpfed-client-data-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const client = (args: string[]) =>
    promisify(execFile)(process.execPath, [DPFED_BIN, 'client', '--institution', 'bank-a', '--backend', 'wasm', '--insecure', ...args], { cwd: dir }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
  const csv = join(dir, 'bank-a.csv');
  writeFileSync(
    csv,
    bankCsvText(
      selectRows(
        fraudData(),
        Array.from({ length: 300 }, (_, i) => i),
      ),
    ),
  );

  it('refuses a CSV whose header differs from the schema, and a --label-column the schema does not have, with exit 2', async () => {
    const renamed = join(dir, 'renamed.csv');
    writeFileSync(renamed, readFileSync(csv, 'utf8').replace('V7,', 'V7b,'));
    const header = await client(['--coordinator', '127.0.0.1:9', '--data', renamed, '--schema', FRAUD_SCHEMA]);
    expect(header.code).toBe(2);
    expect(header.stderr).toMatch(/--data: .*renamed.csv: line 1: the header does not match the schema: column 8 is "V7b", the schema has "V7"/);
    const label = await client(['--coordinator', '127.0.0.1:9', '--data', csv, '--schema', FRAUD_SCHEMA, '--label-column', 'Class']);
    expect(label.code).toBe(2);
    expect(label.stderr).toMatch(/--label-column: "Class" differs from the schema's label column "label"/);
  });

  it('without --schema, a run with privacy record is refused with exit 2 naming --schema and dpfed schema infer', async () => {
    const config = runConfig(['--rounds', '1', '--min-clients', '1', '--privacy', 'record', '--aggregation', 'plain', '--model', 'logistic']);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, insecure: true });
    // an enrolled bank, so the refusal comes from its own data settings and not from admission
    enrol(coordinator, 'bank-a', loadOrCreateIdentity(join(dir, 'bank-a.identity')).publicKey);
    try {
      const r = await client(['--coordinator', `127.0.0.1:${coordinator.port}`, '--data', csv, '--identity', join(dir, 'bank-a.identity'), '--ledger', join(dir, 'bank-a.ledger.sqlite')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--schema: this run uses privacy record: a public data schema is required \(--schema FILE\)/);
      expect(r.stderr).toMatch(/dpfed schema infer --data FILE --label-column COL --out schema.json/);
      // the split key was created beside the identity key, readable by its owner only
      expect(statSync(join(dir, 'bank-a.split-key')).mode & 0o777).toBe(0o600);
    } finally {
      await coordinator.close();
    }
  });
});
