import { describe, expect, it } from 'vitest';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { STRATEGY_NAMES, type AggregatedSum, type ClientUpdate } from '@dpfed/coordinator/strategy';
import { aucFromHistogram, emptyHistogram } from '@dpfed/privacy/auc-histogram';
import { createStrategy, FedAdamStrategy, FedAvgStrategy, FedProxStrategy, TrimmedMeanStrategy } from '@dpfed/coordinator/strategies/index';
import { accumulateWeighted, ArrivalWeightedSum, scaleAndAdd, WeightedSumBuffer } from '@dpfed/coordinator/weighted-sum';

const f32 = (values: number[]) => Float32Array.from(values);
const update = (institutionId: string, weight: number, delta: number[]): ClientUpdate => ({ institutionId, weight, delta: f32(delta) });

function expectClose(actual: Float32Array, expected: number[], tolerance = 1e-6): void {
  expect(actual).toBeInstanceOf(Float32Array);
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i] - expected[i]), `index ${i}: ${actual[i]} vs ${expected[i]}`).toBeLessThanOrEqual(tolerance);
  }
}

/** The secure-aggregation view of a set of updates, computed here with a plain loop. */
function plainSum(updates: readonly ClientUpdate[]): AggregatedSum {
  const n = updates[0].delta.length;
  const acc = new Float64Array(n);
  let totalWeight = 0;
  for (const u of updates) {
    totalWeight += u.weight;
    for (let i = 0; i < n; i++) acc[i] += u.weight * u.delta[i];
  }
  return { weightedDeltaSum: Float32Array.from(acc), totalWeight, count: updates.length };
}

function randomUpdates(seed: string, clients: number, length: number): ClientUpdate[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: clients }, (_, k) => {
    const delta = new Float32Array(length);
    for (let i = 0; i < length; i++) delta[i] = (random.next() - 0.5) * 0.2;
    return { institutionId: `bank-${k}`, weight: 1 + Math.floor(random.next() * 500), delta };
  });
}

describe('weighted-sum kernel', () => {
  it('sums 5 weighted vectors (a group of four plus one) over a length that is not a multiple of 4', () => {
    const vectors = [f32([1, 0, 0, 0, 0, 1]), f32([0, 1, 0, 0, 0, 1]), f32([0, 0, 1, 0, 0, 1]), f32([0, 0, 0, 1, 0, 1]), f32([0, 0, 0, 0, 1, 1])];
    const acc = new Float64Array(6).fill(0.5);
    accumulateWeighted(acc, vectors, [1, 2, 1, 1, 5]);
    expect(Array.from(acc)).toEqual([1.5, 2.5, 1.5, 1.5, 5.5, 10.5]);
    expect(Array.from(scaleAndAdd(f32([1, 1, 1, 1, 1, 1]), acc, 2))).toEqual([4, 6, 4, 4, 12, 22]);
  });

  it('refuses vectors of the wrong length and mismatched weights', () => {
    expect(() => accumulateWeighted(new Float64Array(3), [f32([1, 2])], [1])).toThrow(/vector 0 has 2 values, expected 3/);
    expect(() => accumulateWeighted(new Float64Array(2), [f32([1, 2])], [1, 2])).toThrow(/1 vectors but 2 weights/);
  });
});

describe('arrival sum (plain rounds fold updates as they arrive)', () => {
  it('is bit for bit the batch sum over the same updates in arrival order, for 1 to 10 updates and a length across blocks', () => {
    for (let clients = 1; clients <= 10; clients++) {
      const updates = randomUpdates(`arrivals-${clients}`, clients, 9_001);
      const batch = new WeightedSumBuffer().weightedSum(
        updates.map((u) => u.delta),
        updates.map((u) => u.weight),
        9_001,
      );
      const released: Float32Array[] = [];
      const arrivals = new ArrivalWeightedSum(
        new Float64Array(9_001),
        updates.map((u) => u.institutionId),
        (v) => released.push(v),
      );
      for (const u of updates) arrivals.add(u.institutionId, u.delta, u.weight);
      const { weightedSum, totalWeight, count } = arrivals.finish();
      expect(Buffer.from(weightedSum.buffer).equals(Buffer.from(batch.buffer)), `${clients} updates`).toBe(true);
      expect(count).toBe(clients);
      expect(totalWeight).toBe(updates.reduce((a, u) => a + u.weight, 0));
      expect(released).toEqual(updates.map((u) => u.delta)); // every vector handed back once folded in, in order
    }
  });

  it('folds every fourth arrival at once, keeping at most three pending', () => {
    const released: Float32Array[] = [];
    const arrivals = new ArrivalWeightedSum(new Float64Array(2), ['a', 'b', 'c', 'd', 'e', 'f'], (v) => released.push(v));
    for (const id of ['a', 'b', 'c']) arrivals.add(id, f32([1, 1]), 1);
    expect(released.length).toBe(0);
    arrivals.add('d', f32([1, 1]), 1);
    expect(released.length).toBe(4);
    arrivals.add('f', f32([1, 1]), 1); // waits for e
    arrivals.discard(); // a failed round gives the held vector back
    expect(released.length).toBe(5);
  });

  it('is the same sum bit for bit whatever order the updates arrive in, with some participants absent', () => {
    const updates = randomUpdates('arrival-orders', 10, 1_003);
    const order = updates.map((u) => u.institutionId);
    const present = updates.filter((_, k) => k !== 2 && k !== 7);
    const batch = new WeightedSumBuffer().weightedSum(
      present.map((u) => u.delta),
      present.map((u) => u.weight),
      1_003,
    );
    const random = new SeededRandom('arrival-shuffles');
    for (let trial = 0; trial < 20; trial++) {
      const arrived = [...present];
      random.shuffle(arrived);
      const arrivals = new ArrivalWeightedSum(new Float64Array(1_003), order);
      if (trial % 2) arrivals.skip('bank-7'); // a decline told before the end; bank-2 is found absent at the end
      for (const u of arrived) arrivals.add(u.institutionId, u.delta, u.weight);
      const { weightedSum, count } = arrivals.finish();
      expect(count).toBe(8);
      expect(Buffer.from(weightedSum.buffer).equals(Buffer.from(batch.buffer)), `arrival order ${arrived.map((u) => u.institutionId).join(',')}`).toBe(true);
    }
    // integer weights times float32 values sum exactly in float64 here, so any order gives this sum; with
    // weights that are not integers the order of a plain float64 sum shows in the last bits
    const thirds = present.map((u) => u.weight / 3);
    const forward = new WeightedSumBuffer().weightedSum(
      present.map((u) => u.delta),
      thirds,
      1_003,
    );
    const backward = new WeightedSumBuffer().weightedSum(
      [...present].reverse().map((u) => u.delta),
      [...thirds].reverse(),
      1_003,
    );
    expect(Buffer.from(backward.buffer).equals(Buffer.from(forward.buffer))).toBe(false);
    const arrivals = new ArrivalWeightedSum(new Float64Array(1_003), order);
    for (const k of [9, 8, 6, 5, 4, 3, 1, 0]) arrivals.add(updates[k].institutionId, updates[k].delta, updates[k].weight / 3);
    expect(Buffer.from(arrivals.finish().weightedSum.buffer).equals(Buffer.from(forward.buffer))).toBe(true);
  });

  it('folds an update only once every participant before it has arrived or is absent', () => {
    const released: Float32Array[] = [];
    const arrivals = new ArrivalWeightedSum(new Float64Array(1), ['a', 'b', 'c', 'd', 'e'], (v) => released.push(v));
    for (const id of ['b', 'c', 'd', 'e']) arrivals.add(id, f32([1]), 1);
    expect(released.length).toBe(0); // all wait for a
    arrivals.skip('a');
    expect(released.length).toBe(4);
  });

  it('refuses a vector of the wrong length, a bad weight, a stranger or a second update', () => {
    const arrivals = new ArrivalWeightedSum(new Float64Array(3), ['a', 'b']);
    expect(() => arrivals.add('a', f32([1, 2]), 1)).toThrow(/2 values, expected 3/);
    expect(() => arrivals.add('a', f32([1, 2, 3]), 0)).toThrow(/weight must be positive/);
    expect(() => arrivals.add('a', f32([1, 2, 3]), Number.NaN)).toThrow(/weight must be positive/);
    expect(() => arrivals.add('z', f32([1, 2, 3]), 1)).toThrow(/z, who is not a participant/);
    arrivals.add('b', f32([1, 2, 3]), 1);
    expect(() => arrivals.add('b', f32([1, 2, 3]), 1)).toThrow(/a second update from b/);
  });

  for (const name of ['fedavg', 'fedprox', 'fedadam'] as const) {
    it(`${name}: the arrival sum gives bit for bit the model aggregateFit gives`, () => {
      const updates = randomUpdates(`arrivals-${name}`, 10, 5_003);
      const global = new Float32Array(5_003).map((_, i) => Math.cos(i));
      const arrivals = new ArrivalWeightedSum(
        new Float64Array(5_003),
        updates.map((u) => u.institutionId),
      );
      for (const u of updates) arrivals.add(u.institutionId, u.delta, u.weight);
      const { weightedSum, totalWeight, count } = arrivals.finish();
      const fromArrivals = createStrategy(name, {}).aggregateFitFromSum(1, global, { weightedDeltaSum: weightedSum, totalWeight, count });
      const fromUpdates = createStrategy(name, {}).aggregateFit(1, global, updates);
      expect(Buffer.from(fromArrivals.buffer).equals(Buffer.from(fromUpdates.buffer))).toBe(true);
    });
  }
});

describe('fedavg', () => {
  it('takes the example-weighted mean of the deltas', () => {
    // weighted sum [1·1 + 3·5, 1·0 + 3·4, 1·(−2) + 3·2] = [16, 12, 4]; ÷ 4 = [4, 3, 1]; + global [1, 2, 3]
    const global = f32([1, 2, 3]);
    const result = new FedAvgStrategy().aggregateFit(1, global, [update('a', 1, [1, 0, -2]), update('b', 3, [5, 4, 2])]);
    expect(Array.from(result)).toEqual([5, 5, 4]);
    expect(Array.from(global)).toEqual([1, 2, 3]); // not mutated
  });

  it('handles 5 updates and an odd length', () => {
    const updates = [
      update('a', 1, [1, 0, 0, 0, 0, 1, 0]),
      update('b', 2, [0, 1, 0, 0, 0, 1, 0]),
      update('c', 1, [0, 0, 1, 0, 0, 1, 0]),
      update('d', 1, [0, 0, 0, 1, 0, 1, 0]),
      update('e', 5, [0, 0, 0, 0, 1, 1, 10]),
    ];
    // weighted sums [1, 2, 1, 1, 5, 10, 50] over total weight 10
    const result = new FedAvgStrategy().aggregateFit(2, new Float32Array(7), updates);
    expectClose(result, [0.1, 0.2, 0.1, 0.1, 0.5, 1, 5]);
  });

  it('sends no proximal term and keeps no state', () => {
    const s = new FedAvgStrategy();
    expect(s.configureFit(1)).toEqual({ proximalMu: 0 });
    expect(s.worksOnSums).toBe(true);
    expect(s.saveState()).toBeNull();
    expect(() => s.loadState(new Uint8Array(3))).toThrow(/no server state/);
  });

  it('refuses empty rounds, wrong lengths and bad weights', () => {
    const s = new FedAvgStrategy();
    expect(() => s.aggregateFit(1, f32([0, 0]), [])).toThrow(/no updates/);
    expect(() => s.aggregateFit(1, f32([0, 0]), [update('bank-x', 1, [1, 2, 3])])).toThrow(/bank-x has 3 values, the model has 2/);
    expect(() => s.aggregateFit(1, f32([0, 0]), [update('bank-y', 0, [1, 2])])).toThrow(/bank-y has weight 0/);
    const sum: AggregatedSum = { weightedDeltaSum: f32([1, 2]), totalWeight: 0, count: 1 };
    expect(() => s.aggregateFitFromSum(1, f32([0, 0]), sum)).toThrow(/totalWeight must be a positive/);
    expect(() => s.aggregateFitFromSum(1, f32([0, 0, 0]), { ...sum, totalWeight: 1 })).toThrow(/2 values, the model has 3/);
  });
});

describe('fedprox', () => {
  it('sends mu and aggregates as fedavg', () => {
    const s = new FedProxStrategy(0.05);
    expect(s.configureFit(3)).toEqual({ proximalMu: 0.05 });
    expect(s.name).toBe('fedprox');
    const result = s.aggregateFit(1, f32([1, 2, 3]), [update('a', 1, [1, 0, -2]), update('b', 3, [5, 4, 2])]);
    expect(Array.from(result)).toEqual([5, 5, 4]);
    expect(new FedProxStrategy().configureFit(1).proximalMu).toBe(0.01);
    expect(() => new FedProxStrategy(-1)).toThrow(/proximalMu/);
  });
});

describe('fedadam', () => {
  const options = { serverLearningRate: 0.1, beta1: 0.5, beta2: 0.75, tau: 0.5 };
  const round1 = [update('a', 1, [2, -4]), update('b', 1, [2, 0])]; // mean d = [2, −2]
  const round2 = [update('a', 3, [1, 4]), update('b', 1, [-3, 4])]; // mean d = [(3 − 3)/4, (12 + 4)/4] = [0, 4]
  // Round 1: m = 0.5·d = [1, −1]; v = 0.25·d² = [1, 1]; x = [0, 1] + 0.1·m/(1 + 0.5)
  const x1 = [0.1 / 1.5, 1 - 0.1 / 1.5];
  // Round 2: m = 0.5·[1, −1] + 0.5·[0, 4] = [0.5, 1.5]; v = 0.75·[1, 1] + 0.25·[0, 16] = [0.75, 4.75]
  const x2 = [x1[0] + (0.1 * 0.5) / (Math.sqrt(0.75) + 0.5), x1[1] + (0.1 * 1.5) / (Math.sqrt(4.75) + 0.5)];

  it('takes two Adam steps on the pseudo-gradient, matching the hand computation', () => {
    const s = new FedAdamStrategy(options);
    const after1 = s.aggregateFit(1, f32([0, 1]), round1);
    expectClose(after1, x1);
    const after2 = s.aggregateFit(2, after1, round2);
    expectClose(after2, x2);
    expect(s.stepCount).toBe(2);
  });

  it('resumes from saved state exactly as if it had never stopped', () => {
    const continuing = new FedAdamStrategy(options);
    const after1 = continuing.aggregateFit(1, f32([0, 1]), round1);
    const state = continuing.saveState();
    expect(state).toBeInstanceOf(Uint8Array);
    expect(state!.length).toBe(16 + 8 * 2);

    const restored = new FedAdamStrategy(options);
    restored.loadState(state);
    expect(restored.stepCount).toBe(1);
    const resumed = restored.aggregateFit(2, after1, round2);
    const uninterrupted = continuing.aggregateFit(2, after1, round2);
    expect(Array.from(resumed)).toEqual(Array.from(uninterrupted));
    expectClose(resumed, x2);

    // A fresh strategy (no state) takes a different step from the same point: the state matters.
    const fresh = new FedAdamStrategy(options).aggregateFit(2, after1, round2);
    expect(Array.from(fresh)).not.toEqual(Array.from(resumed));
  });

  it('refuses corrupt or mismatched state', () => {
    const s = new FedAdamStrategy(options);
    expect(() => s.loadState(new Uint8Array(5))).toThrow(/too short/);
    expect(() => s.loadState(new Uint8Array(40))).toThrow(/bad magic/);
    const good = new FedAdamStrategy(options);
    good.aggregateFit(1, f32([0, 1]), round1);
    const state = good.saveState()!;
    expect(() => s.loadState(state.subarray(0, state.length - 1))).toThrow(/expected 32/);
    s.loadState(state);
    expect(() => s.aggregateFit(2, f32([0, 1, 2]), [update('a', 1, [1, 1, 1])])).toThrow(/state has 2 values, the model has 3/);
    s.loadState(null);
    expect(s.aggregateFit(1, f32([0, 1, 2]), [update('a', 1, [1, 1, 1])]).length).toBe(3);
  });

  it('validates its hyperparameters', () => {
    expect(() => new FedAdamStrategy({ beta1: 1 })).toThrow(/beta1/);
    expect(() => new FedAdamStrategy({ tau: 0 })).toThrow(/tau/);
    expect(() => new FedAdamStrategy({ serverLearningRate: Number.NaN })).toThrow(/serverLearningRate/);
  });
});

describe('trimmed-mean', () => {
  it('cuts the outliers at each end of every coordinate and ignores weights', () => {
    const s = new TrimmedMeanStrategy(0.2); // 5 updates → 1 cut at each end
    const updates = [update('a', 1, [1, -500, 5]), update('b', 100, [2, 0, 5]), update('c', 1, [3, 1, 5]), update('d', 7, [4, 2, 5]), update('evil', 1, [1000, 3, 5])];
    // column 0: drop 1 and 1000 → mean(2, 3, 4) = 3; column 1: drop −500 and 3 → mean(0, 1, 2) = 1; column 2: 5
    expect(Array.from(s.aggregateFit(1, f32([10, 10, 10]), updates))).toEqual([13, 11, 15]);
    expect(s.trimCount(5)).toBe(1);
    // With 0.1 and 5 updates nothing is cut: the plain (unweighted) mean, pulled by the outlier.
    // column 0: (1 + 2 + 3 + 4 + 1000)/5 = 202; column 1: (−500 + 0 + 1 + 2 + 3)/5 = −98.8
    expectClose(new TrimmedMeanStrategy(0.1).aggregateFit(1, f32([0, 0, 0]), updates), [202, -98.8, 5], 1e-4);
  });

  it('refuses to run from a secure sum, saying why', () => {
    const s = new TrimmedMeanStrategy();
    expect(s.worksOnSums).toBe(false);
    expect(() => s.aggregateFitFromSum(1, f32([0]), { weightedDeltaSum: f32([1]), totalWeight: 1, count: 1 })).toThrow(/needs the individual updates.*secure aggregation/);
  });

  it('validates trimFraction', () => {
    expect(() => new TrimmedMeanStrategy(0.5)).toThrow(/trimFraction must be in \[0, 0.5\)/);
    expect(() => new TrimmedMeanStrategy(-0.1)).toThrow(/trimFraction/);
  });
});

describe('aggregation from the secure sum', () => {
  const updates = randomUpdates('from-sum', 7, 1001);
  const global = new Float32Array(1001).map((_, i) => Math.sin(i));

  for (const name of ['fedavg', 'fedprox'] as const) {
    it(`${name}: the sum gives the same model as the individual updates`, () => {
      const a = createStrategy(name, {}).aggregateFit(1, global, updates);
      const b = createStrategy(name, {}).aggregateFitFromSum(1, global, plainSum(updates));
      expectClose(b, Array.from(a), 1e-6);
    });
  }

  it('fedadam: two rounds from sums equal two rounds from updates', () => {
    const second = randomUpdates('from-sum-2', 7, 1001);
    const fromUpdates = new FedAdamStrategy();
    const fromSums = new FedAdamStrategy();
    const a1 = fromUpdates.aggregateFit(1, global, updates);
    const b1 = fromSums.aggregateFitFromSum(1, global, plainSum(updates));
    expectClose(b1, Array.from(a1), 1e-5);
    const a2 = fromUpdates.aggregateFit(2, a1, second);
    const b2 = fromSums.aggregateFitFromSum(2, a1, plainSum(second));
    expectClose(b2, Array.from(a2), 1e-5);
    // and the step actually moved the model
    expect(Math.abs(a2[0] - global[0])).toBeGreaterThan(1e-3);
  });
});

describe('the evaluate hook', () => {
  it('every strategy turns the summed evaluation into AUC from the summed ROC and example-weighted loss and accuracy', () => {
    const histogram = emptyHistogram(64, 8);
    histogram.positive[50] = 30;
    histogram.positive[20] = 10;
    histogram.negative[10] = 150;
    histogram.negative[40] = 10;
    const totals = { histogram, lossSum: 40, correct: 180, n: 200 };
    for (const name of STRATEGY_NAMES) {
      const m = createStrategy(name, {}).evaluate(3, totals);
      expect(m).toEqual({ auc: aucFromHistogram(histogram), loss: 0.2, accuracy: 0.9, examples: 200 });
      expect(m.auc).toBeGreaterThan(0.7);
      const none = createStrategy(name, {}).evaluate(3, { histogram: emptyHistogram(64, 8), lossSum: 0, correct: 0, n: 0 });
      expect(none.examples).toBe(0);
      expect([none.auc, none.loss, none.accuracy].every(Number.isNaN)).toBe(true);
    }
  });
});

describe('createStrategy', () => {
  it('builds every named strategy with its options', () => {
    for (const name of STRATEGY_NAMES) expect(createStrategy(name, {}).name).toBe(name);
    expect(createStrategy('fedprox', { proximalMu: 0.3 }).configureFit(1).proximalMu).toBe(0.3);
    expect((createStrategy('trimmed-mean', { trimFraction: 0.25 }) as TrimmedMeanStrategy).trimFraction).toBe(0.25);
    expect((createStrategy('fedadam', { beta2: 0.5 }) as FedAdamStrategy).beta2).toBe(0.5);
  });

  it('refuses an unknown name, listing the valid ones', () => {
    expect(() => createStrategy('fedsgd' as never, {})).toThrow(/unknown strategy "fedsgd".*fedavg, fedprox, fedadam, trimmed-mean/);
  });
});
