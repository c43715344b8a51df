// dpfed sim's data: the institution splits (deterministic per seed, disjoint, covering every training
// row, skewed as asked), the partition's common test rows, the CSV loader with a split column, and the
// synthetic fraud generator's documented properties.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSplit, splitInstitutions } from '@dpfed/simulations/institution-split';
import { loadSimCsv, SimDataError } from '@dpfed/simulations/sim-data';
import { partitionData, rowsFingerprint } from '@dpfed/simulations/sim-partition';
import { generateSyntheticFraud, parseSyntheticSource } from '@dpfed/simulations/synthetic-fraud';
import { FRAUD_CSV, FRAUD_SCHEMA, tempDir } from './helpers/federation-fixture.ts';
import { readSchemaFile } from '@dpfed/proto/data-schema';

/** 4,000 rows with 10 % positives (labels only matter to the splits). */
function labels(n = 4000, every = 10): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (i % every === 0 ? 1 : 0));
}

function positiveRates(members: Int32Array[], y: Float32Array): number[] {
  return members.map((m) => Array.from(m).reduce((a, r) => a + y[r], 0) / m.length);
}

function spread(values: number[]): number {
  return Math.max(...values) - Math.min(...values);
}

describe('institution splits', () => {
  const y = labels();
  const rows = Int32Array.from({ length: y.length }, (_, i) => i).filter((i) => i % 7 !== 0); // some rows held out elsewhere

  for (const name of ['iid', 'dirichlet:0.3', 'quantity:0.5']) {
    it(`${name}: deterministic per seed, disjoint, and covering every row given`, () => {
      const split = parseSplit(name);
      const a = splitInstitutions(rows, y, split, 6, '3');
      const b = splitInstitutions(rows, y, split, 6, '3');
      const c = splitInstitutions(rows, y, split, 6, '4');
      expect(a.members.map((m) => Array.from(m))).toEqual(b.members.map((m) => Array.from(m)));
      expect(a.members.map((m) => Array.from(m))).not.toEqual(c.members.map((m) => Array.from(m)));
      const all = a.members.flatMap((m) => Array.from(m));
      expect(new Set(all).size).toBe(all.length);
      expect(all.sort((p, q) => p - q)).toEqual(Array.from(rows));
      expect(a.ids).toEqual(['inst-1', 'inst-2', 'inst-3', 'inst-4', 'inst-5', 'inst-6']);
      for (const m of a.members) expect(m.length).toBeGreaterThanOrEqual(10);
    });
  }

  it('dirichlet skews the positive rates and quantity the sizes, where iid keeps both even', () => {
    const iid = splitInstitutions(rows, y, parseSplit('iid'), 6, '1');
    const dirichlet = splitInstitutions(rows, y, parseSplit('dirichlet:0.2'), 6, '1');
    const quantity = splitInstitutions(rows, y, parseSplit('quantity:0.3'), 6, '1');
    expect(spread(positiveRates(iid.members, y))).toBeLessThan(0.05);
    expect(spread(positiveRates(dirichlet.members, y))).toBeGreaterThan(0.2);
    const sizes = (m: Int32Array[]) => m.map((x) => x.length);
    expect(spread(sizes(iid.members))).toBeLessThanOrEqual(1);
    expect(spread(sizes(quantity.members))).toBeGreaterThan(500);
    expect(spread(positiveRates(quantity.members, y))).toBeLessThan(0.1);
  });

  it('refuses what it cannot do, naming the flag', () => {
    expect(() => parseSplit('dirichlet:-1')).toThrow(/--split: dirichlet:ALPHA needs a positive ALPHA/);
    expect(() => parseSplit('random')).toThrow(/--split: expected iid, dirichlet:ALPHA or quantity:ALPHA/);
    expect(() => splitInstitutions(rows.slice(0, 30), y, parseSplit('iid'), 5, '1')).toThrow(/--institutions: 30 training rows are too few for 5 institutions/);
  });
});

describe('partition', () => {
  it("holds out the same test rows for every party, apart from every institution's rows, deterministic per seed", async () => {
    const data = await loadSimCsv({ path: FRAUD_CSV, labelColumn: 'label', schema: readSchemaFile(FRAUD_SCHEMA) });
    const p = partitionData(data, { split: parseSplit('iid'), institutions: 4, testShare: 0.2, seed: '7' });
    const q = partitionData(data, { split: parseSplit('iid'), institutions: 4, testShare: 0.2, seed: '7' });
    expect(p.testFingerprint).toBe(q.testFingerprint);
    expect(p.testFingerprint).toBe(rowsFingerprint(p.test));
    expect(p.test.n).toBe(Math.round(0.2 * data.n));
    const total = p.institutions.reduce((a, i) => a + i.train.n + i.own.n, 0);
    expect(total + p.test.n).toBe(data.n);
    expect(p.pooledTrain.n).toBe(p.institutions.reduce((a, i) => a + i.train.n, 0));
    // no test row appears among an institution's rows (rows compared by their inputs and label)
    const key = (x: Float32Array, yv: number) => `${Array.from(x).join(',')}|${yv}`;
    const testKeys = new Set(Array.from({ length: p.test.n }, (_, r) => key(p.test.x.subarray(r * p.test.dim, (r + 1) * p.test.dim), p.test.y[r])));
    for (const inst of p.institutions) {
      for (const d of [inst.train, inst.own]) {
        for (let r = 0; r < d.n; r++) expect(testKeys.has(key(d.x.subarray(r * d.dim, (r + 1) * d.dim), d.y[r]))).toBe(false);
      }
    }
    const other = partitionData(data, { split: parseSplit('iid'), institutions: 4, testShare: 0.2, seed: '8' });
    expect(other.testFingerprint).not.toBe(p.testFingerprint);
  });

  it('splits a CSV by its split column, dropping that column from the features, with an inferred schema when none is given', async () => {
    const dir = tempDir('dpfed-sim-data-');
    const path = join(dir, 'sites.csv');
    const lines = ['age,site,chol,disease'];
    for (let i = 0; i < 300; i++) lines.push(`${30 + (i % 40)},${['cleveland', 'hungary', 'va long beach'][i % 3]},${150 + (i % 90)},${i % 4 === 0 ? 1 : 0}`);
    writeFileSync(path, lines.join('\n') + '\n');
    const data = await loadSimCsv({ path, labelColumn: 'disease', splitColumn: 'site' });
    expect(data.schemaInferred).toBe(true);
    expect(data.featureNames).toEqual(['age', 'chol']);
    expect(data.groupNames).toEqual(['cleveland', 'hungary', 'va long beach']);
    const p = partitionData(data, { split: parseSplit('column:site'), institutions: 0, testShare: 0.2, seed: '1' });
    expect(p.institutions.map((i) => i.id)).toEqual(['cleveland', 'hungary', 'site-3']);
    await expect(loadSimCsv({ path, labelColumn: 'disease', splitColumn: 'hospital' })).rejects.toThrow(/--split-column: "hospital" is not a column/);
    await expect(loadSimCsv({ path, labelColumn: 'outcome' })).rejects.toThrow(SimDataError);
  });
});

describe('synthetic:fraud', () => {
  it('parses its source and refuses a bad one', () => {
    expect(parseSyntheticSource('synthetic:fraud')).toEqual({ rows: 20000, seed: '1' });
    expect(parseSyntheticSource('synthetic:fraud:5000:9')).toEqual({ rows: 5000, seed: '9' });
    expect(parseSyntheticSource('data.csv')).toBeNull();
    expect(() => parseSyntheticSource('synthetic:loans')).toThrow(/--data: expected synthetic:fraud/);
  });

  it('is deterministic per seed, with per-bank positive rates of 0.2-2 %, shifted features and heavy-tailed amounts', () => {
    const a = generateSyntheticFraud({ rows: 200_000, seed: '1' }, 5);
    const b = generateSyntheticFraud({ rows: 200_000, seed: '1' }, 5);
    const c = generateSyntheticFraud({ rows: 200_000, seed: '2' }, 5);
    expect(rowsFingerprint(a)).toBe(rowsFingerprint(b));
    expect(rowsFingerprint(a)).not.toBe(rowsFingerprint(c));
    expect(a.banks.reduce((s, bank) => s + bank.rows, 0)).toBe(200_000);
    expect(a.groupNames).toEqual(['bank-1', 'bank-2', 'bank-3', 'bank-4', 'bank-5']);
    const rates: number[] = [];
    const meanF1: number[] = [];
    a.banks.forEach((bank, g) => {
      let n = 0;
      let pos = 0;
      let f1 = 0;
      for (let r = 0; r < a.n; r++) {
        if (a.group![r] !== g) continue;
        n++;
        pos += a.y[r];
        if (a.y[r] === 0) f1 += a.x[r * a.dim] * 2; // the schema maps f1 by 1/2
      }
      expect(bank.positiveRate).toBeGreaterThanOrEqual(0.002);
      expect(bank.positiveRate).toBeLessThanOrEqual(0.02);
      rates.push(pos / n);
      meanF1.push(f1 / (n - pos));
      // the realised rate lies near the drawn one (binomial, n in the tens of thousands)
      expect(Math.abs(pos / n - bank.positiveRate)).toBeLessThan(0.006);
      expect(Math.abs(f1 / (n - pos) - bank.featureShift[0])).toBeLessThan(0.05);
    });
    expect(spread(rates)).toBeGreaterThan(0.002);
    expect(spread(meanF1)).toBeGreaterThan(0.2);
    // fraud rows are shifted by the common signature (+1.5 on f1) and each bank's own fraud shift
    let fraudF1 = 0;
    let fraudRows = 0;
    let legitF1 = 0;
    for (let r = 0; r < a.n; r++) {
      if (a.y[r] === 1) {
        fraudF1 += a.x[r * a.dim] * 2;
        fraudRows++;
      } else legitF1 += a.x[r * a.dim] * 2;
    }
    expect(fraudF1 / fraudRows - legitF1 / (a.n - fraudRows)).toBeGreaterThan(0.8);
    // amounts: log1p-scaled inputs; a heavy tail puts the largest far above the median
    const amounts = Array.from({ length: a.n }, (_, r) => Math.expm1(a.x[r * a.dim + 10] * 2 + 4)).sort((p, q) => p - q);
    expect(amounts[amounts.length - 1] / amounts[amounts.length >> 1]).toBeGreaterThan(1000);
  });
});
