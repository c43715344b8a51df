// The institution's local train/validation split: stratified by label, reproducible from the seed.
// The validation split never leaves the institution; only its score histogram does.
import { SeededRandom } from '../proto/seeded-random.ts';
import { selectRows, type Dataset } from './csv-dataset.ts';

export function splitTrainValidation(data: Dataset, validationFraction: number, seed: string): { train: Dataset; validation: Dataset } {
  if (!(validationFraction > 0 && validationFraction < 1)) throw new Error(`validation fraction must be in (0, 1), got ${validationFraction}`);
  const random = new SeededRandom(`${seed}:split`);
  const train: number[] = [];
  const validation: number[] = [];
  for (const label of [0, 1]) {
    const rows: number[] = [];
    for (let i = 0; i < data.n; i++) if (data.y[i] === label) rows.push(i);
    random.shuffle(rows);
    const k = Math.round(rows.length * validationFraction);
    validation.push(...rows.slice(0, k));
    train.push(...rows.slice(k));
  }
  random.shuffle(train);
  random.shuffle(validation);
  if (train.length === 0 || validation.length === 0) throw new Error(`dataset of ${data.n} rows is too small to split`);
  return { train: selectRows(data, train), validation: selectRows(data, validation) };
}
