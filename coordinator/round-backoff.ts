// The pause between a failed round and its retry.
import { randomInt } from 'node:crypto';

/** The pause after a failed round: 1 s, doubling per failure in a row up to 30 s; reset by a committed round. */
export const FAILED_ROUND_BACKOFF = { initialMs: 1_000, maxMs: 30_000 } as const;

/**
 * The pause before retrying after `failures` failed rounds in a row: exponential, capped, with "equal
 * jitter" (between half and all of the step), so institutions and coordinators do not retry in lockstep.
 */
export function failedRoundBackoffMs(failures: number): number {
  const step = Math.min(FAILED_ROUND_BACKOFF.maxMs, FAILED_ROUND_BACKOFF.initialMs * 2 ** Math.max(0, Math.min(failures - 1, 30)));
  return Math.round(step / 2 + randomInt(0, Math.floor(step / 2) + 1));
}

/** A pause that stop() can end early. */
export class InterruptiblePause {
  private wake: (() => void) | null = null;

  /** Resolves after `ms`, or at once when interrupted. */
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  interrupt(): void {
    this.wake?.();
  }
}
