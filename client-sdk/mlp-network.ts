// The network of a ModelSpec (logistic regression or MLP), with a hand-written forward and backward pass.
// Writing the backward pass out (instead of taping it with tf.grad) is what makes DP-SGD cheap: each dense
// layer's input a and output gradient g are at hand, which is all ghost clipping needs, and the non-private
// step uses the very same pass. Parameters move in and out as one flat Float32Array in parameterShapes order
// (the wire, clipping and secure-sum unit); that array is the master copy.
//
// Training goes through step(): one pass that leaves to tfjs only the matrix products (forward layers,
// g·Wᵀ, aᵀ·g) and does the small elementwise work in JS on arrays read straight from the wasm heap
// (activation derivatives, the loss gradient, per-example norms, the clip factors, the bias sums; a private
// step takes each example's |a|² and |g|² in the same loop as the activation derivatives). Measured
// here (wasm, MLP 30-64-32-1, batch 64): a tfjs op costs 5-20 µs whatever its size, and a matMul with a
// transposed operand takes tfjs-wasm's slow path (~100 µs against ~12 µs with the transpose built in JS),
// so the step uploads Wᵀ and aᵀ built in JS and never asks tfjs to transpose. A private step differs from
// a plain one only in JS: the factors c_i = min(1, C/|∇ℓ_i|) instead of 1/B, folded into aᵀ.
// The tfjs variables (used by logits(), and by the tests' tensor reference of the backward pass in
// test/reference/mlp-backward.ts) are refreshed from the master copy when next used.
import type { Tensor, Tensor2D, Variable } from './tfjs.ts';
import {
  flattenParameters,
  layerWidths,
  parameterCount,
  parameterShapes,
  unflattenParameters,
  type Activation,
  type ModelSpec,
  type NamedParameters,
  type ParameterShape,
} from '@dpfed/proto/model-spec';
import { tensorValues } from './tfjs-wasm-heap.ts';
import { addGhostSquaredNorms, clipFactors, squaredNorm } from '@dpfed/privacy/ghost-clipping';

type Tf = typeof import('./tfjs.ts');

/** What one step() computed. The arrays are reused by the next call: copy what you keep. */
export interface StepOutput {
  /** Σ_i ℓ_i over the batch (binary cross-entropy on the logit). */
  lossSum: number;
  /**
   * Flat parameter gradient in parameterShapes order: the batch mean of ∇ℓ_i (no clip norm), or the clipped
   * sum Σ_i c_i ∇ℓ_i with c_i = min(1, C/|∇ℓ_i|) (with a clip norm).
   */
  gradient: Float32Array;
  /** The per-example factors used (1/B, or the clip factors), first `rows` entries. */
  factors: Float32Array;
}

interface DenseLayer {
  kernel: Variable;
  bias: Variable;
  activation: Activation;
}

interface DenseWeights {
  kernel: Tensor;
  bias: Tensor;
  activation: Activation;
}

/**
 * The elementwise backward step g = upstream ⊙ act'(a) on the first n values (rows one after another). Four
 * at a time: in V8 the loop overhead costs about as much as the arithmetic of such a loop.
 */
function activationBackward(upstream: Float32Array, a: Float32Array, g: Float32Array, n: number, activation: Activation): void {
  let j = 0;
  for (; j + 3 < n; j += 4) {
    const g0 = upstream[j] * activationDerivative(activation, a[j]);
    const g1 = upstream[j + 1] * activationDerivative(activation, a[j + 1]);
    const g2 = upstream[j + 2] * activationDerivative(activation, a[j + 2]);
    const g3 = upstream[j + 3] * activationDerivative(activation, a[j + 3]);
    g[j] = g0;
    g[j + 1] = g1;
    g[j + 2] = g2;
    g[j + 3] = g3;
  }
  for (; j < n; j++) g[j] = upstream[j] * activationDerivative(activation, a[j]);
}

/**
 * The same step in a private step: the same g, computed the same way (row by row, four at a time), writing on
 * the way each example's |a_i|² and |g_i|² (float64 sums of the float32 values the products use), i.e. the two
 * factors of the layer's ghost norm, without another pass over a and g.
 */
function backwardWithSquares(upstream: Float32Array, a: Float32Array, g: Float32Array, rows: number, width: number, activation: Activation, aSquares: Float64Array, gSquares: Float64Array): void {
  for (let i = 0; i < rows; i++) {
    let sa = 0;
    let sg = 0;
    let j = i * width;
    const end = j + width;
    for (; j + 3 < end; j += 4) {
      const a0 = a[j];
      const a1 = a[j + 1];
      const a2 = a[j + 2];
      const a3 = a[j + 3];
      const g0 = Math.fround(upstream[j] * activationDerivative(activation, a0));
      const g1 = Math.fround(upstream[j + 1] * activationDerivative(activation, a1));
      const g2 = Math.fround(upstream[j + 2] * activationDerivative(activation, a2));
      const g3 = Math.fround(upstream[j + 3] * activationDerivative(activation, a3));
      g[j] = g0;
      g[j + 1] = g1;
      g[j + 2] = g2;
      g[j + 3] = g3;
      sa += a0 * a0 + a1 * a1 + (a2 * a2 + a3 * a3);
      sg += g0 * g0 + g1 * g1 + (g2 * g2 + g3 * g3);
    }
    for (; j < end; j++) {
      const av = a[j];
      const gv = Math.fround(upstream[j] * activationDerivative(activation, av));
      g[j] = gv;
      sa += av * av;
      sg += gv * gv;
    }
    aSquares[i] = sa;
    gSquares[i] = sg;
  }
}

/** d act / dz written in terms of the activation's output a (all four activations allow it). */
function activationDerivative(activation: Activation, a: number): number {
  switch (activation) {
    case 'relu':
      return a > 0 ? 1 : 0;
    case 'tanh':
      return 1 - a * a;
    case 'sigmoid':
      return a * (1 - a);
    case 'linear':
      return 1;
  }
}

export class MlpNetwork {
  readonly shapes: ParameterShape[];
  readonly size: number;
  private readonly layers: DenseLayer[] = [];
  private readonly widths: number[];
  /** The master copy of the parameters, parameterShapes order. */
  private readonly flat: Float32Array;
  /** Offsets of each layer's kernel and bias in the flat vector. */
  private readonly kernelOffsets: number[] = [];
  private readonly biasOffsets: number[] = [];
  /** True when the tfjs variables lag behind the master copy. */
  private variablesStale = false;
  // Work arrays of step(), grown to the largest batch seen.
  private capacity = 0;
  private activations: Float32Array[] = [];
  private outputGrads: Float32Array[] = [];
  private squaredNorms = new Float64Array(0);
  /** Per layer, each example's |a_l,i|² and |g_l,i|² (private steps only). */
  private inputSquares: Float64Array[] = [];
  private gradSquares: Float64Array[] = [];
  private factors = new Float32Array(0);
  private readonly gradient: Float32Array;

  constructor(
    private readonly tf: Tf,
    readonly spec: ModelSpec,
    initial?: Float32Array,
  ) {
    this.shapes = parameterShapes(spec);
    this.size = parameterCount(spec);
    const widths = layerWidths(spec);
    this.widths = widths;
    const flat = initial ?? new Float32Array(this.size);
    if (flat.length !== this.size) throw new Error(`model parameters: expected ${this.size} values for this spec, got ${flat.length}`);
    this.flat = Float32Array.from(flat);
    this.gradient = new Float32Array(this.size);
    const named = unflattenParameters(spec, flat);
    let offset = 0;
    for (let i = 0; i + 1 < widths.length; i++) {
      const activation: Activation = i < spec.hidden.length ? spec.hidden[i].activation : 'linear';
      this.kernelOffsets.push(offset);
      offset += widths[i] * widths[i + 1];
      this.biasOffsets.push(offset);
      offset += widths[i + 1];
      this.layers.push({
        kernel: tf.tidy(() => tf.variable(tf.tensor2d(named.get(`dense_${i}/kernel`)!, [widths[i], widths[i + 1]]), true)),
        bias: tf.tidy(() => tf.variable(tf.tensor1d(named.get(`dense_${i}/bias`)!), true)),
        activation,
      });
    }
  }

  /** The variables in parameterShapes order (kernel, bias of each layer), up to date with the parameters. */
  get variables(): Variable[] {
    this.refreshVariables();
    return this.layers.flatMap((l) => [l.kernel, l.bias]);
  }

  private refreshVariables(): void {
    if (!this.variablesStale) return;
    this.variablesStale = false;
    this.tf.tidy(() => {
      this.layers.forEach((layer, i) => {
        const k = this.kernelOffsets[i];
        const b = this.biasOffsets[i];
        layer.kernel.assign(this.tf.tensor2d(this.flat.slice(k, b), [this.widths[i], this.widths[i + 1]]));
        layer.bias.assign(this.tf.tensor1d(this.flat.slice(b, b + this.widths[i + 1])));
      });
    });
  }

  /** Overwrites every parameter from a flat vector in parameterShapes order. */
  setParameters(flat: Float32Array): void {
    if (flat.length !== this.size) throw new Error(`model parameters: expected ${this.size} values, got ${flat.length}`);
    for (let i = 0; i < flat.length; i++) {
      if (!Number.isFinite(flat[i])) throw new Error(`model parameters: value ${i} is not finite (${flat[i]})`);
    }
    this.flat.set(flat);
    this.variablesStale = true;
  }

  /** All parameters as one flat vector in parameterShapes order (a copy). */
  getParameters(): Float32Array {
    return Float32Array.from(this.flat);
  }

  /**
   * The master copy itself, for an optimiser that updates it in place; call parametersChanged() after
   * writing to it.
   */
  get parameters(): Float32Array {
    return this.flat;
  }

  parametersChanged(): void {
    this.variablesStale = true;
  }

  private ensureCapacity(rows: number): void {
    if (rows <= this.capacity) return;
    const capacity = Math.max(rows, Math.ceil(this.capacity * 1.5));
    const w = this.widths;
    this.activations = w.slice(0, -1).map((width) => new Float32Array(capacity * width));
    this.outputGrads = w.slice(1).map((width) => new Float32Array(capacity * width));
    this.squaredNorms = new Float64Array(capacity);
    this.inputSquares = this.layers.map(() => new Float64Array(capacity));
    this.gradSquares = this.layers.map(() => new Float64Array(capacity));
    this.factors = new Float32Array(capacity);
    this.capacity = capacity;
  }

  /**
   * One forward and backward pass on `rows` examples (x row-major [rows, inputDim], y in {0, 1}). Without a
   * clip norm the gradient is the batch mean; with one, every example's whole-model gradient is clipped to
   * L2 norm <= clipNorm (ghost norms: (|a|²+1)·|g|² per dense layer) and the clipped gradients are summed.
   * With `classWeight` each example's loss is weighted by its class's weight before anything else (so a
   * weighted example's gradient is clipped to the same clip norm: the sensitivity does not change).
   */
  step(x: Float32Array, y: Float32Array, rows: number, clipNorm?: number, classWeight?: { positive: number; negative: number }): StepOutput {
    const tf = this.tf;
    const widths = this.widths;
    const depth = this.layers.length;
    const inputDim = widths[0];
    if (!Number.isInteger(rows) || rows < 1) throw new Error(`model step: rows must be a positive integer, got ${rows}`);
    if (x.length < rows * inputDim || y.length < rows) throw new Error(`model step: expected ${rows} rows of ${inputDim} features and ${rows} labels`);
    this.ensureCapacity(rows);
    const flat = this.flat;
    const { activations, outputGrads, factors } = this;
    const gradient = this.gradient;
    let lossSum = 0;
    tf.tidy(() => {
      // Forward: a_0 = x, a_{l+1} = act(a_l W_l + b_l); the last layer gives the logits.
      activations[0].set(x.subarray(0, rows * inputDim));
      let h = tf.tensor2d(activations[0].slice(0, rows * inputDim), [rows, inputDim]);
      for (let l = 0; l < depth; l++) {
        const k = this.kernelOffsets[l];
        const b = this.biasOffsets[l];
        const kernel = tf.tensor2d(flat.slice(k, b), [widths[l], widths[l + 1]]);
        const bias = tf.tensor1d(flat.slice(b, b + widths[l + 1]));
        h = this.dense(h, { kernel, bias, activation: this.layers[l].activation });
        if (l + 1 < depth) activations[l + 1].set(tensorValues(tf, h).subarray(0, rows * widths[l + 1]));
      }
      // ℓ = softplus(z) − y·z and ∂ℓ/∂z = sigmoid(z) − y, per example, in float64.
      const z = tensorValues(tf, h);
      const last = outputGrads[depth - 1];
      if (classWeight === undefined) {
        for (let i = 0; i < rows; i++) {
          const zi = z[i];
          const yi = y[i];
          lossSum += Math.max(zi, 0) + Math.log1p(Math.exp(-Math.abs(zi))) - yi * zi;
          last[i] = 1 / (1 + Math.exp(-zi)) - yi;
        }
      } else {
        // a weighted loss w_y·ℓ: its gradient is w_y·∂ℓ/∂z, so every later step (and the clipping) sees
        // the example's weighted gradient
        const { positive, negative } = classWeight;
        for (let i = 0; i < rows; i++) {
          const zi = z[i];
          const yi = y[i];
          const w = yi === 1 ? positive : negative;
          lossSum += w * (Math.max(zi, 0) + Math.log1p(Math.exp(-Math.abs(zi))) - yi * zi);
          last[i] = w * (1 / (1 + Math.exp(-zi)) - yi);
        }
      }
      // Backward: g_{l-1} = (g_l W_lᵀ) ⊙ act'(a_l), with Wᵀ built here (tfjs-wasm is slow at transposed products).
      const gradTensors: Tensor2D[] = new Array(depth);
      for (let l = depth - 1; l >= 0; l--) {
        gradTensors[l] = tf.tensor2d(outputGrads[l].slice(0, rows * widths[l + 1]), [rows, widths[l + 1]]);
        if (l === 0) break;
        const inDim = widths[l];
        const outDim = widths[l + 1];
        const kernelT = new Float32Array(inDim * outDim);
        const k = this.kernelOffsets[l];
        for (let r = 0; r < inDim; r++) for (let c = 0; c < outDim; c++) kernelT[c * inDim + r] = flat[k + r * outDim + c];
        const upstream = tensorValues(tf, tf.matMul(gradTensors[l], tf.tensor2d(kernelT, [outDim, inDim])));
        const a = activations[l];
        const g = outputGrads[l - 1];
        const activation = this.layers[l - 1].activation;
        if (clipNorm === undefined) {
          activationBackward(upstream, a, g, rows * inDim, activation);
        } else {
          backwardWithSquares(upstream, a, g, rows, inDim, activation, this.inputSquares[l], this.gradSquares[l - 1]);
        }
      }
      // Per-example factors: 1/B for the mean, or the clip factors from the ghost norms Σ_l (|a_l|²+1)·|g_l|²
      // (the squares of the hidden layers were taken in the backward pass; the input's and the last layer's here).
      if (clipNorm === undefined) {
        factors.fill(1 / rows, 0, rows);
      } else {
        const inputSquares = this.inputSquares[0];
        const lastSquares = this.gradSquares[depth - 1];
        const x0 = activations[0];
        const last = outputGrads[depth - 1];
        const lastWidth = widths[depth];
        for (let i = 0; i < rows; i++) {
          inputSquares[i] = squaredNorm(x0, i * inputDim, inputDim);
          lastSquares[i] = squaredNorm(last, i * lastWidth, lastWidth);
        }
        const squaredNorms = this.squaredNorms;
        squaredNorms.fill(0, 0, rows);
        for (let l = 0; l < depth; l++) addGhostSquaredNorms(squaredNorms, this.inputSquares[l], this.gradSquares[l], rows);
        clipFactors(squaredNorms, clipNorm, rows, factors);
      }
      // Weight gradients (c ⊙ a_l)ᵀ g_l with the transpose built here; bias gradients Σ_i c_i g_l,i in JS.
      for (let l = 0; l < depth; l++) {
        const inDim = widths[l];
        const outDim = widths[l + 1];
        const a = activations[l];
        const scaledT = new Float32Array(inDim * rows);
        for (let i = 0; i < rows; i++) {
          const c = factors[i];
          for (let j = 0; j < inDim; j++) scaledT[j * rows + i] = a[i * inDim + j] * c;
        }
        const product = tensorValues(tf, tf.matMul(tf.tensor2d(scaledT, [inDim, rows]), gradTensors[l]));
        gradient.set(product.subarray(0, inDim * outDim), this.kernelOffsets[l]);
        const g = outputGrads[l];
        const b = this.biasOffsets[l];
        for (let j = 0; j < outDim; j++) {
          let s = 0;
          for (let i = 0; i < rows; i++) s += factors[i] * g[i * outDim + j];
          gradient[b + j] = s;
        }
      }
    });
    return { lossSum, gradient, factors };
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
  private dense(x: Tensor2D, layer: DenseWeights): Tensor2D {
    const tf = this.tf;
    if (layer.activation === 'tanh') return this.activate(tf.fused.matMul({ a: x, b: layer.kernel as Tensor2D, bias: layer.bias }) as Tensor2D, 'tanh');
    return tf.fused.matMul({ a: x, b: layer.kernel as Tensor2D, bias: layer.bias, activation: layer.activation }) as Tensor2D;
  }

  /** Logits [B, 1] for inputs [B, inputDim]. The caller disposes the result. */
  logits(x: Tensor2D): Tensor2D {
    if (x.shape[1] !== this.spec.inputDim) throw new Error(`model input: expected ${this.spec.inputDim} features, got ${x.shape[1]}`);
    this.refreshVariables();
    return this.tf.tidy(() => this.layers.reduce((h, layer) => this.dense(h, layer), x));
  }

  /** Probabilities sigmoid(logit), [B, 1]. */
  scores(x: Tensor2D): Tensor2D {
    return this.tf.tidy(() => this.tf.sigmoid(this.logits(x)));
  }

  dispose(): void {
    for (const layer of this.layers) {
      layer.kernel.dispose();
      layer.bias.dispose();
    }
    this.layers.length = 0;
  }
}
