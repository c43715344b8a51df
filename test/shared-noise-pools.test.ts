// Noise pools shared by the trainers of one thread (privacy/shared-noise-pools.ts), as a simulated federation's
// institutions use them: trainers at one scale draw from one pool and one worker, each value handed out once
// (the draws of all trainers add up to what the pool handed out); a trainer's dispose() leaves the shared pool
// running; the pools' own dispose() stops the workers.
import { describe, expect, it } from 'vitest';
import { LocalTrainer } from '@dpfed/client/local-trainer';
import { selectBackend } from '@dpfed/client/tf-backend';
import { SharedNoisePools } from '@dpfed/privacy/shared-noise-pools';
import { privateTrainingCase } from './helpers/private-training-case.ts';
import { modelSpecFromShorthand } from '@dpfed/proto/model-spec';

describe('shared noise pools', () => {
  it('trainers at one scale share one pool and worker; every value is drawn once; the owner stops it', async () => {
    const { tf } = await selectBackend('wasm');
    const spec = modelSpecFromShorthand('mlp:8', 4);
    const shared = new SharedNoisePools({ sharers: 3, maxSlots: 2048 });
    const trainers = [0, 1, 2].map(() => new LocalTrainer(tf, spec, { sharedNoise: shared }));
    const { data, config, global } = privateTrainingCase(spec, { seed: 'shared-noise', n: 300, localSteps: 5, sampleRate: 0.1 });
    try {
      for (const round of [1, 2]) for (const t of trainers) t.train(global, data, { config, noiseMultiplier: 1, round });
      const pool = trainers[0].noisePool!;
      expect(trainers.every((t) => t.noisePool === pool)).toBe(true);
      expect(pool.running).toBe(true);
      // 3 trainers × 2 rounds × 5 steps × the model's size, each value handed out once
      const drawn = pool.stats.fromWorker + pool.stats.inThread;
      expect(drawn).toBe(3 * 2 * 5 * trainers[0].network.size);
      // its ring holds a round for every sharer
      expect(pool.capacity).toBeGreaterThanOrEqual(3 * 5 * trainers[0].network.size);
      trainers[0].dispose();
      expect(pool.running).toBe(true);
      await shared.dispose();
      expect(pool.running).toBe(false);
    } finally {
      for (const t of trainers) t.dispose();
      await shared.dispose();
    }
  });
});
