// The aggregation kernel: acc += Σ_k w_k · x_k over float32 vectors, accumulated in float64.
// Four input vectors are folded per pass over the accumulator and the inner loop is unrolled 4-way; the
// passes run block by block (BLOCK values, 32 KiB of accumulator), so the accumulator stays in cache
// while every vector's block is folded into it, and memory sees each input once and the accumulator
// once instead of once per four clients. The order of the additions is the same as pass by pass over the
// whole vectors, so the sums are bit for bit the same. On a 2-core x86-64 server that runs at or above the speed
// of a plain float32 `sum[i] += x[i]` loop (see bench/aggregation-bench.ts). Its inverse, scaleAndAdd,
// turns the sum back into float32 parameters.

/** Values per block: 4,096 float64 accumulators are 32 KiB. */
const BLOCK = 4096;

/** acc[i] += Σ_k weights[k] · vectors[k][i]. Every vector must have acc.length values. */
export function accumulateWeighted(acc: Float64Array, vectors: readonly Float32Array[], weights: ArrayLike<number>): void {
  if (vectors.length !== weights.length) throw new Error(`weighted sum: ${vectors.length} vectors but ${weights.length} weights`);
  const n = acc.length;
  for (let k = 0; k < vectors.length; k++) {
    if (vectors[k].length !== n) throw new Error(`weighted sum: vector ${k} has ${vectors[k].length} values, expected ${n}`);
  }
  for (let start = 0; start < n; start += BLOCK) {
    const end = Math.min(n, start + BLOCK);
    let k = 0;
    for (; k + 4 <= vectors.length; k += 4) {
      addFour(acc, start, end, vectors[k], weights[k], vectors[k + 1], weights[k + 1], vectors[k + 2], weights[k + 2], vectors[k + 3], weights[k + 3]);
    }
    for (; k < vectors.length; k++) addOne(acc, start, end, vectors[k], weights[k]);
  }
}

/** acc[i] += wa·a[i] + wb·b[i] + wc·c[i] + wd·d[i] for start <= i < end. */
function addFour(acc: Float64Array, start: number, end: number, a: Float32Array, wa: number, b: Float32Array, wb: number, c: Float32Array, wc: number, d: Float32Array, wd: number): void {
  const stop = end - ((end - start) % 4);
  let i = start;
  for (; i < stop; i += 4) {
    acc[i] += wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
    acc[i + 1] += wa * a[i + 1] + wb * b[i + 1] + wc * c[i + 1] + wd * d[i + 1];
    acc[i + 2] += wa * a[i + 2] + wb * b[i + 2] + wc * c[i + 2] + wd * d[i + 2];
    acc[i + 3] += wa * a[i + 3] + wb * b[i + 3] + wc * c[i + 3] + wd * d[i + 3];
  }
  for (; i < end; i++) acc[i] += wa * a[i] + wb * b[i] + wc * c[i] + wd * d[i];
}

/** acc[i] += w·a[i] for start <= i < end. */
function addOne(acc: Float64Array, start: number, end: number, a: Float32Array, w: number): void {
  const stop = end - ((end - start) % 4);
  let i = start;
  for (; i < stop; i += 4) {
    acc[i] += w * a[i];
    acc[i + 1] += w * a[i + 1];
    acc[i + 2] += w * a[i + 2];
    acc[i + 3] += w * a[i + 3];
  }
  for (; i < end; i++) acc[i] += w * a[i];
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

  /** The buffer, `length` zeros. */
  cleared(length: number): Float64Array {
    if (this.buffer.length !== length) this.buffer = new Float64Array(length);
    else this.buffer.fill(0);
    return this.buffer;
  }

  weightedSum(vectors: readonly Float32Array[], weights: ArrayLike<number>, length: number): Float64Array {
    const acc = this.cleared(length);
    accumulateWeighted(acc, vectors, weights);
    return acc;
  }

  /** A sum for the strategy to use: a float64 one as it is, a float32 one (the secure-aggregation result) copied into the buffer. */
  load(values: Float32Array | Float64Array): Float64Array {
    if (values instanceof Float64Array) return values;
    if (this.buffer.length !== values.length) this.buffer = new Float64Array(values.length);
    for (let i = 0; i < values.length; i++) this.buffer[i] = values[i];
    return this.buffer;
  }
}

/**
 * The weighted sum of updates fed one at a time, as they arrive, folded in a fixed order (the round's
 * participants), so the sum does not depend on which update arrived first: floating-point addition is
 * not associative, and institutions on other threads or machines finish in any order. An update is
 * held until every participant before it in `order` has either arrived or is known not to (skip, or
 * finish); then each four consecutive ones are folded into the accumulator together (one addFour pass,
 * as accumulateWeighted does), the rest when the sum is finished. The result is bit for bit
 * accumulateWeighted over the arrived vectors in `order`; when updates arrive in that order, all but at
 * most three are summed by the time the last one arrives. A vector is handed to `release` once it is
 * folded in (or discarded); nothing refers to it afterwards.
 */
export class ArrivalWeightedSum {
  private pending: Float32Array[] = [];
  private pendingWeights: number[] = [];
  /** Arrived updates not yet reached in `order`. */
  private readonly waiting = new Map<string, { vector: Float32Array; weight: number }>();
  /** Participants that will not send an update (declined, failed). */
  private readonly absent = new Set<string>();
  private readonly position: Map<string, number>;
  /** The index in `order` of the first participant not yet folded or passed over. */
  private next = 0;
  private total = 0;
  private added = 0;

  constructor(
    private readonly acc: Float64Array,
    private readonly order: readonly string[],
    private readonly release: (vector: Float32Array) => void = () => {},
  ) {
    this.position = new Map(order.map((id, k) => [id, k]));
    if (this.position.size !== order.length) throw new Error('weighted sum: the order names a participant twice');
  }

  add(id: string, vector: Float32Array, weight: number): void {
    const at = this.position.get(id);
    if (at === undefined) throw new Error(`weighted sum: an update from ${id}, who is not a participant`);
    if (at < this.next || this.waiting.has(id) || this.absent.has(id)) throw new Error(`weighted sum: a second update from ${id}`);
    if (vector.length !== this.acc.length) throw new Error(`weighted sum: an update of ${vector.length} values, expected ${this.acc.length}`);
    if (!(Number.isFinite(weight) && weight > 0)) throw new Error(`weighted sum: weight must be positive and finite, got ${weight}`);
    this.waiting.set(id, { vector, weight });
    this.total += weight;
    this.added++;
    this.advance(false);
  }

  /** `id` will send no update: the updates after it in the order need not wait for it. */
  skip(id: string): void {
    const at = this.position.get(id);
    if (at === undefined || at < this.next || this.waiting.has(id)) return;
    this.absent.add(id);
    this.advance(false);
  }

  /** Σ w·x, Σ w and how many were added; the sum is the accumulator itself. */
  finish(): { weightedSum: Float64Array; totalWeight: number; count: number } {
    this.advance(true);
    this.fold();
    return { weightedSum: this.acc, totalWeight: this.total, count: this.added };
  }

  /** Gives back the vectors not folded in yet (a round that fails). */
  discard(): void {
    for (const v of this.pending) this.release(v);
    for (const { vector } of this.waiting.values()) this.release(vector);
    this.waiting.clear();
    this.pending = [];
    this.pendingWeights = [];
  }

  /** Moves along the order while the next participant has arrived or will not (at the end: everyone not arrived will not). */
  private advance(ending: boolean): void {
    while (this.next < this.order.length) {
      const id = this.order[this.next];
      const update = this.waiting.get(id);
      if (update) {
        this.waiting.delete(id);
        this.pending.push(update.vector);
        this.pendingWeights.push(update.weight);
        if (this.pending.length === 4) this.fold();
      } else if (!ending && !this.absent.has(id)) return;
      this.next++;
    }
  }

  private fold(): void {
    if (this.pending.length === 0) return;
    accumulateWeighted(this.acc, this.pending, this.pendingWeights);
    for (const v of this.pending) this.release(v);
    this.pending = [];
    this.pendingWeights = [];
  }
}
