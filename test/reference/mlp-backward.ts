// Reference for the tests: the MLP's forward and backward pass written with tfjs tensor ops, producing the
// layer traces the tensor ghost clipping (ghost-clipping-tensors.ts) takes. Production trains through
// MlpNetwork.step() (client-sdk/mlp-network.ts), which does the elementwise work in JS; the tests check it
// against this. Reads the network only through its public variables and spec.
import type { Tensor, Tensor2D } from '@dpfed/client/tfjs';
import type { MlpNetwork } from '@dpfed/client/mlp-network';
import type { Activation } from '@dpfed/proto/model-spec';
import type { LayerTrace } from './ghost-clipping-tensors.ts';

type Tf = typeof import('@dpfed/client/tfjs');

export interface BackwardPass {
  /** Per-example binary cross-entropy losses, summed over the batch (a scalar tensor). */
  lossSum: Tensor;
  /** One dense trace per layer, first layer first. g is ∂ℓ_i/∂z for each example's own loss (unscaled). */
  traces: LayerTrace[];
}

function denseBatchGradient(tf: Tf) {
  return (input: Tensor, outputGrad: Tensor): Tensor[] => [tf.matMul(input as Tensor2D, outputGrad as Tensor2D, true, false), tf.sum(outputGrad, 0)];
}

function activate(tf: Tf, z: Tensor2D, activation: Activation): Tensor2D {
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

/** Derivative of the activation, written in terms of the activation's OUTPUT (all four allow it). */
function activationGrad(tf: Tf, output: Tensor2D, activation: Activation): Tensor2D | undefined {
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
 * Forward and backward pass of `net` for inputs x [B, inputDim] and labels y [B, 1] under binary
 * cross-entropy on the logit. `gradScale` multiplies the output gradient (1 for per-example gradients as
 * DP-SGD needs them, 1/B for the mean-loss gradient). Returns tensors the caller disposes (run it inside
 * tf.tidy).
 */
export function referenceBackward(tf: Tf, net: MlpNetwork, x: Tensor2D, y: Tensor2D, gradScale = 1): BackwardPass {
  const variables = net.variables;
  const depth = variables.length / 2;
  const activations: Activation[] = Array.from({ length: depth }, (_, i) => (i < net.spec.hidden.length ? net.spec.hidden[i].activation : 'linear'));
  const inputs: Tensor2D[] = [];
  let h = x;
  for (let l = 0; l < depth; l++) {
    inputs.push(h);
    h = activate(tf, tf.add(tf.matMul(h, variables[2 * l] as Tensor2D), variables[2 * l + 1]) as Tensor2D, activations[l]);
  }
  const logits = h;
  // ℓ = softplus(z) − y·z; ∂ℓ/∂z = sigmoid(z) − y.
  const lossSum = tf.sum(tf.sub(tf.softplus(logits), tf.mul(y, logits)));
  let g: Tensor2D = tf.sub(tf.sigmoid(logits), y);
  if (gradScale !== 1) g = tf.mul(g, gradScale);
  const batchGradient = denseBatchGradient(tf);
  const traces: LayerTrace[] = new Array(depth);
  for (let i = depth - 1; i >= 0; i--) {
    traces[i] = { kind: 'dense', input: inputs[i], outputGrad: g, batchGradient };
    if (i > 0) {
      const upstream = tf.matMul(g, variables[2 * i] as Tensor2D, false, true) as Tensor2D;
      const local = activationGrad(tf, inputs[i], activations[i - 1]);
      g = local ? (tf.mul(upstream, local) as Tensor2D) : upstream;
    }
  }
  return { lossSum, traces };
}
