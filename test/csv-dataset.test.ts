// An institution's CSV: errors name the line and the column; missing cells stay NaN until standardisation
// maps them to 0 (the training mean); the train/validation split is stratified and reproducible.
import { describe, expect, it } from 'vitest';
import { CsvError, loadCsv, parseCsv, type Dataset } from '../client-sdk/csv-dataset.ts';
import { splitTrainValidation } from '../client-sdk/data-split.ts';
import { fitStandardiser, standardise, unstandardise } from '../client-sdk/standardiser.ts';
import { FRAUD_CSV } from './helpers/federation-fixture.ts';

function csvError(text: string, label = 'label'): CsvError {
  try {
    parseCsv(text, label, 'bank.csv');
  } catch (error) {
    expect(error).toBeInstanceOf(CsvError);
    return error as CsvError;
  }
  throw new Error('expected a CsvError, the CSV was accepted');
}

describe('parseCsv', () => {
  it('reads features in header order without the label column, labels as 0/1', () => {
    const data = parseCsv('a,label,b\n1.5,0,-2\n3,1,4e2\r\n0.25,1.0,7\n\n', 'label');
    expect(data.featureNames).toEqual(['a', 'b']);
    expect([data.n, data.dim]).toEqual([3, 2]);
    expect(Array.from(data.x)).toEqual([1.5, -2, 3, 400, 0.25, 7]);
    expect(Array.from(data.y)).toEqual([0, 1, 1]);
  });

  it('a non-numeric cell names the file, the line and the column', () => {
    const error = csvError('a,b,label\n1,2,0\n3,abc,1\n');
    expect(error.message).toBe('bank.csv: line 3, column "b": "abc" is not a finite number');
    expect(csvError('a,b,label\n1,Infinity,0\n').message).toMatch(/line 2, column "b": "Infinity"/);
  });

  it('a row with the wrong number of fields names the line and the counts', () => {
    expect(csvError('a,b,label\n1,2,0\n1,2\n').message).toBe('bank.csv: line 3: expected 3 fields, got 2');
    expect(csvError('a,b,label\n1,2,0,9\n').message).toMatch(/line 2: expected 3 fields, got 4/);
  });

  it('a label that is not 0 or 1 names the line and the label column', () => {
    expect(csvError('a,b,label\n1,2,0\n1,2,2\n').message).toBe('bank.csv: line 3, column "label": expected 0 or 1, got "2"');
    expect(csvError('a,b,label\n1,2,\n').message).toMatch(/line 2, column "label": expected 0 or 1, got ""/);
    expect(csvError('a,b,label\n1,2,yes\n').message).toMatch(/column "label"/);
  });

  it('a missing label column names it and lists the columns', () => {
    expect(csvError('a,b,class\n1,2,0\n').message).toBe('bank.csv: label column "label" not found in the header (columns: a, b, class)');
  });

  it('an empty line inside the data and a file without rows are refused', () => {
    expect(csvError('a,label\n1,0\n\n2,1\n').message).toMatch(/line 3: empty line/);
    expect(csvError('a,label\n').message).toMatch(/header row and at least one data row/);
  });

  it('loads the bundled card-fraud data', () => {
    const data = loadCsv(FRAUD_CSV, 'label');
    expect([data.n, data.dim]).toEqual([11489, 30]);
    expect(data.y.reduce((a, b) => a + b, 0)).toBe(473);
    expect(() => loadCsv('/nonexistent/bank.csv', 'label')).toThrow(/cannot read \/nonexistent\/bank.csv/);
  });
});

describe('missing values and standardisation', () => {
  it('an empty cell is NaN; standardisation ignores it when fitting and maps it to 0', () => {
    const data = parseCsv('a,b,label\n1,10,0\n,20,1\n3,,0\n5,40,1\n', 'label');
    expect(Number.isNaN(data.x[2])).toBe(true); // row 2, column a
    expect(Number.isNaN(data.x[5])).toBe(true); // row 3, column b
    const s = fitStandardiser(data);
    expect(s.mean[0]).toBeCloseTo(3, 12); // mean of 1, 3, 5
    expect(s.mean[1]).toBeCloseTo(70 / 3, 12); // mean of 10, 20, 40
    expect(s.std[0]).toBeCloseTo(2, 12); // sample std of 1, 3, 5
    const z = standardise(data, s);
    expect(z.x[2]).toBe(0);
    expect(z.x[5]).toBe(0);
    expect(z.x[0]).toBeCloseTo(-1, 6);
    expect(z.x[6]).toBeCloseTo(1, 6);
    for (const v of z.x) expect(Number.isFinite(v)).toBe(true);
    // the inverse restores the observed values
    const back = unstandardise(z.x, z.dim, s);
    expect(back[0]).toBeCloseTo(1, 5);
    expect(back[7]).toBeCloseTo(40, 4);
    // the input is left as it was
    expect(Number.isNaN(data.x[2])).toBe(true);
  });

  it('a constant or all-missing column gets std 1 (no division by zero)', () => {
    const data = parseCsv('a,b,label\n2,,0\n2,,1\n', 'label');
    const s = fitStandardiser(data);
    expect(Array.from(s.std)).toEqual([1, 1]);
    expect(Array.from(standardise(data, s).x)).toEqual([0, 0, 0, 0]);
  });
});

describe('train/validation split', () => {
  const rowsOf = (d: Dataset) => Array.from({ length: d.n }, (_, r) => d.x[r * d.dim]);

  it('is stratified by label and reproducible from the seed', () => {
    // 400 rows, 40 positives; feature 0 is the row number so rows can be traced
    const lines = ['id,label'];
    for (let i = 0; i < 400; i++) lines.push(`${i},${i % 10 === 0 ? 1 : 0}`);
    const data = parseCsv(lines.join('\n'), 'label');
    const { train, validation } = splitTrainValidation(data, 0.2, '7');
    expect(validation.n).toBe(80);
    expect(train.n).toBe(320);
    expect(validation.y.reduce((a, b) => a + b, 0)).toBe(8); // 20 % of the 40 positives
    expect(train.y.reduce((a, b) => a + b, 0)).toBe(32);
    const all = [...rowsOf(train), ...rowsOf(validation)].sort((a, b) => a - b);
    expect(all).toEqual(Array.from({ length: 400 }, (_, i) => i)); // a partition: nothing lost or repeated
    // every row keeps its label
    for (const d of [train, validation]) for (let r = 0; r < d.n; r++) expect(d.y[r]).toBe(d.x[r] % 10 === 0 ? 1 : 0);

    const again = splitTrainValidation(data, 0.2, '7');
    expect(rowsOf(again.validation)).toEqual(rowsOf(validation));
    expect(rowsOf(again.train)).toEqual(rowsOf(train));
    const other = splitTrainValidation(data, 0.2, '8');
    expect(rowsOf(other.validation)).not.toEqual(rowsOf(validation));
    expect(other.validation.y.reduce((a, b) => a + b, 0)).toBe(8);
  });

  it('refuses a fraction outside (0, 1) and data too small to split', () => {
    const data = parseCsv('a,label\n1,0\n2,1\n', 'label');
    expect(() => splitTrainValidation(data, 0, '1')).toThrow(/validation fraction/);
    expect(() => splitTrainValidation(data, 1, '1')).toThrow(/validation fraction/);
    expect(() => splitTrainValidation(parseCsv('a,label\n1,0\n', 'label'), 0.2, '1')).toThrow(/too small/);
  });
});
