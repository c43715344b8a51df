// Per-example gradient clipping for DP-SGD without a per-example loop (Goodfellow 2015; Li et al. 2021).
//
// A dense layer z = a·W + b gives example i the weight gradient a_iᵀ g_i (an outer product; g_i = ∂ℓ_i/∂z_i)
// and the bias gradient g_i, so its squared gradient norm is |a_i|²·|g_i|² + |g_i|², computable from the
// tensors one ordinary backward pass already has. With the clip factors c_i = min(1, C/|∇ℓ_i|), the clipped
// sum is one more batched product: aᵀ·diag(c)·g (and Σ c_i g_i for the bias).
//
// Rules are looked up per layer kind in a registry. A layer whose kind has no rule, or whose tensors a rule
// cannot handle, goes through the per-example path (one batchGradient call per example): slower, but still
// clipped. No path returns an unclipped gradient. tfjs is passed in (no backend choice, no network here).
import type { Tensor, Tensor1D, Tensor2D } from '@tensorflow/tfjs';

type Tf = typeof import('@tensorflow/tfjs');

/** What one layer's backward pass exposes for clipping. */
export interface LayerTrace {
  /** Selects the ghost-norm rule ('dense'); kinds without one take the per-example path. */
  kind: string;
  /** The layer's input, one row per example: [B, …]. */
  input: Tensor;
  /** Gradient of each example's own (unscaled) loss w.r.t. the layer's pre-activation output: [B, …]. */
  outputGrad: Tensor;
  /**
   * The layer's parameter gradients summed over the examples given (any batch size, including 1), in the
   * layer's parameter order. Every layer must provide it: it is the correct slow path.
   */
  batchGradient(input: Tensor, outputGrad: Tensor): Tensor[];
}

export interface GhostRule {
  /** False when this rule's identity does not hold for these tensors (e.g. a sequence dimension). */
  applies(trace: LayerTrace): boolean;
  /** Squared per-example norms of the layer's parameter gradients: [B]. */
  squaredNorms(tf: Tf, trace: LayerTrace): Tensor1D;
  /** Σ_i c_i ∇_θ ℓ_i for the layer's parameters, in the layer's parameter order. */
  clippedSum(tf: Tf, trace: LayerTrace, factors: Tensor1D): Tensor[];
}

/** Dense layer z = a·W + b with a: [B, in], g: [B, out]. */
export const denseGhostRule: GhostRule = {
  applies: (trace) => trace.input.rank === 2 && trace.outputGrad.rank === 2 && trace.input.shape[0] === trace.outputGrad.shape[0],
  squaredNorms(tf, trace) {
    return tf.tidy(() => {
      const aSq = tf.sum(tf.square(trace.input), 1);
      const gSq = tf.sum(tf.square(trace.outputGrad), 1);
      return tf.mul(tf.add(aSq, 1), gSq) as Tensor1D;
    });
  },
  clippedSum(tf, trace, factors) {
    return tf.tidy(() => {
      const scaled = tf.mul(trace.outputGrad, tf.reshape(factors, [-1, 1]));
      return [tf.matMul(trace.input as Tensor2D, scaled as Tensor2D, true, false), tf.sum(scaled, 0)];
    });
  },
};

const rules = new Map<string, GhostRule>([['dense', denseGhostRule]]);

/** Adds (or replaces) the ghost-norm rule of a layer kind. */
export function registerGhostRule(kind: string, rule: GhostRule): void {
  if (!kind) throw new Error('registerGhostRule: kind must be a non-empty string');
  rules.set(kind, rule);
}

/** The rule that will handle this trace, or undefined when it takes the per-example path. */
export function ghostRuleFor(trace: LayerTrace): GhostRule | undefined {
  const rule = rules.get(trace.kind);
  return rule && rule.applies(trace) ? rule : undefined;
}

/** The slow path: per-example gradients of one layer, stacked as [B, …param shape] per parameter. */
export function perExampleGradients(tf: Tf, trace: LayerTrace): Tensor[] {
  return tf.tidy(() => {
    const batch = trace.input.shape[0];
    if (trace.outputGrad.shape[0] !== batch) throw new Error(`per-example gradients: input has ${batch} rows, outputGrad ${trace.outputGrad.shape[0]}`);
    const perParameter: Tensor[][] = [];
    for (let i = 0; i < batch; i++) {
      const a = tf.slice(trace.input, i, 1);
      const g = tf.slice(trace.outputGrad, i, 1);
      trace.batchGradient(a, g).forEach((grad, p) => (perParameter[p] ??= []).push(grad));
    }
    return perParameter.map((grads) => tf.stack(grads));
  });
}

export interface ClippedGradientSum {
  /** Σ_i c_i ∇ℓ_i for every parameter, layers in order, each layer's parameters in order. */
  gradients: Tensor[];
  /** Per-example gradient norms before clipping: [B]. */
  norms: Tensor1D;
  /** Clip factors min(1, C/norm): [B]. */
  factors: Tensor1D;
  /** Indices of the layers that took the per-example path. */
  perExampleLayers: number[];
}

// Float32 rounding in the norm may put a clipped norm a hair above C; aim a hair below it.
const CLIP_SAFETY = 1 - 2 ** -20;

/**
 * Clips every example's whole-model gradient to L2 norm <= clipNorm and sums them. The caller owns (and
 * disposes) every tensor of the result; the traces are left untouched.
 */
export function ghostClippedSum(tf: Tf, traces: LayerTrace[], clipNorm: number): ClippedGradientSum {
  if (!(typeof clipNorm === 'number' && Number.isFinite(clipNorm) && clipNorm > 0)) throw new Error(`clipNorm must be a positive finite number, got ${clipNorm}`);
  if (traces.length === 0) throw new Error('ghostClippedSum: no layer traces');
  const batch = traces[0].input.shape[0];
  for (const [i, trace] of traces.entries()) {
    if (trace.input.shape[0] !== batch || trace.outputGrad.shape[0] !== batch) {
      throw new Error(`ghostClippedSum: layer ${i} (${trace.kind}) has a batch size other than ${batch}`);
    }
  }
  const perExampleLayers: number[] = [];
  const result = tf.tidy(() => {
    const rulesUsed = traces.map((trace) => ghostRuleFor(trace));
    const stacked = traces.map((trace, i) => {
      if (rulesUsed[i]) return undefined;
      perExampleLayers.push(i);
      return perExampleGradients(tf, trace);
    });
    const layerNorms = traces.map((trace, i) => {
      const rule = rulesUsed[i];
      if (rule) return rule.squaredNorms(tf, trace);
      return tf.addN(stacked[i]!.map((g) => tf.sum(tf.reshape(tf.square(g), [batch, -1]), 1))) as Tensor1D;
    });
    const norms = tf.sqrt(layerNorms.length === 1 ? layerNorms[0] : tf.addN(layerNorms)) as Tensor1D;
    const factors = tf.minimum(1, tf.div(clipNorm * CLIP_SAFETY, tf.maximum(norms, 1e-30))) as Tensor1D;
    const gradients: Tensor[] = [];
    traces.forEach((trace, i) => {
      const rule = rulesUsed[i];
      if (rule) {
        gradients.push(...rule.clippedSum(tf, trace, factors));
        return;
      }
      for (const g of stacked[i]!) {
        const shape = [batch, ...g.shape.slice(1).map(() => 1)];
        gradients.push(tf.sum(tf.mul(g, tf.reshape(factors, shape)), 0));
      }
    });
    return { gradients, norms, factors };
  });
  return { ...result, perExampleLayers };
}

// ---- The same identity on plain arrays (the fast path of a network whose backward pass runs in JS) ----

/**
 * Adds every example's squared gradient norm for one dense layer, (|a_i|² + 1)·|g_i|², to `out[i]`.
 * `a` is the layer input [rows, inDim] and `g` the gradient of each example's own loss w.r.t. the layer
 * output [rows, outDim], both row-major.
 */
export function addDenseSquaredNorms(out: Float64Array, a: Float32Array, g: Float32Array, rows: number, inDim: number, outDim: number): void {
  if (a.length < rows * inDim || g.length < rows * outDim || out.length < rows) throw new Error(`dense squared norms: arrays shorter than ${rows} rows of ${inDim} and ${outDim}`);
  for (let i = 0; i < rows; i++) out[i] += (1 + squaredNorm(a, i * inDim, inDim)) * squaredNorm(g, i * outDim, outDim);
}

/**
 * The same identity from per-example squared norms taken elsewhere (e.g. on the way through a backward pass):
 * out[i] += (aSquares[i] + 1) · gSquares[i], with aSquares[i] = |a_i|² and gSquares[i] = |g_i|² of one dense layer.
 */
export function addGhostSquaredNorms(out: Float64Array, aSquares: Float64Array, gSquares: Float64Array, rows: number): void {
  if (aSquares.length < rows || gSquares.length < rows || out.length < rows) throw new Error(`ghost squared norms: arrays shorter than ${rows} rows`);
  for (let i = 0; i < rows; i++) out[i] += (1 + aSquares[i]) * gSquares[i];
}

/**
 * Σ v[j]² over v[from .. from + n), in float64. Four partial sums: a single running sum is a chain of
 * dependent additions (the loop then waits on the adder's latency), four keep it busy; the order of the
 * additions changes the result only by float64 rounding.
 */
export function squaredNorm(v: Float32Array, from: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = from;
  for (const end4 = from + (n & ~3); j < end4; j += 4) {
    const v0 = v[j];
    const v1 = v[j + 1];
    const v2 = v[j + 2];
    const v3 = v[j + 3];
    s0 += v0 * v0;
    s1 += v1 * v1;
    s2 += v2 * v2;
    s3 += v3 * v3;
  }
  for (const end = from + n; j < end; j++) s0 += v[j] * v[j];
  return s0 + s1 + (s2 + s3);
}

/**
 * Clip factors c_i = min(1, C / |∇ℓ_i|) from squared per-example norms, into `out` (aimed a hair below C,
 * as ghostClippedSum does, so that float32 rounding downstream cannot put a clipped norm above C).
 */
export function clipFactors(squaredNorms: Float64Array, clipNorm: number, rows: number, out: Float32Array): Float32Array {
  if (!(typeof clipNorm === 'number' && Number.isFinite(clipNorm) && clipNorm > 0)) throw new Error(`clipNorm must be a positive finite number, got ${clipNorm}`);
  const target = clipNorm * CLIP_SAFETY;
  for (let i = 0; i < rows; i++) {
    const norm = Math.sqrt(squaredNorms[i]);
    if (!Number.isFinite(norm)) throw new Error(`clip factors: example ${i} has a non-finite gradient norm`);
    out[i] = norm > target ? target / norm : 1;
  }
  return out;
}
