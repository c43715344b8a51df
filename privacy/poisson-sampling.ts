// Poisson sampling for DP-SGD: every example joins a step's batch independently with probability q, which is
// what the subsampled-Gaussian accountant assumes. Randomness from node:crypto only.
//
// Method: geometric skips. The gap before the next selected example is Geometric(q): floor(ln U / ln(1 - q))
// with U uniform in (0, 1], so a step costs O(q·n) draws instead of n. Uniforms have 53 random bits and are
// drawn in bulk. For q = 1 every example is taken.
import { randomFillSync } from 'node:crypto';

const POOL_DOUBLES = 512;
const pool = new Uint32Array(POOL_DOUBLES * 2);
let poolPosition = pool.length;

/** Indices (ascending) of a Poisson sample of {0, …, n-1} with inclusion probability `sampleRate`. */
export function poissonSample(n: number, sampleRate: number): Int32Array {
  if (!Number.isInteger(n) || n < 0) throw new Error(`poissonSample: n must be a non-negative integer, got ${n}`);
  if (typeof sampleRate !== 'number' || !(sampleRate > 0 && sampleRate <= 1)) {
    throw new Error(`poissonSample: sampleRate must be in (0, 1], got ${sampleRate}`);
  }
  if (sampleRate === 1) {
    const all = new Int32Array(n);
    for (let i = 0; i < n; i++) all[i] = i;
    return all;
  }
  const logKeep = Math.log1p(-sampleRate);
  // Capacity: mean + 8 standard deviations + slack; grown if ever exceeded. The result is a view of it.
  let out = new Int32Array(Math.ceil(n * sampleRate + 8 * Math.sqrt(n * sampleRate) + 16));
  let count = 0;
  let index = -1;
  let position = poolPosition; // the pool's read position, kept local in the loop
  for (;;) {
    if (position >= pool.length) {
      randomFillSync(pool);
      position = 0;
    }
    // A uniform double in (0, 1] with 53 random bits: 27 bits of one CSPRNG word, 26 of the next.
    const high = pool[position] >>> 5;
    const low = pool[position + 1] >>> 6;
    position += 2;
    const uniform = (high * 67108864 + low + 1) / 9007199254740992;
    const skip = Math.floor(Math.log(uniform) / logKeep);
    index += skip + 1;
    if (index >= n || !Number.isFinite(index)) break;
    if (count === out.length) {
      const grown = new Int32Array(out.length * 2);
      grown.set(out);
      out = grown;
    }
    out[count++] = index;
  }
  poolPosition = position;
  return out.subarray(0, count);
}
