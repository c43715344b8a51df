// A small record-level DP training case for trainer tests: `n` random rows of 4 features (seeded), a DP-SGD
// config of `localSteps` steps at `sampleRate`, and the initial global parameters of `spec`.
import type { TrainingConfig } from '@dpfed/client/local-trainer';
import { flattenParameters, initialParameters, type ModelSpec } from '@dpfed/proto/model-spec';
import { SeededRandom } from '@dpfed/proto/seeded-random';

export function privateTrainingCase(spec: ModelSpec, o: { seed: string; n: number; localSteps: number; sampleRate: number }) {
  const random = new SeededRandom(o.seed);
  const data = { x: Float32Array.from({ length: o.n * 4 }, () => random.normal()), y: Float32Array.from({ length: o.n }, () => (random.next() < 0.5 ? 1 : 0)), n: o.n, dim: 4 };
  const config: TrainingConfig = {
    localSteps: o.localSteps,
    batchSize: 32,
    learningRate: 0.1,
    optimizer: 'sgd',
    proximalMu: 0,
    privacy: { mode: 'record', record: { clipNorm: 1, targetEpsilon: 3, delta: 1e-5, plannedRounds: 2, accountant: 'rdp', sampleRate: o.sampleRate } },
    seed: 's',
  };
  const global = flattenParameters(spec, initialParameters(spec, new SeededRandom('g')));
  return { data, config, global };
}
