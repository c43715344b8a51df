// One DP-SGD step (Abadi et al. 2016) with Poisson sampling and ghost clipping:
//   Poisson batch (each example with probability q) → every example's gradient clipped to L2 norm <= C and
//   summed (ghost-clipping.ts) → Gaussian noise of standard deviation σ·C on every coordinate
//   (gaussian-noise.ts, CSPRNG, snapping-resistant) → divided by the EXPECTED batch size q·n (not the drawn
//   one, whose size is itself private) → optimiser update.
// An empty draw still takes the step: noise only. Every step taken is counted with its (q, σ), for the
// accountant. The model itself stays with the caller: it draws the batch (sample()), computes the clipped
// sum itself (client-sdk/mlp-network.ts step(), ghost clipping on plain arrays) and hands it to finishStep().
// (A tfjs-tensor version of the whole step is kept as the tests' reference: test/reference/tensor-dp-sgd.ts.)
// The noise's snapping grid and integer scale are fixed per instance (they depend only on σC and the
// parameter count), so the integers can come from a source that drew them ahead of time (noise-pool.ts).
import { addGaussianNoise, noiseScale, type IntegerNoiseSource } from './gaussian-noise.ts';
import { poissonSample } from './poisson-sampling.ts';

export interface DpSgdSettings {
  /** Per-example L2 clip norm C. */
  clipNorm: number;
  /** σ: the noise standard deviation is σ·C. */
  noiseMultiplier: number;
  /** q: each example's inclusion probability per step. */
  sampleRate: number;
  /** n: examples in the local training set. */
  datasetSize: number;
  /**
   * What the noisy sum is divided by: a public expected batch size declared in the plan, so the update
   * does not scale with the private n. Default q·n.
   */
  normaliser?: number;
}

/** What the accountant needs about the steps taken so far. */
export interface DpSgdRecord {
  sampleRate: number;
  noiseMultiplier: number;
  clipNorm: number;
  steps: number;
}

export interface DpSgdOptions {
  /** Supplies the integer noise for this instance's scale (default: drawn in this thread at each step). */
  noise?: (scale: number) => IntegerNoiseSource;
}

function positiveFinite(value: number, name: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new Error(`DP-SGD: ${name} must be a positive finite number, got ${value}`);
}

export class DpSgd {
  private stepsTaken = 0;
  private readonly total: number;
  private readonly noiseSource: IntegerNoiseSource | undefined;
  /** σ·C, the noise standard deviation on the clipped sum. */
  readonly noiseStddev: number;
  /** The discrete Gaussian's sigma for this model's parameter vector (gaussian-noise.ts noiseScale). */
  readonly noiseScale: number;

  /** `shapes`: the model's parameter shapes, in the order of the flat clipped sum. */
  constructor(
    readonly settings: DpSgdSettings,
    readonly shapes: readonly (readonly number[])[],
    options: DpSgdOptions = {},
  ) {
    positiveFinite(settings.clipNorm, 'clipNorm');
    positiveFinite(settings.noiseMultiplier, 'noiseMultiplier');
    if (!(settings.sampleRate > 0 && settings.sampleRate <= 1)) throw new Error(`DP-SGD: sampleRate must be in (0, 1], got ${settings.sampleRate}`);
    if (!Number.isInteger(settings.datasetSize) || settings.datasetSize < 1) throw new Error(`DP-SGD: datasetSize must be a positive integer, got ${settings.datasetSize}`);
    if (settings.normaliser !== undefined) positiveFinite(settings.normaliser, 'normaliser');
    if (shapes.length === 0) throw new Error('DP-SGD: the model has no parameters');
    this.total = shapes.reduce((sum, shape) => sum + shape.reduce((a, b) => a * b, 1), 0);
    this.noiseStddev = settings.noiseMultiplier * settings.clipNorm;
    this.noiseScale = noiseScale(this.total, this.noiseStddev);
    this.noiseSource = options.noise?.(this.noiseScale);
    if (this.noiseSource && this.noiseSource.scale !== this.noiseScale) {
      throw new Error(`DP-SGD: the noise source draws at scale ${this.noiseSource.scale}, this model needs ${this.noiseScale}`);
    }
  }

  /** Parameters in the model (the length of a flat gradient). */
  get parameterCount(): number {
    return this.total;
  }

  /** This step's Poisson batch: ascending example indices (possibly none). Does not count a step. */
  sample(): Int32Array {
    return poissonSample(this.settings.datasetSize, this.settings.sampleRate);
  }

  /**
   * Turns the clipped sum Σ_i c_i ∇ℓ_i of a drawn batch (flat, parameter order; all zeros for an empty
   * draw) into the noisy mean gradient, in place: snapped, + N(0, (σC)²) per coordinate, ÷ q·n. Counts the
   * step. The optimiser step on the result is the caller's (client-sdk/flat-optimizer.ts).
   */
  finishStep(clippedSum: Float32Array): Float32Array {
    if (!(clippedSum instanceof Float32Array) || clippedSum.length !== this.total) {
      throw new Error(`DP-SGD: the clipped sum must be a Float32Array of ${this.total} values, got ${clippedSum?.length}`);
    }
    addGaussianNoise(clippedSum, this.noiseStddev, this.noiseSource, 1 / this.expectedBatchSize);
    this.stepsTaken++;
    return clippedSum;
  }

  /** The expected batch size q·n that the noisy sum is divided by. */
  get expectedBatchSize(): number {
    return this.settings.normaliser ?? this.settings.sampleRate * this.settings.datasetSize;
  }

  get steps(): number {
    return this.stepsTaken;
  }

  record(): DpSgdRecord {
    const { sampleRate, noiseMultiplier, clipNorm } = this.settings;
    return { sampleRate, noiseMultiplier, clipNorm, steps: this.stepsTaken };
  }
}
