// Noise pools shared by the trainers of one process that draw at the same scale, such as the institutions
// of a simulated federation: one pool, and one worker thread, per scale instead of one per trainer, its ring
// sized for every sharer's round. Sharing changes nothing about the noise: the pool hands each value out
// once, whichever trainer asks, and wipes it after use (noise-pool.ts). The trainers must take turns (one
// thread), as a pool is not meant to be drawn from by two threads at once.
import { DiscreteGaussianPool, prewarmNoiseWorkers } from './noise-pool.ts';

export interface SharedNoisePoolsOptions {
  /** Trainers that will draw from each pool: its ring holds this many of one trainer's requests. */
  sharers: number;
  /** Draw ahead in a worker thread (default true); false draws in the calling thread. */
  worker?: boolean;
  /** Most slots a ring may have. */
  maxSlots: number;
}

export class SharedNoisePools {
  private readonly pools = new Map<number, DiscreteGaussianPool>();

  constructor(private readonly options: SharedNoisePoolsOptions) {
    if (!Number.isInteger(options.sharers) || options.sharers < 1) throw new Error(`shared noise pools: sharers must be a positive integer, got ${options.sharers}`);
    // the first pool's worker boots while the sharers get ready, not in their first private round
    if (options.worker !== false) prewarmNoiseWorkers(1);
  }

  /** The pool of `scale`, its ring at least `slots` slots of `slotValues` per sharer (a smaller one is replaced). */
  pool(scale: number, slotValues: number, slots: number): DiscreteGaussianPool {
    const wanted = Math.min(this.options.maxSlots, slots * this.options.sharers);
    const current = this.pools.get(scale);
    if (current && current.slotValues === slotValues && current.capacity >= wanted * slotValues) return current;
    void current?.dispose();
    const pool = new DiscreteGaussianPool(scale, { worker: this.options.worker ?? true, slotValues, slots: wanted });
    this.pools.set(scale, pool);
    return pool;
  }

  /** Stops every pool's worker. */
  async dispose(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.dispose()));
  }
}
