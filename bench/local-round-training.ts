// The reference for secaggClientTimeRatio: one round of local training of a ~100k-parameter model on a
// demo bank's share of rows (wasm backend, batch 64, one epoch), measured in the same run rather than assumed.
import { LocalTrainer } from '@dpfed/client/local-trainer';
import { selectBackend } from '@dpfed/client/tf-backend';
import { flattenParameters, initialParameters, parameterCount, type ModelSpec } from '@dpfed/proto/model-spec';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import type { TaskConfig } from '@dpfed/proto/task-config';
import { median } from './statistics.ts';
import { syntheticData } from './training-bench.ts';

/** MLP 30-256-256-96-1: 98,497 parameters (about 100k). */
export const SPEC_100K: ModelSpec = {
  kind: 'mlp',
  inputDim: 30,
  hidden: [
    { units: 256, activation: 'relu' },
    { units: 256, activation: 'relu' },
    { units: 96, activation: 'relu' },
  ],
};

export async function measureLocalRoundMs(rows = 2872, repetitions = 3): Promise<{ localRoundMs: number; localRoundParameters: number }> {
  const { tf } = await selectBackend('wasm');
  const data = syntheticData(rows, SPEC_100K.inputDim, 'local-round');
  const trainer = new LocalTrainer(tf, SPEC_100K);
  const global = flattenParameters(SPEC_100K, initialParameters(SPEC_100K, new SeededRandom('local-round')));
  const config: Pick<TaskConfig, 'localSteps' | 'batchSize' | 'learningRate' | 'optimizer' | 'proximalMu' | 'privacy' | 'seed'> = {
    localSteps: Math.ceil(rows / 64),
    batchSize: 64,
    learningRate: 0.01,
    optimizer: 'adam',
    proximalMu: 0,
    privacy: { mode: 'off' },
    seed: '1',
  };
  trainer.train(global, data, { config }); // warm-up
  const times: number[] = [];
  for (let r = 0; r < repetitions; r++) {
    const t0 = performance.now();
    trainer.train(global, data, { config, round: r + 1 });
    times.push(performance.now() - t0);
  }
  trainer.dispose();
  return { localRoundMs: median(times), localRoundParameters: parameterCount(SPEC_100K) };
}
