// The --json summary of a sweep: each setting's AUC mean and 95 % interval over its seeds, and how many
// seeds those figures rest on when some seed's scored rows hold one class only (AUC undefined).
import { describe, expect, it } from 'vitest';
import type { SimRecord } from '@dpfed/simulations/sim-result';
import { summariseBySetting } from '@dpfed/simulations/sim-summary';

function row(seed: number, auc: number, scoredOn: 'test' | 'own'): SimRecord {
  return {
    settingId: 'a1b2c3d4e5f60718',
    baseline: 'local',
    institution: 'site-2',
    scoredOn,
    epsilon: null,
    delta: null,
    privacy: 'off',
    aggregation: 'plain',
    model: 'logistic',
    rounds: 20,
    institutions: 4,
    dropout: 0,
    split: 'column:site',
    seed,
    auc,
    prAuc: 1,
    accuracy: 1,
    aucPerRound: [],
    epsilonSpent: {},
    seconds: 0.01,
    scoredRows: '0123456789abcdef',
    epsilonPerRound: {},
  };
}

describe('summariseBySetting', () => {
  it('says over how many seeds the AUC figures are, when some seeds have no AUC', () => {
    const rows = [row(1, 0.8, 'own'), row(2, Number.NaN, 'own'), row(3, Number.NaN, 'own'), row(1, 0.7, 'test'), row(2, 0.8, 'test'), row(3, 0.9, 'test')];
    const [own, test] = summariseBySetting(rows);
    expect(own).toMatchObject({ scoredOn: 'own', seeds: 3, aucSeeds: 1, aucMean: 0.8, aucCi95: null });
    expect(test).toMatchObject({ scoredOn: 'test', seeds: 3, aucSeeds: 3 });
    expect(test.aucMean).toBeCloseTo(0.8, 12);
    // t(0.975, 2) · s / √3 with s = 0.1
    expect(test.aucCi95).toBeCloseTo((4.303 * 0.1) / Math.sqrt(3), 9);
  });
});
