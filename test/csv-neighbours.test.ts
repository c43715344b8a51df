// ε is about adding or removing one row of an institution's own CSV. These tests load the bundled
// card-fraud CSV and its neighbours (the same file without one row) through the client's loader and check
// that the training and validation sets differ by exactly that row: every other row is in the same split
// with bit-identical model inputs, compared row by row keyed by the row's text.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadInstitutionCsv, type Dataset } from '@dpfed/client/csv-dataset';
import { canonicalRowText, loadOrCreateSplitKey, RowSplitter } from '@dpfed/client/data-split';
import { FRAUD_CSV, fraudSchemaOf, tempDir } from './helpers/federation-fixture.ts';

const [HEADER, ...ROWS] = readFileSync(FRAUD_CSV, 'utf8')
  .split(/\r?\n/)
  .filter((l) => l.trim() !== '');
const KEY = randomBytes(32);

type RowEntry = { split: 'train' | 'validation'; bytes: string; label: number };

/** Every row of both splits by its text: which split, its model inputs' exact bytes, its label. */
function rowsByText(train: Dataset, validation: Dataset): Map<string, RowEntry[]> {
  const out = new Map<string, RowEntry[]>();
  for (const [split, d] of [
    ['train', train],
    ['validation', validation],
  ] as const) {
    for (let r = 0; r < d.n; r++) {
      const bytes = Buffer.from(d.x.buffer, d.x.byteOffset + r * d.dim * 4, d.dim * 4).toString('hex');
      const text = d.rowText![r];
      const list = out.get(text) ?? [];
      list.push({ split, bytes, label: d.y[r] });
      out.set(text, list);
    }
  }
  return out;
}

async function loadText(rows: string[], key: Uint8Array = KEY, name = 'bank.csv') {
  return loadInstitutionCsv({ text: [HEADER, ...rows].join('\n') + '\n', name }, { schema: fraudSchemaOf(), splitter: new RowSplitter(key, 0.2), keepRowText: true });
}

describe('CSV-level neighbours: removing one row changes the datasets by exactly that row', async () => {
  const full = await loadText(ROWS);
  const fullRows = rowsByText(full.train, full.validation);
  const firstPositive = ROWS.findIndex((l) => l.endsWith(',1'));
  const positions = [
    { what: 'the first row', index: 0 },
    { what: 'a positive (fraud) row', index: firstPositive },
    { what: 'a row in the middle', index: Math.floor(ROWS.length / 2) },
    { what: 'the last row', index: ROWS.length - 1 },
    { what: 'the first validation row', index: ROWS.findIndex((l) => new RowSplitter(KEY, 0.2).isValidation(canonicalRowText(l.split(',')))) },
  ];

  it('the file has distinct rows, and both splits are used', () => {
    expect(fullRows.size).toBe(ROWS.length);
    expect(full.train.n).toBeGreaterThan(0);
    expect(full.validation.n).toBeGreaterThan(0);
    expect(ROWS[firstPositive].endsWith(',1')).toBe(true);
    expect(positions.every((p) => p.index >= 0)).toBe(true);
  });

  for (const { what, index } of positions) {
    it(`${what}`, async () => {
      const removed = canonicalRowText(ROWS[index].split(','));
      const neighbour = await loadText(ROWS.filter((_, i) => i !== index));
      const removedEntry = fullRows.get(removed)!;
      expect(removedEntry).toHaveLength(1);
      // the split that held the row loses exactly one row; the other is unchanged in size
      const inTrain = removedEntry[0].split === 'train';
      expect(neighbour.train.n).toBe(full.train.n - (inTrain ? 1 : 0));
      expect(neighbour.validation.n).toBe(full.validation.n - (inTrain ? 0 : 1));
      // every other row: same split, bit-identical inputs, same label
      const neighbourRows = rowsByText(neighbour.train, neighbour.validation);
      expect(neighbourRows.has(removed)).toBe(false);
      expect(neighbourRows.size).toBe(fullRows.size - 1);
      let compared = 0;
      for (const [text, entries] of fullRows) {
        if (text === removed) continue;
        expect(neighbourRows.get(text)).toEqual(entries);
        compared++;
      }
      expect(compared).toBe(ROWS.length - 1);
      // and the remaining training rows keep their order (training order is the file's order)
      const expectedOrder = full.train.rowText!.filter((t) => t !== removed);
      expect(neighbour.train.rowText).toEqual(expectedOrder);
    });
  }

  it('adding a row is the same relation: the added row is the only difference', async () => {
    const added = '86400,' + Array.from({ length: 28 }, (_, i) => (i / 10 - 1.4).toFixed(1)).join(',') + ',12.5,1';
    const bigger = await loadText([...ROWS.slice(0, 100), added, ...ROWS.slice(100)]);
    const biggerRows = rowsByText(bigger.train, bigger.validation);
    expect(biggerRows.size).toBe(fullRows.size + 1);
    for (const [text, entries] of fullRows) expect(biggerRows.get(text)).toEqual(entries);
    expect(biggerRows.get(added)).toHaveLength(1);
  });
});

describe('the keyed split', () => {
  it('depends on the key and puts about the validation fraction in validation', async () => {
    const a = await loadText(ROWS, randomBytes(32));
    const b = await loadText(ROWS, randomBytes(32));
    for (const d of [a, b]) expect(Math.abs(d.validation.n / ROWS.length - 0.2)).toBeLessThan(0.03);
    expect(a.validation.rowText).not.toEqual(b.validation.rowText);
  });

  it('a row written with other quoting, spacing or line endings has the same text, split and inputs', async () => {
    const rows = ROWS.slice(0, 400);
    const plain = await loadText(rows);
    const rewritten = rows.map((l, i) =>
      l
        .split(',')
        .map((c) => (i % 2 === 0 ? `"${c}"` : ` ${c}\t`))
        .join(','),
    );
    const other = await loadInstitutionCsv(
      { text: [HEADER, ...rewritten].join('\r\n') + '\r\n', name: 'bank-crlf.csv' },
      { schema: fraudSchemaOf(), splitter: new RowSplitter(KEY, 0.2), keepRowText: true },
    );
    expect(rowsByText(other.train, other.validation)).toEqual(rowsByText(plain.train, plain.validation));
  });

  it('identical duplicate rows land in the same split together', async () => {
    const rows = ROWS.slice(0, 300);
    const doubled = await loadText([...rows, ...rows]);
    const byText = rowsByText(doubled.train, doubled.validation);
    for (const entries of byText.values()) {
      expect(entries).toHaveLength(2);
      expect(entries[0]).toEqual(entries[1]);
    }
  });

  it('refuses a key of the wrong size and a fraction outside (0, 1)', () => {
    expect(() => new RowSplitter(new Uint8Array(16), 0.2)).toThrow(/32 bytes/);
    expect(() => new RowSplitter(KEY, 0)).toThrow(/validation fraction/);
    expect(() => new RowSplitter(KEY, 1)).toThrow(/validation fraction/);
  });
});

describe('the split key file', () => {
  const dir = tempDir('dpfed-split-key-');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is created once from node:crypto with mode 0600 and read back unchanged', () => {
    const path = join(dir, 'keys', 'bank-a.split-key');
    const key = loadOrCreateSplitKey(path);
    expect(key).toHaveLength(32);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(loadOrCreateSplitKey(path)).toEqual(key);
    expect(loadOrCreateSplitKey(join(dir, 'keys', 'bank-b.split-key'))).not.toEqual(key);
  });

  it('a damaged key file is refused, naming it', () => {
    const path = join(dir, 'bad.split-key');
    writeFileSync(path, 'not a key\n');
    expect(() => loadOrCreateSplitKey(path)).toThrow(/split key file .*bad.split-key: expected 64 hex characters/);
  });
});
