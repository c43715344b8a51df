// `--data synthetic:fraud[:ROWS[:SEED]]`: card-fraud-like rows for N banks, deterministic per seed
// (proto/seeded-random.ts), with the heterogeneity that makes federation hard.
//
// The model, per bank b of N (ROWS rows in all, default 20,000; SEED default 1):
// - size: a share of the rows proportional to exp(0.5·Z_b) (Z_b standard normal), at least 50 rows;
// - positive rate π_b, log-uniform in [0.2 %, 2 %]: each row is fraud with probability π_b;
// - feature shift (covariate shift): the bank's customers sit at μ_b ~ N(0, 0.5²) per feature;
// - label shift (concept shift): fraud at bank b moves the features by Δ + δ_b, where Δ is the common
//   fraud signature (1.5, −1.2, 1.0, −0.8, 0.6 on f1..f5, 0 on f6..f10) and δ_b ~ N(0, 0.5²) per
//   feature is the bank's own kind of fraud;
// - features f1..f10 of a row: μ_b (+ Δ + δ_b when fraud) + N(0, 1) noise per feature;
// - amount, heavy-tailed: lognormal exp(N(3.5, 1.2²)) for legitimate rows, exp(N(4.3, 1.5²)) for fraud,
//   and with probability 2 % a Pareto tail instead, 500·U^(−1/1.5) (α = 1.5, infinite variance).
// The public schema is fixed by the model, not read from the rows: f1..f10 in [−8, 8] (centre 0,
// scale 2), amount in [0, 10⁶] with log1p (centre 4, scale 2).
import { parseSchema, SCHEMA_FORMAT, type DataSchema } from '@dpfed/proto/data-schema';
import { compileSchema, mapFeature } from '@dpfed/proto/data-schema';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { SimDataError, type SimData } from './sim-data.ts';

export const SYNTHETIC_FEATURES = 10;
const SIGNATURE = [1.5, -1.2, 1.0, -0.8, 0.6, 0, 0, 0, 0, 0];
export const SYNTHETIC_DEFAULT_ROWS = 20_000;
const MIN_BANK_ROWS = 50;

export interface SyntheticFraudSpec {
  rows: number;
  seed: string;
}

/** Parses `synthetic:fraud[:ROWS[:SEED]]`; null when `data` is not a synthetic source. */
export function parseSyntheticSource(data: string): SyntheticFraudSpec | null {
  if (!data.startsWith('synthetic:')) return null;
  const [, kind, rows, seed, ...rest] = data.split(':');
  if (kind !== 'fraud' || rest.length) throw new SimDataError('--data', `expected synthetic:fraud[:ROWS[:SEED]], got "${data}"`);
  const n = rows === undefined || rows === '' ? SYNTHETIC_DEFAULT_ROWS : Number(rows);
  if (!Number.isInteger(n) || n < 100) throw new SimDataError('--data', `synthetic:fraud:ROWS needs an integer ROWS >= 100, got "${rows}"`);
  return { rows: n, seed: seed === undefined || seed === '' ? '1' : seed };
}

/** The generator's public schema: f1..f10, amount, label. */
export function syntheticFraudSchema(): DataSchema {
  return parseSchema(
    {
      format: SCHEMA_FORMAT,
      columns: [
        ...Array.from({ length: SYNTHETIC_FEATURES }, (_, k) => ({ name: `f${k + 1}`, type: 'number', bounds: [-8, 8], transform: 'none', centre: 0, scale: 2 })),
        { name: 'amount', type: 'number', bounds: [0, 1e6], transform: 'log1p', centre: 4, scale: 2 },
        { name: 'label', type: 'label' },
      ],
    },
    'synthetic:fraud schema',
  );
}

/** What the generator drew for each bank (for tests and documentation of a run). */
export interface SyntheticBank {
  id: string;
  rows: number;
  positiveRate: number;
  featureShift: number[];
  fraudShift: number[];
}

/** The rows of `banks` banks, their natural group (`bank`), and the per-bank parameters drawn. */
export function generateSyntheticFraud(spec: SyntheticFraudSpec, banks: number): SimData & { banks: SyntheticBank[] } {
  if (!Number.isInteger(banks) || banks < 1) throw new SimDataError('--institutions', `synthetic:fraud needs a positive number of banks, got ${banks}`);
  if (spec.rows < banks * MIN_BANK_ROWS) throw new SimDataError('--data', `synthetic:fraud:${spec.rows} is too few rows for ${banks} banks of at least ${MIN_BANK_ROWS} rows`);
  const random = new SeededRandom(`synthetic-fraud:${spec.seed}:${banks}`);
  const weights = Array.from({ length: banks }, () => Math.exp(0.5 * random.normal()));
  const total = weights.reduce((a, b) => a + b, 0);
  const spare = spec.rows - banks * MIN_BANK_ROWS;
  const sizes = weights.map((w) => MIN_BANK_ROWS + Math.floor((spare * w) / total));
  sizes[0] += spec.rows - sizes.reduce((a, b) => a + b, 0);
  const bankParams: SyntheticBank[] = sizes.map((rows, b) => ({
    id: `bank-${b + 1}`,
    rows,
    positiveRate: Math.exp(Math.log(0.002) + random.next() * (Math.log(0.02) - Math.log(0.002))),
    featureShift: Array.from({ length: SYNTHETIC_FEATURES }, () => 0.5 * random.normal()),
    fraudShift: Array.from({ length: SYNTHETIC_FEATURES }, () => 0.5 * random.normal()),
  }));
  const schema = syntheticFraudSchema();
  const { featureNames, maps } = compileSchema(schema);
  const dim = maps.length;
  const x = new Float32Array(spec.rows * dim);
  const y = new Float32Array(spec.rows);
  const group = new Int32Array(spec.rows);
  let r = 0;
  bankParams.forEach((bank, b) => {
    for (let i = 0; i < bank.rows; i++, r++) {
      const fraud = random.next() < bank.positiveRate;
      for (let k = 0; k < SYNTHETIC_FEATURES; k++) {
        const shift = bank.featureShift[k] + (fraud ? SIGNATURE[k] + bank.fraudShift[k] : 0);
        x[r * dim + k] = mapFeature(maps[k], shift + random.normal());
      }
      const amount = random.next() < 0.02 ? 500 * (1 - random.next()) ** (-1 / 1.5) : Math.exp(fraud ? 4.3 + 1.5 * random.normal() : 3.5 + 1.2 * random.normal());
      x[r * dim + SYNTHETIC_FEATURES] = mapFeature(maps[SYNTHETIC_FEATURES], amount);
      y[r] = fraud ? 1 : 0;
      group[r] = b;
    }
  });
  return {
    featureNames,
    x,
    y,
    n: spec.rows,
    dim,
    schema,
    schemaInferred: false,
    group,
    groupNames: bankParams.map((b) => b.id),
    groupColumn: 'bank',
    source: `synthetic:fraud:${spec.rows}:${spec.seed}`,
    banks: bankParams,
  };
}
