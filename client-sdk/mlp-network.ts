// The network of a ModelSpec (logistic regression or MLP) as tfjs variables, with a hand-written forward and
// backward pass. Writing the backward pass out (instead of taping it with tf.grad) is what makes DP-SGD cheap:
// each dense layer's input a and output gradient g are at hand, which is all ghost clipping needs, and the
// non-private step uses the very same pass. Parameters move in and out as one flat Float32Array in
// parameterShapes order (the wire, clipping and secure-sum unit).
import type { Tensor, Tensor2D, Variable } from '@tensorflow/tfjs';
import { flattenParameters, layerWidths, parameterCount, parameterShapes, unflattenParameters, type Activation, type ModelSpec, type NamedParameters, type ParameterShape } from '../proto/model-spec.ts';
import type { LayerTrace } from '../privacy/ghost-clipping.ts';

type Tf = typeof import('@tensorflow/tfjs');

export interface BackwardPass {
  /** Per-example binary cross-entropy losses, summed over the batch (a scalar tensor). */
  lossSum: Tensor;
  /** One dense trace per layer, first layer first. g is ∂ℓ_i/∂z for each example's own loss (unscaled). */
  traces: LayerTrace[];
}

interface DenseLayer {
  kernel: Variable;
  bias: Variable;
  activation: Activation;
}

function denseBatchGradient(tf: Tf) {
  return (input: Tensor, outputGrad: Tensor): Tensor[] => [tf.matMul(input as Tensor2D, outputGrad as Tensor2D, true, false), tf.sum(outputGrad, 0)];
}

export class MlpNetwork {
  readonly shapes: ParameterShape[];
  readonly size: number;
  private readonly layers: DenseLayer[] = [];

  constructor(
    private readonly tf: Tf,
    readonly spec: ModelSpec,
    initial?: Float32Array,
  ) {
    this.shapes = parameterShapes(spec);
    this.size = parameterCount(spec);
    const widths = layerWidths(spec);
    const flat = initial ?? new Float32Array(this.size);
    if (flat.length !== this.size) throw new Error(`model parameters: expected ${this.size} values for this spec, got ${flat.length}`);
    const named = unflattenParameters(spec, flat);
    for (let i = 0; i + 1 < widths.length; i++) {
      const activation: Activation = i < spec.hidden.length ? spec.hidden[i].activation : 'linear';
      this.layers.push({
        kernel: tf.tidy(() => tf.variable(tf.tensor2d(named.get(`dense_${i}/kernel`)!, [widths[i], widths[i + 1]]), true)),
        bias: tf.tidy(() => tf.variable(tf.tensor1d(named.get(`dense_${i}/bias`)!), true)),
        activation,
      });
    }
  }

  /** The variables in parameterShapes order (kernel, bias of each layer). */
  get variables(): Variable[] {
    return this.layers.flatMap((l) => [l.kernel, l.bias]);
  }

  /** Overwrites every parameter from a flat vector in parameterShapes order. */
  setParameters(flat: Float32Array): void {
    if (flat.length !== this.size) throw new Error(`model parameters: expected ${this.size} values, got ${flat.length}`);
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isFinite(flat[i])) throw new Error(`model parameters: value ${i} is not finite (${flat[i]})`);
    }
    const named = unflattenParameters(this.spec, flat);
    this.tf.tidy(() => {
      this.variables.forEach((variable, i) => variable.assign(this.tf.tensor(named.get(this.shapes[i].name)!, this.shapes[i].shape)));
    });
  }

  /** All parameters as one flat vector in parameterShapes order (a copy). */
  getParameters(): Float32Array {
    const named: NamedParameters = new Map();
    this.variables.forEach((variable, i) => named.set(this.shapes[i].name, variable.dataSync() as Float32Array));
    return flattenParameters(this.spec, named);
  }

  private activate(z: Tensor2D, activation: Activation): Tensor2D {
    const tf = this.tf;
    switch (activation) {
      case 'relu':
        return tf.relu(z);
      case 'tanh':
        return tf.tanh(z);
      case 'sigmoid':
        return tf.sigmoid(z);
      case 'linear':
        return z;
    }
  }

  /** One dense layer, fused where the backend supports the activation. */
  private dense(x: Tensor2D, layer: DenseLayer): Tensor2D {
    const tf = this.tf;
    if (layer.activation === 'tanh') return this.activate(tf.fused.matMul({ a: x, b: layer.kernel as Tensor2D, bias: layer.bias }) as Tensor2D, 'tanh');
    return tf.fused.matMul({ a: x, b: layer.kernel as Tensor2D, bias: layer.bias, activation: layer.activation }) as Tensor2D;
  }

  /** Logits [B, 1] for inputs [B, inputDim]. The caller disposes the result. */
  logits(x: Tensor2D): Tensor2D {
    if (x.shape[1] !== this.spec.inputDim) throw new Error(`model input: expected ${this.spec.inputDim} features, got ${x.shape[1]}`);
    return this.tf.tidy(() => this.layers.reduce((h, layer) => this.dense(h, layer), x));
  }

  /** Probabilities sigmoid(logit), [B, 1]. */
  scores(x: Tensor2D): Tensor2D {
    return this.tf.tidy(() => this.tf.sigmoid(this.logits(x)));
  }

  /** Derivative of the activation, written in terms of the activation's OUTPUT (all four allow it). */
  private activationGrad(output: Tensor2D, activation: Activation): Tensor2D | undefined {
    const tf = this.tf;
    switch (activation) {
      case 'relu':
        return tf.step(output);
      case 'tanh':
        return tf.sub(1, tf.square(output));
      case 'sigmoid':
        return tf.mul(output, tf.sub(1, output));
      case 'linear':
        return undefined;
    }
  }

  /**
   * Forward and backward pass for inputs x [B, inputDim] and labels y [B, 1] under binary cross-entropy on
   * the logit. `gradScale` multiplies the output gradient (1 for per-example gradients as DP-SGD needs them,
   * 1/B for the mean-loss gradient). Returns tensors the caller disposes (run it inside tf.tidy).
   */
  backward(x: Tensor2D, y: Tensor2D, gradScale = 1): BackwardPass {
    const tf = this.tf;
    const inputs: Tensor2D[] = [];
    let h = x;
    for (const layer of this.layers) {
      inputs.push(h);
      h = this.dense(h, layer);
    }
    const logits = h;
    // ℓ = softplus(z) − y·z; ∂ℓ/∂z = sigmoid(z) − y.
    const lossSum = tf.sum(tf.sub(tf.softplus(logits), tf.mul(y, logits)));
    let g: Tensor2D = tf.sub(tf.sigmoid(logits), y);
    if (gradScale !== 1) g = tf.mul(g, gradScale);
    const batchGradient = denseBatchGradient(tf);
    const traces: LayerTrace[] = new Array(this.layers.length);
    for (let i = this.layers.length - 1; i >= 0; i--) {
      traces[i] = { kind: 'dense', input: inputs[i], outputGrad: g, batchGradient };
      if (i > 0) {
        const upstream = tf.matMul(g, this.layers[i].kernel as Tensor2D, false, true) as Tensor2D;
        const local = this.activationGrad(inputs[i], this.layers[i - 1].activation);
        g = local ? (tf.mul(upstream, local) as Tensor2D) : upstream;
      }
    }
    return { lossSum, traces };
  }

  /** Parameter gradients summed over the batch (times gradScale), parameterShapes order: the non-private path. */
  gradientSum(pass: BackwardPass): Tensor[] {
    return pass.traces.flatMap((t) => t.batchGradient(t.input, t.outputGrad));
  }

  dispose(): void {
    for (const layer of this.layers) {
      layer.kernel.dispose();
      layer.bias.dispose();
    }
    this.layers.length = 0;
  }
}
