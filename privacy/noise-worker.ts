// The worker side of noise-pool.ts: draws i.i.d. N_Z(0, scale^2) integers (discrete-gaussian.ts, node:crypto
// randomness of this thread's own) into a ring of slots in shared memory, ahead of need. A slot is written
// only while the consumer has released it (written - released < slots) and is published by advancing the
// WRITTEN counter with an atomic store after its values are in place; the consumer reads a slot only below
// that counter. When the ring is full the worker sleeps on the RELEASED counter; while PAUSED is set it
// sleeps on that flag. STOP ends the loop.
// A worker started ahead of need (noise-pool.ts prewarmNoiseWorkers) has no ring yet: it has loaded this
// module and waits for its layout as its first message.
import { once } from 'node:events';
import { parentPort, workerData } from 'node:worker_threads';
import { sampleDiscreteGaussian } from './discrete-gaussian.ts';
import { NOISE_RING_PAUSED, NOISE_RING_RELEASED, NOISE_RING_STOP, NOISE_RING_WRITTEN, type NoiseRingLayout } from './noise-ring.ts';

const given = workerData as Partial<NoiseRingLayout>;
const layout = (given.data ? given : ((await once(parentPort!, 'message')) as [NoiseRingLayout])[0]) as NoiseRingLayout;
parentPort?.unref();
const { scale, data, control, slotValues, slots } = layout;
const values = new Int32Array(data);
const counters = new Int32Array(control);

for (;;) {
  if (Atomics.load(counters, NOISE_RING_STOP) !== 0) break;
  if (Atomics.load(counters, NOISE_RING_PAUSED) !== 0) {
    Atomics.wait(counters, NOISE_RING_PAUSED, 1, 1000);
    continue;
  }
  const written = Atomics.load(counters, NOISE_RING_WRITTEN);
  const released = Atomics.load(counters, NOISE_RING_RELEASED);
  if (written - released >= slots) {
    Atomics.wait(counters, NOISE_RING_RELEASED, released, 1000);
    continue;
  }
  const start = (written % slots) * slotValues;
  sampleDiscreteGaussian(scale, values.subarray(start, start + slotValues));
  Atomics.store(counters, NOISE_RING_WRITTEN, written + 1);
}
