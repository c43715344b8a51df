// Fabricated `dpfed sim` result rows for the plot tests: plausible shapes (AUC rising with ε and over
// rounds, local-only below federated, ε spent close to the target) from a seeded generator. These are plot
// inputs, not results anyone claims.
import { SeededRandom } from '@dpfed/proto/seeded-random';
import type { SimPlotRow } from '@dpfed/simulations/sim-plot-specs';

export interface FixtureOptions {
  models?: string[];
  epsilons?: (number | null)[];
  seeds?: number;
  institutions?: number;
  rounds?: number;
  /** Include the local-only and centralised baselines. */
  baselines?: boolean;
  /** Give the DP rows `epsilonPerRound`. */
  perRoundEpsilon?: boolean;
}

export function simRowsFixture(o: FixtureOptions = {}): SimPlotRow[] {
  const models = o.models ?? ['logistic'];
  const epsilons = o.epsilons ?? [0.5, 1, 2, 8, null];
  const seeds = o.seeds ?? 3;
  const institutions = o.institutions ?? 5;
  const rounds = o.rounds ?? 10;
  const baselines = o.baselines ?? true;
  const random = new SeededRandom('sim-rows-fixture');
  const jitter = (scale: number) => (random.next() - 0.5) * scale;
  const ids = Array.from({ length: institutions }, (_, i) => `bank-${String.fromCharCode(97 + i)}`);
  const common = { delta: 1e-5, aggregation: 'secagg' as const, rounds, institutions, dropout: 0, split: 'dirichlet:0.5', prAuc: 0.4, accuracy: 0.97, seconds: 12 };
  const rows: SimPlotRow[] = [];
  let n = 0;
  const id = () => (n++).toString(16).padStart(16, '0');
  for (const model of models) {
    const top = model === 'logistic' ? 0.9 : 0.92;
    for (let seed = 0; seed < seeds; seed++) {
      for (const epsilon of epsilons) {
        const final = epsilon === null ? top + jitter(0.01) : top - 0.12 / (1 + epsilon) + jitter(0.02);
        const aucPerRound = Array.from({ length: rounds }, (_, r) => final - (final - 0.6) * Math.exp(-(r + 1) / 2.5) + jitter(0.01));
        const spent = epsilon === null ? {} : Object.fromEntries(ids.map((i) => [i, epsilon * (0.9 + 0.1 * random.next())]));
        const row: SimPlotRow = {
          ...common,
          settingId: id(),
          baseline: 'federated',
          institution: null,
          scoredOn: 'test',
          epsilon,
          privacy: epsilon === null ? 'off' : 'record',
          model,
          seed,
          auc: aucPerRound[rounds - 1],
          aucPerRound,
          epsilonSpent: spent,
        };
        if (o.perRoundEpsilon && epsilon !== null) {
          row.epsilonPerRound = Object.fromEntries(Object.entries(spent).map(([i, e]) => [i, Array.from({ length: rounds }, (_, r) => (e * (r + 1)) / rounds)]));
        }
        rows.push(row);
      }
      if (!baselines) continue;
      rows.push({
        ...common,
        settingId: id(),
        baseline: 'centralised',
        institution: null,
        scoredOn: 'test',
        epsilon: null,
        privacy: 'off',
        model,
        seed,
        auc: top + 0.02 + jitter(0.01),
        aucPerRound: [],
        epsilonSpent: {},
      });
      ids.forEach((institution, k) => {
        for (const scoredOn of ['test', 'own'] as const) {
          rows.push({
            ...common,
            settingId: id(),
            baseline: 'local',
            institution,
            scoredOn,
            epsilon: null,
            privacy: 'off',
            model,
            seed,
            auc: top - 0.05 - 0.02 * k + jitter(0.03),
            aucPerRound: [],
            epsilonSpent: {},
          });
        }
      });
    }
  }
  return rows;
}
