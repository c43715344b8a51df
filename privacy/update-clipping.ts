// Client-level DP (DP-FedAvg, McMahan et al. 2018): an institution's whole model update is scaled down
// to L2 norm at most S before it leaves, which bounds its influence on the sum.

export function l2Norm(values: Float32Array): number {
  let sq = 0;
  for (let i = 0; i < values.length; i++) sq += values[i] * values[i];
  return Math.sqrt(sq);
}

/** Scales `values` in place so its L2 norm is at most `maxNorm`; returns the norm before clipping. */
export function clipToNorm(values: Float32Array, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clip norm must be positive, got ${maxNorm}`);
  const norm = l2Norm(values);
  if (norm > maxNorm) {
    // float32 rounding can leave the scaled norm a hair above the bound: aim slightly inside it
    const factor = (maxNorm / norm) * (1 - 1e-6);
    for (let i = 0; i < values.length; i++) values[i] *= factor;
  }
  return norm;
}
