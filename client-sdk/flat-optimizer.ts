// SGD and Adam on one flat Float32Array of parameters, in place. The training loop keeps the parameters
// as a JS array (mlp-network.ts) and its gradients arrive as one (the private ones after noise is added in
// JS), so the update is a single pass over the vector instead of a dozen small tfjs ops per step. Adam
// follows Kingma & Ba 2015 with bias correction and the constants tfjs uses for float32 (β1 0.9, β2 0.999,
// ε 1e-7). Fresh state per optimiser (the trainer makes one per round). Optional decoupled weight decay
// (Loshchilov & Hutter 2019): params −= lr·λ·params in the same pass, a function of the parameters alone,
// so under DP it is post-processing.

export type OptimizerKind = 'sgd' | 'adam';

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPSILON = 1e-7;

export class FlatOptimizer {
  private readonly m: Float32Array | null;
  private readonly v: Float32Array | null;
  private t = 0;

  constructor(
    readonly kind: OptimizerKind,
    readonly learningRate: number,
    readonly size: number,
    /** Decoupled L2 weight decay λ (params −= lr·λ·params each step, AdamW-style; 0: none). */
    readonly weightDecay = 0,
  ) {
    if (!(Number.isFinite(weightDecay) && weightDecay >= 0)) throw new Error(`optimizer: weightDecay must be a number >= 0, got ${weightDecay}`);
    if (kind !== 'sgd' && kind !== 'adam') throw new Error(`optimizer must be sgd|adam, got ${JSON.stringify(kind)}`);
    if (!(typeof learningRate === 'number' && Number.isFinite(learningRate) && learningRate > 0)) throw new Error(`optimizer: learningRate must be a positive number, got ${learningRate}`);
    if (!Number.isInteger(size) || size < 0) throw new Error(`optimizer: size must be a non-negative integer, got ${size}`);
    this.m = kind === 'adam' ? new Float32Array(size) : null;
    this.v = kind === 'adam' ? new Float32Array(size) : null;
  }

  /** params ← params − update(gradient), in place. */
  apply(params: Float32Array, gradient: Float32Array): void {
    if (params.length !== this.size || gradient.length < this.size) throw new Error(`optimizer: expected ${this.size} parameters and gradients, got ${params.length} and ${gradient.length}`);
    const lr = this.learningRate;
    const n = this.size;
    // with decay, every parameter first shrinks by (1 − lr·λ), in the same pass as its update
    const keep = 1 - lr * this.weightDecay;
    if (this.m === null || this.v === null) {
      if (keep !== 1) {
        for (let i = 0; i < n; i++) params[i] = keep * params[i] - lr * gradient[i];
        return;
      }
      // Four at a time: in V8 the loop overhead costs about as much as the arithmetic of such a loop.
      let i = 0;
      for (; i + 3 < n; i += 4) {
        const p0 = params[i] - lr * gradient[i];
        const p1 = params[i + 1] - lr * gradient[i + 1];
        const p2 = params[i + 2] - lr * gradient[i + 2];
        const p3 = params[i + 3] - lr * gradient[i + 3];
        params[i] = p0;
        params[i + 1] = p1;
        params[i + 2] = p2;
        params[i + 3] = p3;
      }
      for (; i < n; i++) params[i] -= lr * gradient[i];
      return;
    }
    const m = this.m;
    const v = this.v;
    this.t++;
    const c1 = 1 / (1 - BETA1 ** this.t);
    const c2 = 1 / (1 - BETA2 ** this.t);
    for (let i = 0; i < n; i++) {
      const g = gradient[i];
      m[i] = BETA1 * m[i] + (1 - BETA1) * g;
      v[i] = BETA2 * v[i] + (1 - BETA2) * g * g;
      params[i] = keep * params[i] - (lr * (m[i] * c1)) / (Math.sqrt(v[i] * c2) + EPSILON);
    }
  }
}
