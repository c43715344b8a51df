// An institution's CSV through the streaming loader: the header is checked against the public schema
// before any row, errors name the line and the column and quote a bounded excerpt, every value is mapped
// by the schema alone, and a 300k-row file of the card-fraud shape loads in bounded memory.
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInChildProcess } from '@dpfed/bench/client-memory-bench';
import { writeCardFraudCsv } from '@dpfed/bench/card-fraud-csv';
import { CsvError, loadInstitutionCsv, MAX_LINE_BYTES, type InstitutionData } from '@dpfed/client/csv-dataset';
import { RowSplitter, type SplitRule } from '@dpfed/client/data-split';
import { parseSchema, type DataSchema } from '@dpfed/proto/data-schema';
import { TfjsLearner } from '@dpfed/client/tfjs-learner';
import {
  cleanUp,
  FRAUD_CSV,
  fraudSchemaOf,
  makeInstitution,
  runConfig,
  start,
  startTestCoordinator,
  tempDir,
  testSplitKey,
  wasmTf,
  within,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

/** a: bounds [0, 10] → [-1, 1]; label; b: log1p of [0, e²−1] → [-1, 1], missing 0 (raw). */
const SCHEMA: DataSchema = parseSchema({
  format: 'dpfed-data-schema/1',
  columns: [
    { name: 'a', type: 'number', bounds: [0, 10] },
    { name: 'label', type: 'label' },
    { name: 'b', type: 'number', bounds: [0, Math.E ** 2 - 1], transform: 'log1p', missing: 0 },
    { name: 'c', type: 'number', bounds: [-100, 100], centre: 10, scale: 5 },
  ],
});

/** Rows listed go to validation, every other row to training (the real rule is keyed: data-split.ts). */
function validationRows(...texts: string[]): SplitRule {
  return { isValidation: (text) => texts.includes(text) };
}
const ALL_TRAIN = validationRows();

async function load(text: string, splitter: SplitRule = validationRows('0,0,0,0'), schema: DataSchema = SCHEMA): Promise<InstitutionData> {
  return loadInstitutionCsv({ text, name: 'bank.csv' }, { schema, splitter, keepRowText: true });
}

async function csvError(text: string, schema: DataSchema = SCHEMA): Promise<CsvError> {
  try {
    await load(text, new RowSplitter(testSplitKey('errors'), 0.5), schema);
  } catch (error) {
    expect(error).toBeInstanceOf(CsvError);
    return error as CsvError;
  }
  throw new Error('expected a CsvError, the CSV was accepted');
}

describe('loadInstitutionCsv: values mapped by the public schema alone', () => {
  it('clips to the bounds, applies log1p and the affine maps; an empty cell becomes the declared default', async () => {
    const body = 'a,label,b,c\n5,0,0,10\n-3,1,7.38905609893065,15\n12,1.0,,-1000\n 2.5 ,0.0,1e9, 110 \n0,0,0,0\n';
    const data = await load(body);
    const { train } = data;
    expect(train.featureNames).toEqual(['a', 'b', 'c']);
    expect([train.n, train.dim, data.validation.n, data.rows]).toEqual([4, 3, 1, 5]);
    const f = Math.fround;
    expect(Array.from(train.x)).toEqual([
      f(0),
      f(-1),
      f(0), // a 5 → centre; b 0 → lower bound; c (10 − 10)/5
      f(-1),
      f((2 * Math.log1p(Math.E ** 2 - 1)) / 2 - 1),
      f(1), // a clipped to 0; b at its upper bound; c (15 − 10)/5
      f(1),
      f(-1),
      f(-22), // a clipped to 10; b empty → declared missing 0 → −1; c clipped to −100
      f(-0.5),
      f(1),
      f(18), // spaces around cells ignored; b clipped; c clipped to 100
    ]);
    expect(Array.from(train.y)).toEqual([0, 1, 1, 0]);
    expect(train.rowText).toEqual(['5,0,0,10', '-3,1,7.38905609893065,15', '12,1.0,,-1000', '2.5,0.0,1e9,110']);
  });

  it("an empty cell without a declared default becomes the map's centre (input 0)", async () => {
    const data = await load('a,label,b,c\n,0,1,\n1,1,1,1\n', validationRows('1,1,1,1'));
    expect(data.train.x[0]).toBe(0);
    expect(data.train.x[2]).toBe(0);
  });
});

describe('loadInstitutionCsv: errors name the line and the column', () => {
  it('a non-numeric cell names the file, the line and the column', async () => {
    expect((await csvError('a,label,b,c\n1,0,2,3\n3,1,abc,4\n')).message).toBe('bank.csv: line 3, column "b": "abc" is not a finite number');
    expect((await csvError('a,label,b,c\n1,0,Infinity,3\n')).message).toMatch(/line 2, column "b": "Infinity"/);
  });

  it('a row with the wrong number of fields names the line and the counts', async () => {
    expect((await csvError('a,label,b,c\n1,0,2,3\n1,0,2\n')).message).toBe('bank.csv: line 3: expected 4 fields, got 3');
    expect((await csvError('a,label,b,c\n1,0,2,3,9\n')).message).toMatch(/line 2: expected 4 fields, got 5/);
  });

  it('a label that is not 0 or 1 names the line and the label column', async () => {
    expect((await csvError('a,label,b,c\n1,0,2,3\n1,2,2,3\n')).message).toBe('bank.csv: line 3, column "label": expected 0 or 1, got "2"');
    expect((await csvError('a,label,b,c\n1,,2,3\n')).message).toMatch(/line 2, column "label": expected 0 or 1, got ""/);
  });

  it('an empty line inside the data and a file without rows are refused; empty lines at the end are not', async () => {
    expect((await csvError('a,label,b,c\n1,0,2,3\n\n2,1,2,3\n')).message).toMatch(/line 3: empty line/);
    expect((await csvError('a,label,b,c\n')).message).toMatch(/header row and at least one data row/);
    expect((await load('a,label,b,c\n1,0,2,3\r\n2,1,2,3\n\n\n', validationRows('2,1,2,3'))).rows).toBe(2);
  });

  it('a header that differs from the schema is refused before any row is read, naming the columns', async () => {
    // the rows are broken too: the header error comes first
    const renamed = await csvError('a,label,B,c\n1,zz,2\n');
    expect(renamed.message).toBe('bank.csv: line 1: the header does not match the schema: column 3 is "B", the schema has "b"');
    const reordered = await csvError('label,a,b,c\n0,1,2,3\n');
    expect(reordered.message).toMatch(/column 1 is "label", the schema has "a"; column 2 is "a", the schema has "label"/);
    expect((await csvError('a,label,b,c,d\n1,0,2,3,4\n')).message).toMatch(/5 columns, the schema has 4 \(not in the schema: "d"\)/);
    expect((await csvError('a,label,b\n1,0,2\n')).message).toMatch(/3 columns, the schema has 4 \(absent: "c"\)/);
  });

  it('long headers and cells are quoted as bounded excerpts; a 5 MB header line is refused early', async () => {
    const started = performance.now();
    const fiveMB = await csvError(`a,label,${'x'.repeat(5_000_000)},c\n1,0,2,3\n`);
    expect(fiveMB.message).toBe(`bank.csv: line 1: longer than ${MAX_LINE_BYTES} bytes (a row or the header must be shorter)`);
    expect(performance.now() - started).toBeLessThan(5_000);
    const longName = 'x'.repeat(500_000);
    const header = await csvError(`a,label,${longName},c\n1,0,2,3\n`);
    expect(header.message).toMatch(/^bank.csv: line 1: the header does not match the schema: column 3 is "x{60}… \(500000 characters\)", the schema has "b"$/);
    const manyColumns = await csvError(`${Array.from({ length: 50_000 }, (_, i) => `column${i}`).join(',')}\n`);
    expect(manyColumns.message.length).toBeLessThan(1500);
    expect(manyColumns.message).toMatch(/line 1: .*50000 columns, the schema has 4 \(not in the schema: "column4", .*, …\)$/);
    const cell = await csvError(`a,label,b,c\n1,0,${longName},3\n`);
    expect(cell.message).toMatch(/^bank.csv: line 2, column "b": "x{200}… \(500000 characters\)" is not a finite number$/);
    const longLine = await csvError(`a,label,b,c\n1,0,2,3\n${'1,'.repeat(600_000)}3\n`);
    expect(longLine.message).toBe(`bank.csv: line 3: longer than ${MAX_LINE_BYTES} bytes (a row or the header must be shorter)`);
  });

  it('a file that cannot be read names it', async () => {
    await expect(loadInstitutionCsv('/nonexistent/bank.csv', { schema: SCHEMA, splitter: ALL_TRAIN })).rejects.toThrow(/cannot read \/nonexistent\/bank.csv/);
  });
});

describe('the bundled card-fraud data', () => {
  it('loads with its public schema: 30 features in [-5, 5], every row in exactly one split', async () => {
    const data = await loadInstitutionCsv(FRAUD_CSV, { schema: fraudSchemaOf(), splitter: new RowSplitter(randomBytes(32), 0.2) });
    expect(data.rows).toBe(11489);
    expect(data.train.n + data.validation.n).toBe(11489);
    expect(data.train.dim).toBe(30);
    let positives = 0;
    for (const d of [data.train, data.validation]) {
      for (let i = 0; i < d.n; i++) positives += d.y[i];
      for (const v of d.x) expect(Math.abs(v)).toBeLessThanOrEqual(5);
    }
    expect(positives).toBe(473);
    // a binomial(11489, 0.2) count: 2298 ± 43 (1 sd); ±6 sd here
    expect(Math.abs(data.validation.n - 2298)).toBeLessThan(260);
  });
});

describe('a 300k-row CSV of the card-fraud shape', () => {
  const dir = tempDir('dpfed-csv-300k-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("loads through the client's loader in a child process with bounded peak memory", async () => {
    const csv = join(dir, 'card-fraud-300k.csv');
    const { positives } = await writeCardFraudCsv(csv, 300_000);
    const report = await loadInChildProcess(csv);
    expect(report.rows).toBe(300_000);
    expect(report.train + report.validation).toBe(300_000);
    expect(report.dim).toBe(30);
    expect(report.positives).toBe(positives);
    expect(Math.abs(report.validation / 300_000 - 0.2)).toBeLessThan(0.01);
    // the model inputs are 300k × 30 float32 = 36 MB; the 90 MB file is never held whole
    expect(report.peakRssMB).toBeLessThan(250);
  });

  it('a federation of 3 banks on 100k rows each (300k in all), loaded by the streaming loader, trains and scores a round', async () => {
    const config = runConfig([
      '--rounds',
      '1',
      '--min-clients',
      '3',
      '--privacy',
      'off',
      '--aggregation',
      'plain',
      '--model',
      'logistic',
      '--local-steps',
      '250',
      '--round-timeout',
      '60',
      '--phase-timeout',
      '60',
    ]);
    const coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    const institutions: TestInstitution[] = [];
    try {
      const tf = await wasmTf();
      for (let k = 1; k <= 3; k++) {
        const csv = join(dir, `bank-${k}.csv`);
        await writeCardFraudCsv(csv, 100_000, `bank-${k}`);
        const data = await loadInstitutionCsv(csv, { schema: fraudSchemaOf(), splitter: new RowSplitter(randomBytes(32), 0.2) });
        expect(data.rows).toBe(100_000);
        const learner = new TfjsLearner(tf, data.train, data.validation, { schema: data.schema });
        institutions.push(makeInstitution({ id: `bank-${k}`, address: `127.0.0.1:${coordinator.port}`, learner }));
      }
      const results = await within(start(institutions), 120_000, 'the banks to finish');
      expect(results.map((r) => [r.roundsTrained, r.roundsEvaluated])).toEqual(Array(3).fill([1, 1]));
      const rounds = coordinator.store.rounds(coordinator.runId);
      expect(rounds.map((r) => [r.round, r.participants])).toEqual([[1, 3]]);
      // 60k validation rows scored from the summed histograms
      expect(rounds[0].auc).toBeGreaterThan(0.8);
    } finally {
      await cleanUp({ institutions, coordinators: [coordinator] });
    }
  });

  it('refuses a header of the wrong shape there too', async () => {
    const csv = join(dir, 'wrong.csv');
    writeFileSync(csv, 'Time,V1\n1,2\n');
    await expect(loadInstitutionCsv(csv, { schema: fraudSchemaOf(), splitter: ALL_TRAIN })).rejects.toThrow(
      /line 1: the header does not match the schema: 2 columns, the schema has 31 \(absent: "V2", "V3"/,
    );
  });
});
