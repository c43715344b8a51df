// Reference for the tests: ghost clipping on tfjs tensors, with a registry of per-layer-kind rules and a
// per-example fallback (one batchGradient call per example) for layers no rule handles. Production runs the
// same identity on plain arrays (privacy/ghost-clipping.ts, client-sdk/mlp-network.ts step()); the tests
// check that path against this one, and this one against per-example gradients computed one by one.
import { CLIP_SAFETY } from '@dpfed/privacy/ghost-clipping';
import type { Tensor, Tensor1D, Tensor2D } from '@dpfed/client/tfjs';

type Tf = typeof import('@dpfed/client/tfjs');

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
