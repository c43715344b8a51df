// One DP-SGD step (Abadi et al. 2016) with Poisson sampling and ghost clipping:
//   Poisson batch (each example with probability q) → every example's gradient clipped to L2 norm <= C and
//   summed (ghost-clipping.ts) → Gaussian noise of standard deviation σ·C on every coordinate
//   (gaussian-noise.ts, CSPRNG, snapping-resistant) → divided by the EXPECTED batch size q·n (not the drawn
//   one, whose size is itself private) → optimiser update.
// An empty draw still takes the step: noise only. Every step taken is counted with its (q, σ), for the
// accountant. The model itself stays with the caller: it supplies the backward pass for a set of indices
// and the optimiser update, either as layer traces (step(), the generic tensor path) or as a clipped sum it
// computed itself (sample() then finishStep(), the path of a network with a JS backward pass).
// The noise's snapping grid and integer scale are fixed per instance (they depend only on σC and the
// parameter count), so the integers can come from a source that drew them ahead of time (noise-pool.ts).
import type { Tensor } from '@tensorflow/tfjs';
import { addGaussianNoise, noiseScale, type FusedDescent, type IntegerNoiseSource } from './gaussian-noise.ts';
import { ghostClippedSum, type LayerTrace } from './ghost-clipping.ts';
import { poissonSample } from './poisson-sampling.ts';

type Tf = typeof import('@tensorflow/tfjs');

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

export interface DpSgdStepResult {
  /** Examples the Poisson draw put in this step's batch. */
  batchSize: number;
}

function positiveFinite(value: number, name: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new Error(`DP-SGD: ${name} must be a positive finite number, got ${value}`);
}

export class DpSgd {
  private stepsTaken = 0;
  private readonly sizes: number[];
  private readonly total: number;
  private readonly buffer: Float32Array;
  private readonly noiseSource: IntegerNoiseSource | undefined;
  /** σ·C, the noise standard deviation on the clipped sum. */
  readonly noiseStddev: number;
  /** The discrete Gaussian's sigma for this model's parameter vector (gaussian-noise.ts noiseScale). */
  readonly noiseScale: number;

  /** `shapes`: the model's parameter shapes, in the order the traces' gradients come in. */
  constructor(
    private readonly tf: Tf,
    readonly settings: DpSgdSettings,
    private readonly shapes: number[][],
    options: DpSgdOptions = {},
  ) {
    positiveFinite(settings.clipNorm, 'clipNorm');
    positiveFinite(settings.noiseMultiplier, 'noiseMultiplier');
    if (!(settings.sampleRate > 0 && settings.sampleRate <= 1)) throw new Error(`DP-SGD: sampleRate must be in (0, 1], got ${settings.sampleRate}`);
    if (!Number.isInteger(settings.datasetSize) || settings.datasetSize < 1) throw new Error(`DP-SGD: datasetSize must be a positive integer, got ${settings.datasetSize}`);
    if (settings.normaliser !== undefined) positiveFinite(settings.normaliser, 'normaliser');
    if (shapes.length === 0) throw new Error('DP-SGD: the model has no parameters');
    this.sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    this.total = this.sizes.reduce((a, b) => a + b, 0);
    this.buffer = new Float32Array(this.total);
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
   * step. With `descent` it also takes the plain SGD step params -= rate · (noisy mean gradient) in the same
   * pass (gaussian-noise.ts FusedDescent), for a caller whose optimiser is exactly that.
   */
  finishStep(clippedSum: Float32Array, descent?: FusedDescent): Float32Array {
    if (!(clippedSum instanceof Float32Array) || clippedSum.length !== this.total) {
      throw new Error(`DP-SGD: the clipped sum must be a Float32Array of ${this.total} values, got ${clippedSum?.length}`);
    }
    addGaussianNoise(clippedSum, this.noiseStddev, this.noiseSource, 1 / this.expectedBatchSize, descent);
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

  /**
   * The noisy gradient of one step from the traces of the drawn batch (null or [] for an empty draw): clipped
   * sum + N(0, (σC)²) per coordinate, divided by q·n. Returns new tensors in the shapes' order; the caller
   * disposes them. Does not count a step (step() does).
   */
  noisyGradient(traces: LayerTrace[] | null): Tensor[] {
    const tf = this.tf;
    const { clipNorm, noiseMultiplier } = this.settings;
    const values = this.buffer;
    values.fill(0);
    if (traces && traces.length > 0) {
      const clipped = ghostClippedSum(tf, traces, clipNorm);
      try {
        if (clipped.gradients.length !== this.shapes.length) throw new Error(`DP-SGD: the traces gave ${clipped.gradients.length} gradients for ${this.shapes.length} parameters`);
        let offset = 0;
        clipped.gradients.forEach((g, i) => {
          if (g.size !== this.sizes[i]) throw new Error(`DP-SGD: gradient ${i} has ${g.size} values, expected ${this.sizes[i]}`);
          values.set(g.dataSync() as Float32Array, offset);
          offset += this.sizes[i];
        });
      } finally {
        tf.dispose([...clipped.gradients, clipped.norms, clipped.factors]);
      }
    }
    addGaussianNoise(values, noiseMultiplier * clipNorm, this.noiseSource);
    const scale = 1 / this.expectedBatchSize;
    for (let i = 0; i < values.length; i++) values[i] *= scale;
    const out: Tensor[] = [];
    let offset = 0;
    this.shapes.forEach((shape, i) => {
      out.push(tf.tensor(values.slice(offset, offset + this.sizes[i]), shape));
      offset += this.sizes[i];
    });
    return out;
  }

  /**
   * One step: draws the batch, asks `backward` for the layer traces of those example indices (called only for
   * a non-empty draw; its tensors are disposed here), and hands the noisy mean gradient to `apply` (disposed
   * after it returns).
   */
  step(backward: (indices: Int32Array) => LayerTrace[], apply: (gradients: Tensor[]) => void): DpSgdStepResult {
    const indices = poissonSample(this.settings.datasetSize, this.settings.sampleRate);
    this.tf.tidy(() => {
      const traces = indices.length > 0 ? backward(indices) : null;
      const gradients = this.noisyGradient(traces);
      apply(gradients);
    });
    this.stepsTaken++;
    return { batchSize: indices.length };
  }
}
