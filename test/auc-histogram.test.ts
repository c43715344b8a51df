import { describe, expect, it } from 'vitest';
import { addHistograms, aucFromHistogram, binOfLogit, exactAuc, histogramFromVector, histogramOfScores, histogramToVector } from '@dpfed/privacy/auc-histogram';
import { SeededRandom } from '@dpfed/proto/seeded-random';

/** n scores: positives with probability `rate`, logits N(mean, sd) per class. */
function scores(n: number, rate: number, neg: [number, number], pos: [number, number], seed: string) {
  const random = new SeededRandom(seed);
  const logits = new Float32Array(n);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const positive = random.next() < rate;
    const [mean, sd] = positive ? pos : neg;
    labels[i] = positive ? 1 : 0;
    logits[i] = mean + sd * random.normal();
  }
  return { logits, labels };
}

/** O(n²) reference: P(pos > neg) + ½ P(pos = neg). */
function bruteAuc(s: ArrayLike<number>, labels: ArrayLike<number>): number {
  let wins = 0;
  let pairs = 0;
  for (let i = 0; i < s.length; i++) {
    if (labels[i] !== 1) continue;
    for (let j = 0; j < s.length; j++) {
      if (labels[j] !== 0) continue;
      pairs++;
      wins += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
    }
  }
  return wins / pairs;
}

describe('histogram AUC', () => {
  const cases: Array<[string, number, [number, number], [number, number]]> = [
    ['balanced, overlapping', 0.5, [0, 1], [1, 1]],
    ['fraud-like 2%, scores near 0', 0.02, [-6, 1.5], [-2, 2]],
    ['fraud-like 1%, well separated and saturating', 0.01, [-9, 3], [4, 4]],
    ['4% positives, weak model', 0.04, [-3, 1], [-2.6, 1]],
    ['wide logits beyond the clamp range', 0.03, [-14, 6], [10, 8]],
  ];
  for (const [name, rate, neg, pos] of cases) {
    it(`matches the exact AUC within 0.002 with 1024 bins: ${name}`, () => {
      const { logits, labels } = scores(100_000, rate, neg, pos, name);
      const exact = exactAuc(logits, labels);
      const approx = aucFromHistogram(histogramOfScores(logits, labels, 1024, 16));
      expect(exact).toBeGreaterThan(0.5);
      expect(Math.abs(approx - exact)).toBeLessThanOrEqual(0.002);
    });
  }

  it('is coarse with few bins (so the 1024-bin check is meaningful)', () => {
    const { logits, labels } = scores(20_000, 0.02, [-6, 1.5], [-2, 2], 'coarse');
    const approx = aucFromHistogram(histogramOfScores(logits, labels, 2, 16));
    expect(Math.abs(approx - exactAuc(logits, labels))).toBeGreaterThan(0.01);
  });

  it('summing the histograms of splits gives the histogram of the union', () => {
    const { logits, labels } = scores(30_000, 0.03, [-5, 2], [0, 2], 'splits');
    const whole = histogramOfScores(logits, labels);
    const parts = [
      [0, 7_000],
      [7_000, 19_000],
      [19_000, 30_000],
    ].map(([a, b]) => histogramOfScores(logits.subarray(a, b), labels.subarray(a, b)));
    const summed = parts.reduce((acc, h) => addHistograms(acc, h));
    expect(Array.from(summed.positive)).toEqual(Array.from(whole.positive));
    expect(Array.from(summed.negative)).toEqual(Array.from(whole.negative));
    expect(aucFromHistogram(summed)).toBe(aucFromHistogram(whole));
  });

  it('bins on the logit scale, clamped to the range', () => {
    expect(binOfLogit(-100, 1024, 16)).toBe(0);
    expect(binOfLogit(100, 1024, 16)).toBe(1023);
    expect(binOfLogit(16, 1024, 16)).toBe(1023);
    expect(binOfLogit(0, 1024, 16)).toBe(512);
    expect(binOfLogit(-0.01, 1024, 16)).toBe(511);
  });

  it('round-trips through the flat vector (positives then negatives)', () => {
    const { logits, labels } = scores(5_000, 0.1, [-1, 1], [1, 1], 'vector');
    const h = histogramOfScores(logits, labels, 64, 8);
    const v = histogramToVector(h);
    expect(v).toBeInstanceOf(Uint32Array);
    expect(v.length).toBe(128);
    expect(Array.from(v.subarray(0, 64))).toEqual(Array.from(h.positive));
    const back = histogramFromVector(v, 8);
    expect(back.bins).toBe(64);
    expect(back.logitRange).toBe(8);
    expect(Array.from(back.positive)).toEqual(Array.from(h.positive));
    expect(Array.from(back.negative)).toEqual(Array.from(h.negative));
    expect(histogramFromVector(Array.from(v), 8).negative).toEqual(h.negative);
  });

  it('refuses bad input with a named problem', () => {
    expect(() => histogramOfScores(new Float32Array(2), new Uint8Array(3))).toThrow(/2 logits but 3 labels/);
    expect(() => histogramOfScores(new Float32Array([0.5]), new Float32Array([0.5]))).toThrow(/labels\[0\]/);
    expect(() => histogramOfScores(new Float32Array([NaN]), new Uint8Array([1]))).toThrow(/logits\[0\] is NaN/);
    expect(() => histogramOfScores(new Float32Array(1), new Uint8Array(1), 0)).toThrow(/bins/);
    expect(() => histogramOfScores(new Float32Array(1), new Uint8Array(1), 8, -1)).toThrow(/logitRange/);
    const a = histogramOfScores(new Float32Array([1]), new Uint8Array([1]), 8);
    const b = histogramOfScores(new Float32Array([1]), new Uint8Array([1]), 16);
    expect(() => addHistograms(a, b)).toThrow(/bins differ/);
    expect(() => histogramFromVector(new Uint32Array(3))).toThrow(/even/);
    expect(() => histogramFromVector([1, -1])).toThrow(/entry 1/);
  });

  it('is NaN when a class is absent', () => {
    const h = histogramOfScores(new Float32Array([1, 2]), new Uint8Array([1, 1]));
    expect(aucFromHistogram(h)).toBeNaN();
    expect(exactAuc(new Float32Array([1, 2]), new Uint8Array([0, 0]))).toBeNaN();
  });
});

describe('exact AUC', () => {
  it('counts ties half', () => {
    expect(exactAuc(new Float32Array([1, 1, 1, 1]), new Uint8Array([1, 0, 1, 0]))).toBe(0.5);
    // positives 0.2, 0.5; negatives 0.5, 0.1: pairs 1 + 0 + ½ + 1 = 2.5 of 4.
    expect(exactAuc(new Float64Array([0.2, 0.5, 0.5, 0.1]), new Uint8Array([1, 1, 0, 0]))).toBe(0.625);
    expect(exactAuc(new Float32Array([3, 1]), new Float32Array([1, 0]))).toBe(1);
    expect(exactAuc(new Float32Array([1, 3]), new Float32Array([1, 0]))).toBe(0);
  });

  it('equals the pairwise count on random data with many ties', () => {
    const random = new SeededRandom('ties');
    for (let trial = 0; trial < 20; trial++) {
      const n = 50 + random.int(150);
      const s = new Float32Array(n);
      const labels = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        s[i] = random.int(12) - 6; // integers: lots of ties
        labels[i] = random.next() < 0.3 ? 1 : 0;
      }
      labels[0] = 1;
      labels[1] = 0;
      expect(exactAuc(s, labels)).toBeCloseTo(bruteAuc(s, labels), 12);
    }
  });
});
