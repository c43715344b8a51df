import { beforeAll, describe, expect, it } from 'vitest';
import { LocalTrainer, type TrainingConfig, type TrainingData } from '@dpfed/client/local-trainer';
import { discretisationCost } from '@dpfed/privacy/discretisation-cost';
import { selectBackend } from '@dpfed/client/tf-backend';
import { flattenParameters, initialParameters, modelSpecFromShorthand, parameterCount, type ModelSpec } from '@dpfed/proto/model-spec';
import { SeededRandom } from '@dpfed/proto/seeded-random';

type Tf = typeof import('@dpfed/client/tfjs');
let tf: Tf;

beforeAll(async () => {
  tf = (await selectBackend('wasm')).tf;
});

const DIM = 8;

/** Separable up to a little label noise: y = [w·x + noise > 0.8]. */
function data(n: number, seed: string): TrainingData {
  const random = new SeededRandom(seed);
  const w = Float64Array.from({ length: DIM }, (_, i) => (i % 2 ? 1 : -1) * (1 + i / DIM));
  const x = new Float32Array(n * DIM);
  const y = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let dot = 0;
    for (let d = 0; d < DIM; d++) {
      const v = random.normal();
      x[r * DIM + d] = v;
      dot += v * w[d];
    }
    y[r] = dot / Math.sqrt(DIM) + 0.3 * random.normal() > 0.8 ? 1 : 0;
  }
  return { x, y, n, dim: DIM };
}

const train = data(3000, 'train');
const valid = data(2000, 'valid');

const config = (over: Partial<TrainingConfig> = {}): TrainingConfig => ({
  localSteps: 188, // two passes over 3000 rows in batches of 32
  batchSize: 32,
  learningRate: 0.1,
  optimizer: 'sgd',
  proximalMu: 0,
  privacy: { mode: 'off' },
  seed: 'test',
  ...over,
});

const recordPrivacy = (clipNorm: number): TrainingConfig['privacy'] => ({
  mode: 'record',
  record: { clipNorm, targetEpsilon: 3, delta: 1e-5, plannedRounds: 5, accountant: 'rdp', sampleRate: 64 / 3000 },
});

function init(spec: ModelSpec, seed = 'init'): Float32Array {
  return flattenParameters(spec, initialParameters(spec, new SeededRandom(seed)));
}

function distance(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

describe('LocalTrainer', () => {
  for (const shorthand of ['mlp:16,8', 'logistic', 'mlp:12:tanh']) {
    it(`training raises validation AUC on separable data (${shorthand})`, () => {
      const spec = modelSpecFromShorthand(shorthand, DIM);
      const trainer = new LocalTrainer(tf, spec);
      const start = init(spec, `start-${shorthand}`);
      const before = trainer.evaluate(start, valid, { bins: 1024, logitRange: 16 });
      const result = trainer.train(start, train, { config: config() });
      const after = trainer.evaluate(result.params, valid, { bins: 1024, logitRange: 16 });
      expect(result.params.length).toBe(parameterCount(spec));
      expect(result.numExamples).toBe(3000);
      expect(result.steps).toBe(2 * Math.ceil(3000 / 32));
      expect(result.examplesProcessed).toBe(6000);
      expect(result.sampleRate).toBe(0);
      expect(after.auc).toBeGreaterThan(0.97);
      expect(after.auc).toBeGreaterThan(before.auc + 0.1);
      expect(after.loss).toBeLessThan(before.loss);
      expect(after.accuracy).toBeGreaterThan(0.9);
      expect(Math.abs(after.histogramAuc - after.auc)).toBeLessThan(0.002);
      expect(after.n).toBe(2000);
      expect(after.histogram.positive.reduce((a, b) => a + b, 0) + after.histogram.negative.reduce((a, b) => a + b, 0)).toBe(2000);
      trainer.dispose();
    });
  }

  it('Adam trains too', () => {
    const spec = modelSpecFromShorthand('mlp:16,8', DIM);
    const trainer = new LocalTrainer(tf, spec);
    const result = trainer.train(init(spec), train, { config: config({ optimizer: 'adam', learningRate: 0.01, localSteps: 94 }) });
    expect(trainer.evaluate(result.params, valid).auc).toBeGreaterThan(0.97);
    trainer.dispose();
  });

  it('FedProx μ pulls the local model toward the global one', () => {
    const spec = modelSpecFromShorthand('mlp:16,8', DIM);
    const trainer = new LocalTrainer(tf, spec);
    const global = init(spec);
    const free = trainer.train(global, train, { config: config({ proximalMu: 0 }) });
    const prox = trainer.train(global, train, { config: config({ proximalMu: 5 }) });
    const dFree = distance(free.params, global);
    const dProx = distance(prox.params, global);
    expect(dFree).toBeGreaterThan(0.5);
    expect(dProx).toBeLessThan(0.5 * dFree);
    // Same seed, same data order, μ = 0: identical result (the prox term is the only difference).
    const again = trainer.train(global, train, { config: config({ proximalMu: 0 }) });
    expect(distance(again.params, free.params)).toBe(0);
    trainer.dispose();
  });

  it('record mode runs DP-SGD, reports steps, q and σ, and still learns', () => {
    const spec = modelSpecFromShorthand('mlp:16,8', DIM);
    const trainer = new LocalTrainer(tf, spec);
    const start = init(spec);
    const result = trainer.train(start, train, {
      config: config({ privacy: recordPrivacy(1), batchSize: 64, localSteps: 141, learningRate: 0.5 }),
      noiseMultiplier: 0.7,
    });
    const q = 64 / 3000;
    expect(result.sampleRate).toBeCloseTo(q, 12);
    expect(result.noiseMultiplier).toBe(0.7);
    expect(result.clipNorm).toBe(1);
    expect(result.steps).toBe(141); // the plan's public step count
    // the figures to account: σ charged for the snapping grid of this model's vector, and the sampler's tail
    const cost = discretisationCost({ noiseMultiplier: 0.7, clipNorm: 1, dimension: trainer.network.size, steps: result.steps });
    expect(result.chargedNoiseMultiplier).toBe(cost.chargedNoiseMultiplier);
    expect(result.chargedNoiseMultiplier).toBeLessThan(0.7);
    expect(result.chargedNoiseMultiplier).toBeGreaterThan(0.7 * (1 - 1e-4));
    expect(result.samplerTailMass).toBe(cost.samplerTailMass);
    expect(result.samplerTailMass).toBeGreaterThan(0);
    // Poisson draws: about q·n per step.
    expect(result.examplesProcessed / result.steps).toBeGreaterThan(50);
    expect(result.examplesProcessed / result.steps).toBeLessThan(78);
    expect(trainer.evaluate(result.params, valid).auc).toBeGreaterThan(0.9);
    // Noise: two runs from the same start differ (CSPRNG, never seeded).
    const other = trainer.train(start, train, { config: config({ privacy: recordPrivacy(1), batchSize: 64, localSteps: 9 }), noiseMultiplier: 0.7 });
    const same = trainer.train(start, train, { config: config({ privacy: recordPrivacy(1), batchSize: 64, localSteps: 9 }), noiseMultiplier: 0.7 });
    expect(distance(other.params, same.params)).toBeGreaterThan(0);
    trainer.dispose();
  });

  it('leaks no tensors across repeated train and evaluate calls (optimiser state included)', () => {
    const spec = modelSpecFromShorthand('mlp:16,8', DIM);
    const trainer = new LocalTrainer(tf, spec);
    const global = init(spec);
    const small = { ...train, n: 500, x: train.x.subarray(0, 500 * DIM), y: train.y.subarray(0, 500) };
    const runAll = () => {
      trainer.train(global, small, { config: config({ localSteps: 16 }) });
      trainer.train(global, small, { config: config({ localSteps: 16, optimizer: 'adam', learningRate: 0.01 }) });
      trainer.train(global, small, { config: config({ localSteps: 16, proximalMu: 0.1 }) });
      trainer.train(global, small, { config: config({ localSteps: 16, privacy: recordPrivacy(1) }), noiseMultiplier: 1 });
      trainer.evaluate(global, valid);
    };
    runAll();
    const settled = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) runAll();
    expect(tf.memory().numTensors).toBe(settled);
    trainer.dispose();
    expect(tf.memory().numTensors).toBe(settled - 6);
  });

  it('refuses bad input with the field named', () => {
    const spec = modelSpecFromShorthand('mlp:4', DIM);
    const trainer = new LocalTrainer(tf, spec);
    const global = init(spec);
    expect(() => trainer.train(global, { ...train, dim: 5 }, { config: config() })).toThrow(/dim 5 .* inputDim 8/);
    expect(() => trainer.train(global, { ...train, n: 10 }, { config: config() })).toThrow(/x has/);
    const badLabels = { ...train, y: Float32Array.from(train.y, (v, i) => (i === 7 ? 0.5 : v)) };
    expect(() => trainer.train(global, badLabels, { config: config() })).toThrow(/label 7/);
    expect(() => trainer.train(global.subarray(1), train, { config: config() })).toThrow(/expected \d+ values/);
    const nan = Float32Array.from(global);
    nan[3] = NaN;
    expect(() => trainer.train(nan, train, { config: config() })).toThrow(/value 3 is not finite/);
    expect(() => trainer.train(global, train, { config: config({ batchSize: 0 }) })).toThrow(/batchSize/);
    expect(() => trainer.train(global, train, { config: config({ privacy: recordPrivacy(1) }) })).toThrow(/noiseMultiplier/);
    trainer.dispose();
  });
});

describe('selectBackend', () => {
  it('is idempotent and reports the backend', async () => {
    const a = await selectBackend('wasm');
    const b = await selectBackend('wasm');
    expect(b).toBe(a);
    expect(a.name).toBe('wasm');
    expect(a.tf.getBackend()).toBe('wasm');
  });

  it('auto picks the fastest installed backend (here: wasm, as tfjs-node is not installed)', async () => {
    let nodeInstalled = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      nodeInstalled = false;
    }
    const auto = await selectBackend('auto');
    expect(auto.name).toBe(nodeInstalled ? 'tensorflow' : 'wasm');
  });

  it('an explicitly requested backend that is not installed is an error naming the package', async () => {
    let nodeInstalled = true;
    try {
      await import('@tensorflow/tfjs-node' as string);
    } catch {
      nodeInstalled = false;
    }
    if (!nodeInstalled) await expect(selectBackend('tensorflow')).rejects.toThrow(/@tensorflow\/tfjs-node.*npm install/);
    await expect(selectBackend('nope' as never)).rejects.toThrow(/expected one of auto\|wasm\|cpu/);
  });

  it('switches to cpu and back to wasm', async () => {
    const cpu = await selectBackend('cpu');
    expect(cpu.tf.getBackend()).toBe('cpu');
    const wasm = await selectBackend('wasm');
    expect(wasm.tf.getBackend()).toBe('wasm');
  });
});
