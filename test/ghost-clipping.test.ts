import type { Tensor, Tensor2D } from '@dpfed/client/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MlpNetwork } from '@dpfed/client/mlp-network';
import { selectBackend } from '@dpfed/client/tf-backend';
import { addDenseSquaredNorms, addGhostSquaredNorms, clipFactors, squaredNorm } from '@dpfed/privacy/ghost-clipping';
import { ghostClippedSum, ghostRuleFor, type LayerTrace } from './reference/ghost-clipping-tensors.ts';
import { referenceBackward } from './reference/mlp-backward.ts';
import { flattenParameters, initialParameters, type ModelSpec } from '@dpfed/proto/model-spec';
import { SeededRandom } from '@dpfed/proto/seeded-random';

type Tf = typeof import('@dpfed/client/tfjs');
let tf: Tf;

beforeAll(async () => {
  tf = (await selectBackend('wasm')).tf;
});

const specs: ModelSpec[] = [
  {
    kind: 'mlp',
    inputDim: 6,
    hidden: [
      { units: 9, activation: 'relu' },
      { units: 5, activation: 'tanh' },
    ],
  },
  { kind: 'mlp', inputDim: 4, hidden: [{ units: 7, activation: 'sigmoid' }] },
  { kind: 'logistic', inputDim: 5, hidden: [] },
];

function batch(spec: ModelSpec, rows: number, seed: string) {
  const random = new SeededRandom(seed);
  const x = new Float32Array(rows * spec.inputDim).map(() => 2 * random.normal());
  const y = new Float32Array(rows).map(() => (random.next() < 0.4 ? 1 : 0));
  return { x, y };
}

/** Per-example gradients the slow, independent way: one tf.variableGrads (autodiff) per example. */
function naivePerExample(net: MlpNetwork, x: Float32Array, y: Float32Array, dim: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let i = 0; i < y.length; i++) {
    const grads = tf.tidy(() => {
      const xi = tf.tensor2d(x.slice(i * dim, (i + 1) * dim), [1, dim]);
      const yi = tf.scalar(y[i]);
      const { grads } = tf.variableGrads(() => {
        const z = tf.reshape(net.logits(xi), []);
        return tf.sub(tf.softplus(z), tf.mul(yi, z)) as import('@dpfed/client/tfjs').Scalar;
      }, net.variables);
      return net.variables.map((v) => grads[v.name]);
    });
    const flat = new Float32Array(net.size);
    let offset = 0;
    for (const g of grads) {
      flat.set(g.dataSync() as Float32Array, offset);
      offset += g.size;
    }
    tf.dispose(grads);
    out.push(flat);
  }
  return out;
}

const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

function flatten(tensors: Tensor[]): Float32Array {
  return Float32Array.from(tensors.flatMap((t) => Array.from(t.dataSync())));
}

/** Runs `body` on the traces of one backward pass; every tensor made meanwhile is disposed. */
function withTraces<T>(net: MlpNetwork, x: Float32Array, y: Float32Array, dim: number, body: (traces: LayerTrace[]) => T): T {
  let out: T | undefined;
  tf.tidy(() => {
    const pass = referenceBackward(tf, net, tf.tensor2d(x, [y.length, dim]) as Tensor2D, tf.tensor2d(y, [y.length, 1]) as Tensor2D);
    out = body(pass.traces);
  });
  return out as T;
}

describe('ghost clipping', () => {
  for (const [s, spec] of specs.entries()) {
    it(`ghost norms equal naive per-example norms, and the clipped sum the naive clipped sum (spec ${s})`, () => {
      const net = new MlpNetwork(tf, spec, flattenParameters(spec, initialParameters(spec, new SeededRandom(`init${s}`))));
      const rows = 13;
      const { x, y } = batch(spec, rows, `batch${s}`);
      const naive = naivePerExample(net, x, y, spec.inputDim);
      const naiveNorms = naive.map(norm);
      // A clip norm between the smallest and largest norm, so some examples are clipped and some not.
      const sorted = [...naiveNorms].sort((a, b) => a - b);
      const clipNorm = sorted[Math.floor(rows / 2)];
      expect(sorted[0]).toBeLessThan(clipNorm);
      expect(sorted[rows - 1]).toBeGreaterThan(clipNorm * 1.01);

      const before = tf.memory().numTensors;
      const { norms, factors, sum, slow } = withTraces(net, x, y, spec.inputDim, (traces) => {
        const result = ghostClippedSum(tf, traces, clipNorm);
        const out = {
          norms: Float32Array.from(result.norms.dataSync()),
          factors: Float32Array.from(result.factors.dataSync()),
          sum: flatten(result.gradients),
          slow: result.perExampleLayers,
        };
        tf.dispose([...result.gradients, result.norms, result.factors]);
        return out;
      });
      expect(tf.memory().numTensors).toBe(before);
      expect(slow).toEqual([]);

      for (let i = 0; i < rows; i++) {
        expect(Math.abs(norms[i] - naiveNorms[i])).toBeLessThanOrEqual(1e-5 * Math.max(1, naiveNorms[i]));
        expect(factors[i]).toBeCloseTo(Math.min(1, clipNorm / naiveNorms[i]), 5);
        // The clip bound, on the independently computed gradient.
        expect(factors[i] * naiveNorms[i]).toBeLessThanOrEqual(clipNorm + 1e-6);
      }
      const expected = new Float32Array(net.size);
      naive.forEach((g, i) => {
        const c = Math.min(1, clipNorm / naiveNorms[i]);
        for (let k = 0; k < g.length; k++) expected[k] += c * g[k];
      });
      for (let k = 0; k < expected.length; k++) expect(Math.abs(sum[k] - expected[k])).toBeLessThanOrEqual(1e-5);
      net.dispose();
    });
  }

  for (const [s, spec] of specs.entries()) {
    it(`the network's fast step (JS ghost norms) matches naive per-example gradients: clip factors, clipped sum, mean (spec ${s})`, () => {
      const net = new MlpNetwork(tf, spec, flattenParameters(spec, initialParameters(spec, new SeededRandom(`fast${s}`))));
      const rows = 17;
      const { x, y } = batch(spec, rows, `fastbatch${s}`);
      const naive = naivePerExample(net, x, y, spec.inputDim);
      const naiveNorms = naive.map(norm);
      const sorted = [...naiveNorms].sort((a, b) => a - b);
      const clipNorm = sorted[Math.floor(rows / 2)];
      expect(sorted[rows - 1]).toBeGreaterThan(clipNorm * 1.01);
      const before = tf.memory().numTensors;
      const clipped = net.step(x, y, rows, clipNorm);
      const sum = Float32Array.from(clipped.gradient);
      const factors = Float32Array.from(clipped.factors.subarray(0, rows));
      const mean = Float32Array.from(net.step(x, y, rows).gradient);
      expect(tf.memory().numTensors).toBe(before);
      const expectedSum = new Float32Array(net.size);
      const expectedMean = new Float32Array(net.size);
      naive.forEach((g, i) => {
        const c = Math.min(1, clipNorm / naiveNorms[i]);
        expect(factors[i]).toBeCloseTo(c, 5);
        expect(factors[i] * naiveNorms[i]).toBeLessThanOrEqual(clipNorm + 1e-6);
        for (let k = 0; k < g.length; k++) {
          expectedSum[k] += c * g[k];
          expectedMean[k] += g[k] / rows;
        }
      });
      for (let k = 0; k < net.size; k++) {
        expect(Math.abs(sum[k] - expectedSum[k])).toBeLessThanOrEqual(1e-5);
        expect(Math.abs(mean[k] - expectedMean[k])).toBeLessThanOrEqual(1e-5);
      }
      net.dispose();
    });
  }

  it('addDenseSquaredNorms and clipFactors: the ghost identity on plain arrays, the clip bound, bad input named', () => {
    // Two examples, a = (3, 4) and (0, 1), g = (1, 2) and (2, 0): weight gradient a gᵀ, bias gradient g.
    const a = new Float32Array([3, 4, 0, 1]);
    const g = new Float32Array([1, 2, 2, 0]);
    const out = new Float64Array(2);
    addDenseSquaredNorms(out, a, g, 2, 2, 2);
    const explicit = (ai: number[], gi: number[]) => ai.reduce((s, u) => s + gi.reduce((t, v) => t + (u * v) ** 2, 0), 0) + gi.reduce((s, v) => s + v * v, 0);
    expect(out[0]).toBeCloseTo(explicit([3, 4], [1, 2]), 10);
    expect(out[1]).toBeCloseTo(explicit([0, 1], [2, 0]), 10);
    const factors = clipFactors(out, 5, 2, new Float32Array(2));
    expect(factors[0] * Math.sqrt(out[0])).toBeLessThanOrEqual(5);
    expect(factors[0]).toBeCloseTo(5 / Math.sqrt(out[0]), 5);
    expect(factors[1]).toBe(1); // |∇ℓ| = √8 < 5: untouched
    expect(() => clipFactors(out, 0, 2, new Float32Array(2))).toThrow(/clipNorm/);
    expect(() => clipFactors(new Float64Array([NaN]), 1, 1, new Float32Array(1))).toThrow(/example 0/);
    expect(() => addDenseSquaredNorms(out, a, g, 3, 2, 2)).toThrow(/shorter/);
  });

  it('squaredNorm and addGhostSquaredNorms: the same identity from per-example squares taken elsewhere', () => {
    const v = Float32Array.from({ length: 23 }, (_, i) => (i % 7) - 3.5 + i / 10);
    for (const [from, n] of [
      [0, 23],
      [2, 0],
      [1, 1],
      [3, 4],
      [5, 7],
      [4, 17],
    ]) {
      let expected = 0;
      for (let j = from; j < from + n; j++) expected += v[j] * v[j];
      expect(squaredNorm(v, from, n)).toBeCloseTo(expected, 10);
    }
    const a = new Float32Array([3, 4, 0, 1]);
    const g = new Float32Array([1, 2, 2, 0]);
    const direct = new Float64Array(2);
    addDenseSquaredNorms(direct, a, g, 2, 2, 2);
    const viaSquares = new Float64Array(2);
    addGhostSquaredNorms(
      viaSquares,
      Float64Array.from([0, 1], (i) => squaredNorm(a, 2 * i, 2)),
      Float64Array.from([0, 1], (i) => squaredNorm(g, 2 * i, 2)),
      2,
    );
    expect(Array.from(viaSquares)).toEqual(Array.from(direct));
    expect(() => addGhostSquaredNorms(viaSquares, new Float64Array(1), new Float64Array(2), 2)).toThrow(/shorter/);
  });

  it('an unknown layer kind takes the per-example path and gives the same clipped sum', () => {
    const spec = specs[0];
    const net = new MlpNetwork(tf, spec, flattenParameters(spec, initialParameters(spec, new SeededRandom('unknown'))));
    const { x, y } = batch(spec, 11, 'unknown');
    const clipNorm = 0.5;
    const run = (rename: (t: LayerTrace, i: number) => string) =>
      withTraces(net, x, y, spec.inputDim, (traces) => {
        const renamed = traces.map((t, i) => ({ ...t, kind: rename(t, i) }));
        const result = ghostClippedSum(tf, renamed, clipNorm);
        const out = { norms: Float32Array.from(result.norms.dataSync()), sum: flatten(result.gradients), slow: result.perExampleLayers };
        tf.dispose([...result.gradients, result.norms, result.factors]);
        return out;
      });
    const ghost = run((t) => t.kind);
    const allSlow = run(() => 'conv-of-the-future');
    const mixed = run((t, i) => (i === 1 ? 'mystery' : t.kind));
    expect(ghost.slow).toEqual([]);
    expect(allSlow.slow).toEqual([0, 1, 2]);
    expect(mixed.slow).toEqual([1]);
    const naiveNorms = naivePerExample(net, x, y, spec.inputDim).map(norm);
    expect(naiveNorms.some((n) => n > clipNorm)).toBe(true);
    for (const other of [allSlow, mixed]) {
      for (let i = 0; i < naiveNorms.length; i++) expect(Math.abs(other.norms[i] - naiveNorms[i])).toBeLessThanOrEqual(1e-5 * Math.max(1, naiveNorms[i]));
      for (let k = 0; k < ghost.sum.length; k++) expect(Math.abs(other.sum[k] - ghost.sum[k])).toBeLessThanOrEqual(1e-5);
    }
    net.dispose();
  });

  it('a dense trace whose tensors break the ghost identity is not given the dense rule', () => {
    const trace: LayerTrace = {
      kind: 'dense',
      input: tf.zeros([4, 3, 2]),
      outputGrad: tf.zeros([4, 3, 5]),
      batchGradient: () => [],
    };
    expect(ghostRuleFor(trace)).toBeUndefined();
    tf.dispose([trace.input, trace.outputGrad]);
  });

  it('refuses a non-positive clip norm', () => {
    expect(() => ghostClippedSum(tf, [], 0)).toThrow(/clipNorm/);
    expect(() => ghostClippedSum(tf, [], 1)).toThrow(/no layer traces/);
  });
});
