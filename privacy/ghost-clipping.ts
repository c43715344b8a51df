// Per-example gradient clipping for DP-SGD without a per-example loop (Goodfellow 2015; Li et al. 2021).
//
// A dense layer z = a·W + b gives example i the weight gradient a_iᵀ g_i (an outer product; g_i = ∂ℓ_i/∂z_i)
// and the bias gradient g_i, so its squared gradient norm is |a_i|²·|g_i|² + |g_i|², computable from the
// tensors one ordinary backward pass already has. With the clip factors c_i = min(1, C/|∇ℓ_i|), the clipped
// sum is one more batched product: aᵀ·diag(c)·g (and Σ c_i g_i for the bias).
//
// These are the identity's pieces on plain arrays, used by the one DP-SGD path (client-sdk/mlp-network.ts,
// whose backward pass runs in JS). The same identity on tfjs tensors, with a per-layer-kind rule registry,
// is kept as the tests' reference in test/reference/ghost-clipping-tensors.ts.

/** Float32 rounding in the norm may put a clipped norm a hair above C; the factors aim a hair below it. */
export const CLIP_SAFETY = 1 - 2 ** -20;

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
 * as the tensor reference (test/reference/ghost-clipping-tensors.ts) does, so that float32 rounding downstream cannot put a clipped norm above C).
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
