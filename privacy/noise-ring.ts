// The shared-memory layout between noise-pool.ts (consumer, the training thread) and noise-worker.ts
// (producer): `slots` slots of `slotValues` Int32 noise values, and four Int32 counters/flags.

/** Slots the worker has filled (monotone). */
export const NOISE_RING_WRITTEN = 0;
/** Slots the consumer has used up and given back (monotone). */
export const NOISE_RING_RELEASED = 1;
/** Non-zero: the worker must stop. */
export const NOISE_RING_STOP = 2;
/** Non-zero: the worker must not draw for now (the consumer is busy and has enough); it sleeps on this. */
export const NOISE_RING_PAUSED = 3;
/** Counters in the control buffer. */
export const NOISE_RING_COUNTERS = 4;

export interface NoiseRingLayout {
  /** sigma of the discrete Gaussian drawn. */
  scale: number;
  /** slots * slotValues Int32 values. */
  data: SharedArrayBuffer;
  /** NOISE_RING_COUNTERS Int32 counters and flags (above). */
  control: SharedArrayBuffer;
  slotValues: number;
  slots: number;
}
