// Large CSVs of the card-fraud shape (Time, V1..V28, Amount, label) made from the bundled sample: rows of
// the sample taken in turn, every value moved by a small deterministic jitter so that no two rows are
// identical, written as a stream (the file is never held in memory).
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { ROOT } from './bench-paths.ts';

export const SAMPLE_CSV = join(ROOT, 'data', 'creditcard_fraud_ulb_sample.csv');
export const SAMPLE_SCHEMA = join(ROOT, 'data', 'creditcard_fraud_ulb_sample.schema.json');

/** Writes `rows` data rows of the card-fraud shape to `path`; resolves with the number of positive rows. */
export async function writeCardFraudCsv(path: string, rows: number, seed = 'card-fraud-csv'): Promise<{ positives: number }> {
  const [header, ...sample] = readFileSync(SAMPLE_CSV, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '');
  const parsed = sample.map((line) => line.split(',').map(Number));
  const random = new SeededRandom(seed);
  const out = createWriteStream(path);
  let positives = 0;
  let chunk: string[] = [header];
  for (let r = 0; r < rows; r++) {
    const base = parsed[r % parsed.length];
    const cells: string[] = [];
    for (let j = 0; j < base.length - 1; j++) {
      const jitter = (random.next() - 0.5) * 0.02;
      const value = j === 0 ? Math.round(base[j] + jitter * 1000) : j === base.length - 2 ? Math.max(0, base[j] * (1 + jitter)) : base[j] + jitter;
      cells.push(j === 0 ? String(Math.max(0, value)) : value.toFixed(6));
    }
    const label = base[base.length - 1];
    positives += label;
    cells.push(String(label));
    chunk.push(cells.join(','));
    if (chunk.length >= 2048) {
      if (!out.write(chunk.join('\n') + '\n')) await once(out, 'drain');
      chunk = [];
    }
  }
  out.end(chunk.length ? chunk.join('\n') + '\n' : '');
  await once(out, 'finish');
  return { positives };
}
