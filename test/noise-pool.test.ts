import { describe, expect, it } from 'vitest';
import { LocalTrainer } from '@dpfed/client/local-trainer';
import { selectBackend } from '@dpfed/client/tf-backend';
import { addGaussianNoise, noiseGrid, noiseScale } from '@dpfed/privacy/gaussian-noise';
import { DiscreteGaussianPool, prewarmNoiseWorkers, spareNoiseWorkers } from '@dpfed/privacy/noise-pool';
import { modelSpecFromShorthand } from '@dpfed/proto/model-spec';
import { moments } from './helpers/moments.ts';
import { privateTrainingCase } from './helpers/private-training-case.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('discrete Gaussian noise drawn ahead of time in a worker', () => {
  it('the worker path gives N_Z(0, s²) integers: mean 0, standard deviation s, all handed out from the ring', async () => {
    const scale = 5_000_000;
    const pool = new DiscreteGaussianPool(scale, { slotValues: 4096, slots: 64 });
    try {
      await pool.whenAvailable(200_000);
      expect(pool.running).toBe(true);
      const out = new Int32Array(200_000);
      pool.fill(out);
      expect(pool.stats).toEqual({ fromWorker: 200_000, inThread: 0 });
      const { mean, std } = moments(out);
      expect(Math.abs(mean)).toBeLessThan((5 * scale) / Math.sqrt(out.length));
      expect(Math.abs(std / scale - 1)).toBeLessThan(6 / Math.sqrt(2 * out.length));
      // Fresh values: the next draw is not a repeat of this one.
      const next = new Int32Array(64);
      pool.fill(next);
      expect(Array.from(next)).not.toEqual(Array.from(out.subarray(0, 64)));
    } finally {
      await pool.dispose();
    }
  });

  it('a pool made after prewarmNoiseWorkers takes a booted worker: each gets its own ring and scale, with the right law', async () => {
    const before = spareNoiseWorkers();
    prewarmNoiseWorkers(2);
    expect(spareNoiseWorkers()).toBe(before + 2);
    const scales = [3_000_000, 7_000_000];
    const pools = scales.map((scale) => new DiscreteGaussianPool(scale, { slotValues: 4096, slots: 32 }));
    expect(spareNoiseWorkers()).toBe(before);
    try {
      for (const [i, pool] of pools.entries()) {
        await pool.whenAvailable(100_000);
        expect(pool.running).toBe(true);
        const out = new Int32Array(100_000);
        pool.fill(out);
        expect(pool.stats).toEqual({ fromWorker: 100_000, inThread: 0 });
        const { mean, std } = moments(out);
        expect(Math.abs(mean)).toBeLessThan((5 * scales[i]) / Math.sqrt(out.length));
        expect(Math.abs(std / scales[i] - 1)).toBeLessThan(6 / Math.sqrt(2 * out.length));
      }
    } finally {
      for (const pool of pools) await pool.dispose();
    }
  });

  it('noise added from the worker lies on the grid and has the requested standard deviation', async () => {
    const length = 4097;
    const stddev = 0.8;
    const pool = new DiscreteGaussianPool(noiseScale(length, stddev), { slots: 64 });
    try {
      await pool.whenAvailable(50 * length);
      const g = noiseGrid(length, stddev);
      const all: number[] = [];
      for (let r = 0; r < 50; r++) {
        const values = new Float32Array(length).fill(0.3);
        addGaussianNoise(values, stddev, pool);
        for (const v of values) {
          expect(Number.isInteger(v / g)).toBe(true);
          all.push(v);
        }
      }
      expect(pool.stats.inThread).toBe(0);
      const { mean, std } = moments(all);
      expect(Math.abs(mean - 0.3)).toBeLessThan((5 * stddev) / Math.sqrt(all.length) + g);
      expect(Math.abs(std / stddev - 1)).toBeLessThan(0.01);
    } finally {
      await pool.dispose();
    }
  });

  it('never skips noise: what the ring cannot supply is drawn in-thread, with the same law', async () => {
    const scale = 1000;
    const tiny = new DiscreteGaussianPool(scale, { slotValues: 16, slots: 2 });
    const none = new DiscreteGaussianPool(scale, { worker: false });
    try {
      const out = new Int32Array(100_000);
      tiny.fill(out); // the worker has at most 32 values ready
      expect(tiny.stats.fromWorker + tiny.stats.inThread).toBe(100_000);
      expect(tiny.stats.inThread).toBeGreaterThanOrEqual(100_000 - 32);
      expect(Math.abs(moments(out).std / scale - 1)).toBeLessThan(0.02);
      none.fill(out);
      expect(none.running).toBe(false);
      expect(none.stats).toEqual({ fromWorker: 0, inThread: 100_000 });
      expect(Math.abs(moments(out).std / scale - 1)).toBeLessThan(0.02);
    } finally {
      await tiny.dispose();
      await none.dispose();
    }
  });

  it('dispose() stops the worker: nothing more is produced, and filling goes on in-thread', async () => {
    const pool = new DiscreteGaussianPool(2 ** 20, { slotValues: 1024, slots: 8 });
    await pool.whenAvailable(1024);
    await pool.dispose();
    expect(pool.running).toBe(false);
    const left = pool.available;
    const out = new Int32Array(left + 5000);
    pool.fill(out);
    await sleep(100);
    expect(pool.available).toBe(0); // the worker refilled nothing after the ring was drained
    expect(pool.stats).toEqual({ fromWorker: left, inThread: 5000 });
    await pool.dispose(); // idempotent
    await expect(pool.whenAvailable(1)).rejects.toThrow(/no worker/);
  });

  it('lend() hands the ring draws out in place, once each, wipes them, and draws what the ring lacks in-thread', async () => {
    const scale = 3_000_000;
    const pool = new DiscreteGaussianPool(scale, { slotValues: 256, slots: 8 });
    try {
      await pool.whenAvailable(8 * 256);
      pool.pause();
      const runs: { length: number; at: number; shared: boolean }[] = [];
      const seen: number[] = [];
      const lent: [Int32Array, number, number][] = [];
      pool.lend(3000, (draws, start, length, at) => {
        runs.push({ length, at, shared: draws.buffer instanceof SharedArrayBuffer });
        for (let i = start; i < start + length; i++) seen.push(draws[i]);
        lent.push([draws, start, length]);
      });
      // Ring runs first (one per slot, in order), then one in-thread run for the rest.
      expect(runs.map((r) => r.at)).toEqual([0, 256, 512, 768, 1024, 1280, 1536, 1792, 2048]);
      expect(runs.slice(0, 8).every((r) => r.shared && r.length === 256)).toBe(true);
      expect(runs[8]).toEqual({ length: 952, at: 2048, shared: false });
      expect(pool.stats).toEqual({ fromWorker: 2048, inThread: 952 });
      for (const [draws, start, length] of lent) expect(draws.subarray(start, start + length).every((v) => v === 0)).toBe(true);
      const { mean, std } = moments(seen);
      expect(Math.abs(mean)).toBeLessThan((5 * scale) / Math.sqrt(seen.length));
      expect(Math.abs(std / scale - 1)).toBeLessThan(0.08);
      expect(new Set(seen).size).toBeGreaterThan(2990); // fresh draws, not repeats
      // A run that throws is still used up (wiped, counted): never lent again. (A slot the worker was
      // filling when paused may still land meanwhile, so the count is read from the stats, not from
      // what the ring holds.)
      pool.resume();
      await pool.whenAvailable(512);
      pool.pause();
      const before = pool.stats.fromWorker;
      let failedRun: [Int32Array, number, number] | null = null;
      expect(() =>
        pool.lend(100, (draws, start, length) => {
          failedRun = [draws, start, length];
          throw new Error('consumer failed');
        }),
      ).toThrow(/consumer failed/);
      expect(pool.stats.fromWorker).toBe(before + 100);
      const [draws, start, length] = failedRun!;
      expect(length).toBe(100);
      expect(draws.subarray(start, start + length).every((v) => v === 0)).toBe(true);
    } finally {
      await pool.dispose();
    }
  });

  it('wipes exactly the draws it lent (odd slot sizes and run boundaries): the next ones are still fresh', async () => {
    const scale = 3_000_000; // P(Z = 0) is about 1.3e-7: a zero below is a wiped draw
    const pool = new DiscreteGaussianPool(scale, { slotValues: 7, slots: 8 });
    try {
      await pool.whenAvailable(56);
      pool.pause();
      const ring = (pool as unknown as { values: Int32Array }).values;
      expect(ring.every((v) => v !== 0)).toBe(true);
      let lent = 0;
      for (const count of [3, 1, 6, 9, 2]) {
        pool.lend(count, (draws, start, length) => {
          for (let i = start; i < start + length; i++) expect(draws[i]).not.toBe(0); // fresh when lent
        });
        lent += count;
        // The lent draws (ring order, from 0) are zero, every other one is untouched.
        for (let i = 0; i < ring.length; i++) expect(ring[i] === 0).toBe(i < lent);
      }
    } finally {
      await pool.dispose();
    }
  });

  it('refuses a bad scale or ring size, naming it', () => {
    expect(() => new DiscreteGaussianPool(0)).toThrow(/sigma/);
    expect(() => new DiscreteGaussianPool(10, { slots: 0, worker: false })).toThrow(/slots/);
    expect(() => new DiscreteGaussianPool(10, { slotValues: 1.5, worker: false })).toThrow(/slotValues/);
  });

  it('the trainer keeps one pool across private rounds and stops its worker on dispose', async () => {
    const { tf } = await selectBackend('wasm');
    const spec = modelSpecFromShorthand('mlp:8', 4);
    const trainer = new LocalTrainer(tf, spec);
    const { data, config, global } = privateTrainingCase(spec, { seed: 'pool-trainer', n: 400, localSteps: 6, sampleRate: 0.08 });
    trainer.train(global, data, { config, noiseMultiplier: 1 });
    const pool = trainer.noisePool!;
    expect(pool.running).toBe(true);
    trainer.train(global, data, { config, noiseMultiplier: 1 });
    expect(trainer.noisePool === pool).toBe(true); // same scale: same pool
    // σ = 2 has the same integer scale as σ = 1 (the grid is a power of two): still the same pool.
    trainer.train(global, data, { config, noiseMultiplier: 2 });
    expect(trainer.noisePool === pool).toBe(true);
    trainer.train(global, data, { config, noiseMultiplier: 1.3 });
    expect(trainer.noisePool === pool).toBe(false); // another scale: a new pool; the old one stopped
    expect(pool.running).toBe(false);
    const second = trainer.noisePool!;
    trainer.dispose();
    expect(second.running).toBe(false);
    expect(trainer.noisePool === null).toBe(true);
  });
});
