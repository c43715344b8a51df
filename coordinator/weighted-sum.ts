// The aggregation kernel: acc += Σ_k w_k · x_k over float32 vectors, accumulated in float64.
// Four input vectors are folded per pass over the accumulator and the inner loop is unrolled 4-way, so
// the float64 accumulator is read and written once per four clients instead of once per client; on this
// machine that runs at or above the speed of a plain float32 `sum[i] += x[i]` loop (see
// bench/aggregation-bench.ts). Its inverse, scaleAndAdd, turns the sum back into float32 parameters.

/** acc[i] += Σ_k weights[k] · vectors[k][i]. Every vector must have acc.length values. */
export function accumulateWeighted(acc: Float64Array, vectors: readonly Float32Array[], weights: ArrayLike<number>): void {
  if (vectors.length !== weights.length) throw new Error(`weighted sum: ${vectors.length} vectors but ${weights.length} weights`);
  const n = acc.length;
  for (let k = 0; k < vectors.length; k++) {
    if (vectors[k].length !== n) throw new Error(`weighted sum: vector ${k} has ${vectors[k].length} values, expected ${n}`);
  }
  let k = 0;
  for (; k + 4 <= vectors.length; k += 4) {
    addFour(acc, vectors[k], weights[k], vectors[k + 1], weights[k + 1], vectors[k + 2], weights[k + 2], vectors[k + 3], weights[k + 3]);
  }
  for (; k < vectors.length; k++) addOne(acc, vectors[k], weights[k]);
}

function addFour(
  acc: Float64Array,
  a: Float32Array, wa: number,
  b: Float32Array, wb: number,
  c: Float32Array, wc: number,
  d: Float32Array, wd: number,
): void {
  const n = acc.length;
  const end = n - (n % 4);
  let i = 0;
  for (; i < end; i += 4) {
    acc[i] += wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
    acc[i + 1] += wa * a[i + 1] + wb * b[i + 1] + wc * c[i + 1] + wd * d[i + 1];
    acc[i + 2] += wa * a[i + 2] + wb * b[i + 2] + wc * c[i + 2] + wd * d[i + 2];
    acc[i + 3] += wa * a[i + 3] + wb * b[i + 3] + wc * c[i + 3] + wd * d[i + 3];
  }
  for (; i < n; i++) acc[i] += wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
}

function addOne(acc: Float64Array, a: Float32Array, w: number): void {
  const n = acc.length;
  const end = n - (n % 4);
  let i = 0;
  for (; i < end; i += 4) {
    acc[i] += w * a[i];
    acc[i + 1] += w * a[i + 1];
    acc[i + 2] += w * a[i + 2];
    acc[i + 3] += w * a[i + 3];
  }
  for (; i < n; i++) acc[i] += w * a[i];
}

/** out[i] = base[i] + factor · acc[i], rounded to float32. Writes into `out` (may be a fresh array). */
export function scaleAndAdd(base: Float32Array, acc: Float64Array, factor: number, out: Float32Array = new Float32Array(base.length)): Float32Array {
  const n = base.length;
  if (acc.length !== n || out.length !== n) throw new Error(`scaleAndAdd: lengths differ (base ${n}, acc ${acc.length}, out ${out.length})`);
  const end = n - (n % 4);
  let i = 0;
  for (; i < end; i += 4) {
    out[i] = base[i] + factor * acc[i];
    out[i + 1] = base[i + 1] + factor * acc[i + 1];
    out[i + 2] = base[i + 2] + factor * acc[i + 2];
    out[i + 3] = base[i + 3] + factor * acc[i + 3];
  }
  for (; i < n; i++) out[i] = base[i] + factor * acc[i];
  return out;
}

/**
 * A float64 accumulator kept between rounds, so aggregation allocates nothing per round beyond the
 * returned parameters. `weightedSum` returns the buffer itself: valid until the next call.
 */
export class WeightedSumBuffer {
  private buffer = new Float64Array(0);

  weightedSum(vectors: readonly Float32Array[], weights: ArrayLike<number>, length: number): Float64Array {
    if (this.buffer.length !== length) this.buffer = new Float64Array(length);
    else this.buffer.fill(0);
    accumulateWeighted(this.buffer, vectors, weights);
    return this.buffer;
  }

  /** Copies a float32 sum (e.g. the secure-aggregation result) into the buffer. */
  load(values: Float32Array): Float64Array {
    if (this.buffer.length !== values.length) this.buffer = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) this.buffer[i] = values[i];
    return this.buffer;
  }
}
