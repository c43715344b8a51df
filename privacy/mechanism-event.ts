// One mechanism event, as the accountant sees it: `steps` applications of the Poisson-subsampled
// Gaussian mechanism with sampling rate q and noise multiplier sigma (noise stddev = sigma * sensitivity).
// Record-level DP: q = expected batch / local records, steps = local DP-SGD steps in a round.
// Client-level DP: q = client sampling rate, one step per round.

export interface MechanismEvent {
  /** Poisson sampling rate q in (0, 1]; 1 = every record (or client) every step. */
  sampleRate: number;
  /** Noise standard deviation divided by the L2 sensitivity (clip norm); > 0. */
  noiseMultiplier: number;
  /** Number of compositions of this mechanism; a positive integer. */
  steps: number;
}

/** Throws an Error naming the bad field (with the event's index when given). */
export function validateMechanismEvent(e: unknown, index?: number): asserts e is MechanismEvent {
  const where = index === undefined ? 'mechanism event' : `mechanism event ${index}`;
  if (!e || typeof e !== 'object') throw new Error(`${where}: expected an object with sampleRate, noiseMultiplier, steps`);
  const { sampleRate, noiseMultiplier, steps } = e as Record<string, unknown>;
  if (typeof sampleRate !== 'number' || Number.isNaN(sampleRate) || !(sampleRate > 0 && sampleRate <= 1)) {
    throw new Error(`${where}: sampleRate must be a number in (0, 1], got ${String(sampleRate)}`);
  }
  if (typeof noiseMultiplier !== 'number' || !Number.isFinite(noiseMultiplier) || noiseMultiplier <= 0) {
    throw new Error(`${where}: noiseMultiplier must be a finite number > 0, got ${String(noiseMultiplier)}`);
  }
  if (typeof steps !== 'number' || !Number.isSafeInteger(steps) || steps < 1) {
    throw new Error(`${where}: steps must be a positive integer, got ${String(steps)}`);
  }
}

/** Throws unless delta is a number in (0, 1). */
export function validateDelta(delta: unknown): asserts delta is number {
  if (typeof delta !== 'number' || Number.isNaN(delta) || !(delta > 0 && delta < 1)) {
    throw new Error(`delta must be a number in (0, 1), got ${String(delta)}`);
  }
}
