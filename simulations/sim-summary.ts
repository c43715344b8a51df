// The `--json` summary's figures: each setting's AUC over its seeds, as the mean and the half-width of
// a 95 % confidence interval (Student's t with n − 1 degrees of freedom; null with a single seed).
import type { SimRecord } from './sim-result.ts';

/** Two-sided 97.5 % quantiles of Student's t for 1..30 degrees of freedom. */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045,
  2.042,
];

export function meanAndCi95(values: number[]): { mean: number; ci95: number | null } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, ci95: null };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1);
  const t = n - 1 <= T975.length ? T975[n - 2] : 1.96;
  return { mean, ci95: (t * Math.sqrt(variance)) / Math.sqrt(n) };
}

export interface SettingSummary {
  baseline: SimRecord['baseline'];
  institution: string | null;
  scoredOn: SimRecord['scoredOn'];
  epsilon: number | null;
  privacy: SimRecord['privacy'];
  aggregation: SimRecord['aggregation'];
  model: string;
  rounds: number;
  dropout: number;
  seeds: number;
  /** Seeds whose AUC is defined (the scored rows hold both classes): the mean and interval are over these. */
  aucSeeds: number;
  aucMean: number | null;
  aucCi95: number | null;
}

/** One entry per setting apart from its seed (and per institution and scoring for the local baseline). */
export function summariseBySetting(rows: SimRecord[]): SettingSummary[] {
  const groups = new Map<string, { first: SimRecord; aucs: number[]; seeds: Set<number> }>();
  for (const r of rows) {
    const key = JSON.stringify([r.baseline, r.institution, r.scoredOn, r.epsilon, r.privacy, r.aggregation, r.model, r.rounds, r.dropout, r.split, r.institutions]);
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { first: r, aucs: [], seeds: new Set() }));
    g.seeds.add(r.seed);
    if (Number.isFinite(r.auc)) g.aucs.push(r.auc);
  }
  return [...groups.values()].map(({ first: r, aucs, seeds }) => {
    const stats = aucs.length ? meanAndCi95(aucs) : { mean: null, ci95: null };
    return {
      baseline: r.baseline,
      institution: r.institution,
      scoredOn: r.scoredOn,
      epsilon: r.epsilon,
      privacy: r.privacy,
      aggregation: r.aggregation,
      model: r.model,
      rounds: r.rounds,
      dropout: r.dropout,
      seeds: seeds.size,
      aucSeeds: aucs.length,
      aucMean: stats.mean,
      aucCi95: stats.ci95,
    };
  });
}
