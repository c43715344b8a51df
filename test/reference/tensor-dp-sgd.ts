// Reference for the tests: a DP-SGD step on tfjs tensors. It draws the batch and counts the step through
// the production DpSgd (privacy/dp-sgd.ts), clips with the tensor ghost clipping (ghost-clipping-tensors.ts)
// and adds the same snapped Gaussian noise (privacy/gaussian-noise.ts), then hands the noisy mean gradient
// to the caller as tensors. Production computes the clipped sum in JS (client-sdk/mlp-network.ts step())
// and calls DpSgd.finishStep directly.
import type { Tensor } from '@dpfed/client/tfjs';
import { DpSgd, type DpSgdRecord, type DpSgdSettings } from '@dpfed/privacy/dp-sgd';
import { addGaussianNoise } from '@dpfed/privacy/gaussian-noise';
import { ghostClippedSum, type LayerTrace } from './ghost-clipping-tensors.ts';

type Tf = typeof import('@dpfed/client/tfjs');

export class TensorDpSgd {
  readonly dp: DpSgd;
  private readonly sizes: number[];

  constructor(
    private readonly tf: Tf,
    settings: DpSgdSettings,
    private readonly shapes: number[][],
  ) {
    this.dp = new DpSgd(settings, shapes);
    this.sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  }

  get steps(): number {
    return this.dp.steps;
  }

  record(): DpSgdRecord {
    return this.dp.record();
  }

  /** The clipped sum of the traces' examples as one flat array (zeros for no traces). */
  private clippedSum(traces: LayerTrace[] | null): Float32Array {
    const values = new Float32Array(this.dp.parameterCount);
    if (!traces || traces.length === 0) return values;
    const clipped = ghostClippedSum(this.tf, traces, this.dp.settings.clipNorm);
    try {
      if (clipped.gradients.length !== this.shapes.length) throw new Error(`DP-SGD: the traces gave ${clipped.gradients.length} gradients for ${this.shapes.length} parameters`);
      let offset = 0;
      clipped.gradients.forEach((g, i) => {
        if (g.size !== this.sizes[i]) throw new Error(`DP-SGD: gradient ${i} has ${g.size} values, expected ${this.sizes[i]}`);
        values.set(g.dataSync() as Float32Array, offset);
        offset += this.sizes[i];
      });
    } finally {
      this.tf.dispose([...clipped.gradients, clipped.norms, clipped.factors]);
    }
    return values;
  }

  private toTensors(values: Float32Array): Tensor[] {
    const out: Tensor[] = [];
    let offset = 0;
    this.shapes.forEach((shape, i) => {
      out.push(this.tf.tensor(values.slice(offset, offset + this.sizes[i]), shape));
      offset += this.sizes[i];
    });
    return out;
  }

  /**
   * The noisy gradient of one step from the traces of the drawn batch (null or [] for an empty draw): clipped
   * sum + N(0, (σC)²) per coordinate, divided by q·n. New tensors in the shapes' order; the caller disposes
   * them. Does not count a step (step() does).
   */
  noisyGradient(traces: LayerTrace[] | null): Tensor[] {
    const values = this.clippedSum(traces);
    addGaussianNoise(values, this.dp.noiseStddev, undefined, 1 / this.dp.expectedBatchSize);
    return this.toTensors(values);
  }

  /**
   * One step: draws the batch, asks `backward` for the layer traces of those example indices (called only for
   * a non-empty draw; its tensors are disposed here), and hands the noisy mean gradient to `apply` (disposed
   * after it returns).
   */
  step(backward: (indices: Int32Array) => LayerTrace[], apply: (gradients: Tensor[]) => void): { batchSize: number } {
    const indices = this.dp.sample();
    this.tf.tidy(() => {
      const traces = indices.length > 0 ? backward(indices) : null;
      apply(this.toTensors(this.dp.finishStep(this.clippedSum(traces))));
    });
    return { batchSize: indices.length };
  }
}
