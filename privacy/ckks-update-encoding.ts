// An update as CKKS encrypts it, and the inverse for the decrypted sum. CKKS inputs must stay small
// (ckks-parameters.ts CKKS_LIMITS), so each coordinate is clipped to ±CKKS_UPDATE_CLIP_RANGE after weighting.

/** Each coordinate of a weighted update is clipped to ±this before encryption. */
export const CKKS_UPDATE_CLIP_RANGE = 8;

/** Values an institution encrypts: the update pre-multiplied by w / cap (each coordinate clipped to ±range), then w / cap. */
export function ckksUpdateVector(delta: Float32Array, weight: number, weightCap: number, clipRange: number): Float32Array {
  if (!(weightCap >= 1)) throw new Error(`ckks: weight cap must be >= 1, got ${weightCap}`);
  const factor = Math.min(weight, weightCap) / weightCap;
  const out = new Float32Array(delta.length + 1);
  for (let i = 0; i < delta.length; i++) out[i] = Math.max(-clipRange, Math.min(clipRange, delta[i] * factor));
  out[delta.length] = factor;
  return out;
}

/** The inverse for a decrypted sum: Σ w·x and Σ w. */
export function ckksWeightedSum(sum: Float64Array, weightCap: number): { weightedDeltaSum: Float32Array; totalWeight: number } {
  const d = sum.length - 1;
  const weightedDeltaSum = new Float32Array(d);
  for (let i = 0; i < d; i++) weightedDeltaSum[i] = sum[i] * weightCap;
  // Σ w is an integer and the decryption error (times the cap) stays far below 0.5, so rounding restores it exactly.
  return { weightedDeltaSum, totalWeight: Math.round(sum[d] * weightCap) };
}
