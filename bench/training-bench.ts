// Local training throughput on the wasm backend, MLP 30-64-32-1, batch 64, 20,000 × 30 synthetic rows, all
// measured in the same run:
//   trainVsModelFit       LocalTrainer (batches from typed arrays, hand-written backward) ÷ tf.layers model.fit
//                         on the same model, data, batch size and optimiser (goal >= 1.5);
//   dpSgdThroughputRatio  DP-SGD (Poisson sampling, ghost clipping, Gaussian noise) ÷ non-private LocalTrainer
//                         (goal >= 0.85), with the trainer as shipped: noise integers drawn ahead of time by a
//                         worker thread into a ring sized for a round, filled between rounds (here: the bench
//                         waits for the refill after each DP run, outside every timed run, so the refill never
//                         slows a timed run); the worker is paused while a round trains from a full ring. This
//                         is the steady state of a federation, whose clients idle between rounds;
//   dpSgdThroughputRatioInThreadNoise  the same with every noise value drawn in the training thread (no worker):
//                         the figure for a single core, or a ring that has run dry;
//   dpSgdThroughputRatioRingCold  DP run that starts right after its ring was emptied, so the worker draws
//                         alongside the steps and the rest is drawn in-thread (no idle time between rounds).
// Both non-private and private training run the same network step (tfjs matrix products, JS elementwise work)
// and the same SGD update; only the private one samples, clips (ghost norms taken in its JS backward pass) and
// adds noise, reading the worker's integers in place and taking its SGD update in the pass that adds them (a
// plain SGD step, as the non-private one takes in its own pass over the parameters).
// Each configuration is warmed up, then run REPS times interleaved; ratios are medians of the per-repetition
// ratios (robust to load drift on a shared machine), throughputs are medians.
import { pathToFileURL } from 'node:url';
import { LocalTrainer, type TrainingConfig, type TrainingData } from '@dpfed/client/local-trainer';
import { selectBackend } from '@dpfed/client/tf-backend';
import { addGaussianNoise } from '@dpfed/privacy/gaussian-noise';
import { flattenParameters, initialParameters, modelSpecFromShorthand, parameterCount } from '@dpfed/proto/model-spec';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { median } from './statistics.ts';

type Tf = typeof import('@dpfed/client/tfjs');

export interface TrainingBenchResult {
  trainVsModelFit: number;
  dpSgdThroughputRatio: number;
  trainSamplesPerSec: number;
  modelFitSamplesPerSec: number;
  dpSgdSamplesPerSec: number;
  dpSgdThroughputRatioInThreadNoise: number;
  dpSgdThroughputRatioRingCold: number;
  /** Share of the timed warm-ring DP runs' noise values that came from the worker's ring. */
  noiseFromWorkerFraction: number;
  /** addGaussianNoise drawn in-thread (CSPRNG discrete Gaussian with snapping) on one gradient of this model: ms per step. */
  dpSgdNoiseMsPerStep: number;
  /** Derived, not measured directly: the in-thread-noise DP/plain ratio if the noise cost nothing (clipping + sampling only). */
  dpSgdRatioExcludingNoise: number;
  backend: string;
}

const ROWS = 20_000;
const DIM = 30;
const BATCH = 64;
const LEARNING_RATE = 0.05;
const REPS = 5;

/** Linearly separable-ish synthetic rows: label = [w·x + noise > 1]. */
export function syntheticData(rows: number, dim: number, seed: string): TrainingData {
  const random = new SeededRandom(seed);
  const w = Float64Array.from({ length: dim }, () => random.normal());
  const x = new Float32Array(rows * dim);
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let dot = 0;
    for (let d = 0; d < dim; d++) {
      const v = random.normal();
      x[r * dim + d] = v;
      dot += v * w[d];
    }
    y[r] = dot / Math.sqrt(dim) + 0.5 * random.normal() > 1 ? 1 : 0;
  }
  return { x, y, n: rows, dim };
}

async function timeModelFit(tf: Tf, data: TrainingData): Promise<number> {
  const model = tf.sequential({
    layers: [tf.layers.dense({ units: 64, activation: 'relu', inputShape: [DIM] }), tf.layers.dense({ units: 32, activation: 'relu' }), tf.layers.dense({ units: 1, activation: 'sigmoid' })],
  });
  const optimizer = tf.train.sgd(LEARNING_RATE);
  model.compile({ optimizer, loss: 'binaryCrossentropy' });
  const xs = tf.tensor2d(data.x, [data.n, data.dim]);
  const ys = tf.tensor2d(data.y, [data.n, 1]);
  try {
    const started = performance.now();
    await model.fit(xs, ys, { batchSize: BATCH, epochs: 1, shuffle: true, verbose: 0 });
    return data.n / ((performance.now() - started) / 1000);
  } finally {
    tf.dispose([xs, ys]);
    model.dispose();
    optimizer.dispose();
  }
}

export async function benchTraining(): Promise<TrainingBenchResult> {
  const { tf, name } = await selectBackend('wasm');
  const spec = modelSpecFromShorthand('mlp:64,32', DIM);
  const data = syntheticData(ROWS, DIM, 'training-bench');
  const global = flattenParameters(spec, initialParameters(spec, new SeededRandom('training-bench/init')));
  const base: TrainingConfig = {
    localSteps: Math.ceil(ROWS / BATCH),
    batchSize: BATCH,
    learningRate: LEARNING_RATE,
    optimizer: 'sgd',
    proximalMu: 0,
    privacy: { mode: 'off' },
    seed: 'training-bench',
  };
  const privateConfig: TrainingConfig = {
    ...base,
    privacy: { mode: 'record', record: { clipNorm: 1, targetEpsilon: 3, delta: 1e-5, plannedRounds: 10, accountant: 'rdp', sampleRate: BATCH / ROWS } },
  };
  const trainer = new LocalTrainer(tf, spec);
  const inThread = new LocalTrainer(tf, spec, { noiseWorker: false });
  const plain = () => {
    const r = trainer.train(global, data, { config: base });
    return r.examplesProcessed / r.seconds;
  };
  const dp = (t: LocalTrainer) => {
    const r = t.train(global, data, { config: privateConfig, noiseMultiplier: 1.0 });
    return r.examplesProcessed / r.seconds;
  };
  /** Waits (untimed) until the worker has refilled the ring: the idle time between rounds. */
  const refill = async () => {
    const pool = trainer.noisePool;
    // Full up to the slot partly used by the last round.
    if (pool) await pool.whenAvailable(pool.capacity - pool.slotValues);
  };
  /** Empties the worker's ring (draws and discards, fresh noise is never reused), then times a DP run. */
  const dpCold = () => {
    const pool = trainer.noisePool;
    if (pool) pool.fill(new Int32Array(pool.available));
    return dp(trainer);
  };
  try {
    // Warm-up: kernels, wasm memory growth, JIT, the noise worker's start.
    plain();
    dp(trainer);
    dp(inThread);
    await refill();
    await timeModelFit(tf, data);
    const fit: number[] = [];
    const own: number[] = [];
    const priv: number[] = [];
    const privInThread: number[] = [];
    const privCold: number[] = [];
    let fromWorker = 0;
    let total = 0;
    for (let rep = 0; rep < REPS; rep++) {
      fit.push(await timeModelFit(tf, data));
      own.push(plain());
      const before = trainer.noisePool?.stats ?? { fromWorker: 0, inThread: 0 };
      priv.push(dp(trainer));
      const after = trainer.noisePool?.stats ?? { fromWorker: 0, inThread: 0 };
      fromWorker += after.fromWorker - before.fromWorker;
      total += after.fromWorker - before.fromWorker + after.inThread - before.inThread;
      await refill();
      privInThread.push(dp(inThread));
      privCold.push(dpCold());
      await refill();
    }
    const noiseVector = new Float32Array(parameterCount(spec));
    const noiseReps = 200;
    const noiseStarted = performance.now();
    for (let i = 0; i < noiseReps; i++) addGaussianNoise(noiseVector, 1);
    const noiseMs = (performance.now() - noiseStarted) / noiseReps;
    const plainStepMs = (1000 * BATCH) / median(own);
    const dpStepMs = (1000 * BATCH) / median(privInThread);
    return {
      trainVsModelFit: median(own.map((v, i) => v / fit[i])),
      dpSgdThroughputRatio: median(priv.map((v, i) => v / own[i])),
      trainSamplesPerSec: median(own),
      modelFitSamplesPerSec: median(fit),
      dpSgdSamplesPerSec: median(priv),
      dpSgdThroughputRatioInThreadNoise: median(privInThread.map((v, i) => v / own[i])),
      dpSgdThroughputRatioRingCold: median(privCold.map((v, i) => v / own[i])),
      noiseFromWorkerFraction: total > 0 ? fromWorker / total : 0,
      dpSgdNoiseMsPerStep: noiseMs,
      dpSgdRatioExcludingNoise: plainStepMs / (dpStepMs - noiseMs),
      backend: name,
    };
  } finally {
    trainer.dispose();
    inThread.dispose();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  benchTraining().then((result) => process.stdout.write(JSON.stringify(result) + '\n'));
}
