// Discrete Gaussian noise drawn ahead of time, off the training thread.
//
// The integer noise of DP-SGD (gaussian-noise.ts: g * Z, Z ~ N_Z(0, s^2)) does not depend on the data,
// only on the scale s, which is fixed for a DP-SGD run. A worker thread (noise-worker.ts) draws Z with
// its own node:crypto randomness into a ring in shared memory while the training thread computes
// gradients (tfjs-wasm runs one thread; the machine has a second core), so a step only snaps its clipped
// sum and adds g * Z, reading the integers where they lie in the ring (lend(); fill() copies them out).
// Guarantees:
//   - every value handed out is fresh: a slot is read once (and zeroed as soon as it is used), then
//     released for the worker;
//   - noise is never skipped: whatever the ring cannot supply yet (worker starting, busy core, stopped or
//     failed worker) is drawn in this thread with the same sampler, same scale;
//   - the worker is unref'd (it never keeps the process alive) and dispose() stops and terminates it.
// pause()/resume() let the consumer keep the worker off the CPU while it trains from a ring that already
// holds what it needs (on a shared, loaded 2-core machine a worker refilling during the
// training steps slowed them more than the in-thread draws it saved); the trainer fills between rounds.
// The worker module (noise-worker) is started by typescript-worker.ts, compiled or from source alike.
import type { Worker } from 'node:worker_threads';
import { sampleDiscreteGaussian } from './discrete-gaussian.ts';
import { moduleBeside, typeScriptWorker } from './typescript-worker.ts';
import type { IntegerNoiseSource, NoiseRunConsumer } from './gaussian-noise.ts';
import { NOISE_RING_COUNTERS, NOISE_RING_PAUSED, NOISE_RING_RELEASED, NOISE_RING_STOP, NOISE_RING_WRITTEN, type NoiseRingLayout } from './noise-ring.ts';

export interface NoisePoolOptions {
  /** Values per ring slot (default 4096). */
  slotValues?: number;
  /** Slots in the ring (default 256: 1 Mi values, 4 MiB). */
  slots?: number;
  /** Start the worker (default true); false gives an in-thread source with the same interface. */
  worker?: boolean;
}

export interface NoisePoolStats {
  /** Values handed out from the worker's ring. */
  fromWorker: number;
  /** Values drawn in this thread because the ring had none ready. */
  inThread: number;
}

function positiveInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) throw new Error(`noise pool: ${name} must be a positive integer, got ${value}`);
}

/** Workers booted ahead of need, waiting for a ring (prewarmNoiseWorkers); taken by the next pools. */
const spareWorkers: Worker[] = [];

function bootWorker(workerData: object): Worker {
  const worker = typeScriptWorker(moduleBeside(import.meta.url, 'noise-worker'), workerData);
  worker.unref();
  return worker;
}

/**
 * Boots `count` noise workers now, so that the pools made later (a trainer's first private round) start
 * drawing at once instead of first loading the worker's modules (a new thread: about 100-200 ms of CPU
 * each). An institution calls this while it waits for its first task; unused spares are unref'd and idle.
 */
export function prewarmNoiseWorkers(count = 1): void {
  for (let i = 0; i < count; i++) {
    const worker = bootWorker({});
    worker.on('error', () => {
      const at = spareWorkers.indexOf(worker);
      if (at >= 0) spareWorkers.splice(at, 1);
    });
    spareWorkers.push(worker);
  }
}

/** Booted workers not yet taken by a pool. */
export function spareNoiseWorkers(): number {
  return spareWorkers.length;
}

export class DiscreteGaussianPool implements IntegerNoiseSource {
  private readonly values: Int32Array;
  /** The same ring as 64-bit words, for wiping. */
  private readonly words: BigInt64Array;
  private readonly counters: Int32Array;
  readonly slotValues: number;
  private readonly slots: number;
  private worker: Worker | null = null;
  private failure: Error | null = null;
  /** Slots fully used so far, and how far into the current one. */
  private released = 0;
  private offset = 0;
  private readonly counts: NoisePoolStats = { fromWorker: 0, inThread: 0 };
  /** In-thread draws of lend(), wiped after use. */
  private scratch = new Int32Array(0);

  constructor(
    readonly scale: number,
    options: NoisePoolOptions = {},
  ) {
    // The sampler validates the scale; fail here, not in the worker.
    sampleDiscreteGaussian(scale, new Int32Array(0));
    this.slotValues = options.slotValues ?? 4096;
    this.slots = options.slots ?? 256;
    positiveInteger(this.slotValues, 'slotValues');
    positiveInteger(this.slots, 'slots');
    const data = new SharedArrayBuffer(this.slotValues * this.slots * 4);
    const control = new SharedArrayBuffer(NOISE_RING_COUNTERS * 4);
    this.values = new Int32Array(data);
    this.words = new BigInt64Array(data, 0, Math.floor(data.byteLength / 8));
    this.counters = new Int32Array(control);
    if (options.worker === false) return;
    const layout: NoiseRingLayout = { scale, data, control, slotValues: this.slotValues, slots: this.slots };
    const spare = spareWorkers.shift();
    if (spare) {
      spare.removeAllListeners('error');
      spare.postMessage(layout);
    }
    const worker = spare ?? bootWorker(layout);
    worker.on('error', (error) => {
      this.failure = error instanceof Error ? error : new Error(String(error));
    });
    worker.on('exit', () => {
      if (this.worker === worker) this.worker = null;
    });
    this.worker = worker;
  }

  /** Fills `out` with fresh N_Z(0, scale^2) draws: from the ring as far as it goes, the rest drawn here. */
  fill(out: Int32Array): void {
    this.handOut(out.length, (draws, start, length, at) => out.set(draws.subarray(start, start + length), at), out);
  }

  /**
   * The copy-free path (IntegerNoiseSource.lend): the next `count` draws handed to `use` in the ring itself,
   * one run per slot (at most), each run wiped as soon as `use` returns (a used draw does not linger in shared
   * memory) and released to the worker when its slot is used up; what the ring cannot supply is drawn here
   * into a scratch array, lent the same way and wiped.
   */
  lend(count: number, use: NoiseRunConsumer): void {
    this.handOut(count, use);
  }

  /** lend(), or fill() when `direct` (its output) is given: the in-thread remainder is drawn straight into it. */
  private handOut(count: number, use: NoiseRunConsumer, direct?: Int32Array): void {
    const { values, counters, slotValues, slots } = this;
    let k = 0;
    while (k < count && this.released < Atomics.load(counters, NOISE_RING_WRITTEN)) {
      const start = (this.released % slots) * slotValues + this.offset;
      const take = Math.min(slotValues - this.offset, count - k);
      // Counted as used before it is read: a draw is never lent twice, even if `use` throws.
      this.offset += take;
      if (this.offset === slotValues) this.offset = 0;
      this.counts.fromWorker += take;
      try {
        use(values, start, take, k);
      } finally {
        this.wipe(start, start + take);
        if (this.offset === 0) {
          this.released++;
          Atomics.store(counters, NOISE_RING_RELEASED, this.released);
          Atomics.notify(counters, NOISE_RING_RELEASED);
        }
      }
      k += take;
    }
    if (k === count) return;
    const rest = count - k;
    this.counts.inThread += rest;
    if (direct) {
      sampleDiscreteGaussian(this.scale, direct.subarray(k, count));
      return;
    }
    if (this.scratch.length < rest) this.scratch = new Int32Array(rest);
    try {
      sampleDiscreteGaussian(this.scale, this.scratch.subarray(0, rest));
      use(this.scratch, 0, rest, k);
    } finally {
      this.scratch.fill(0, 0, rest);
    }
  }

  /**
   * Zeroes values[start .. end) and nothing else. fill() on shared memory stores element by element, so the
   * 8-byte-aligned middle goes through the 64-bit view (~2x faster than an Int32 fill() in the training bench).
   */
  private wipe(start: number, end: number): void {
    const values = this.values;
    if (start & 1 && start < end) values[start++] = 0;
    if (end & 1 && start < end) values[--end] = 0;
    if (start < end) this.words.fill(0n, start >> 1, end >> 1);
  }

  get stats(): NoisePoolStats {
    return { ...this.counts };
  }

  /** Values ready in the ring. */
  get available(): number {
    return (Atomics.load(this.counters, NOISE_RING_WRITTEN) - this.released) * this.slotValues - this.offset;
  }

  /** True while the worker runs. */
  get running(): boolean {
    return this.worker !== null;
  }

  /** The worker's error, if it failed (the pool then draws everything in this thread). */
  get error(): Error | null {
    return this.failure;
  }

  /** Resolves once the ring holds at least `values` values (or rejects if the worker fails or is gone). */
  async whenAvailable(values: number, timeoutMs = 30_000): Promise<void> {
    const started = Date.now();
    while (this.available < values) {
      if (this.failure) throw this.failure;
      if (!this.worker) throw new Error('noise pool: no worker is running');
      if (Date.now() - started > timeoutMs) throw new Error(`noise pool: fewer than ${values} values after ${timeoutMs} ms`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** The worker stops drawing until resume() (fill() still works: ring first, then in-thread). */
  pause(): void {
    Atomics.store(this.counters, NOISE_RING_PAUSED, 1);
  }

  resume(): void {
    Atomics.store(this.counters, NOISE_RING_PAUSED, 0);
    Atomics.notify(this.counters, NOISE_RING_PAUSED);
  }

  /** Values the ring holds when full. */
  get capacity(): number {
    return this.slots * this.slotValues;
  }

  /** Stops and terminates the worker; the pool keeps working in-thread. Idempotent. */
  async dispose(): Promise<void> {
    Atomics.store(this.counters, NOISE_RING_STOP, 1);
    Atomics.notify(this.counters, NOISE_RING_RELEASED);
    Atomics.notify(this.counters, NOISE_RING_PAUSED);
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.terminate();
  }
}
