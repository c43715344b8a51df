// An institution gets ready for a run's first round while the federation is still gathering. The
// coordinator's WAIT tasks carry the next round's configuration (coordinator/round-tasks.ts); on the first
// one of a run the institution
//   - calibrates its noise plan for the run (its privacy guard keeps it for every round of the run), and
//   - has its learner make the noise source at the round's scale, whose worker fills the ring now, and run
//     a few gradient passes, computed and dropped, so the round's first steps do not run the model cold.
// Nothing leaves the institution and nothing is recorded: the round's own checks still decide (budget, a
// round already released, the plan's noise). A preparation that fails is logged and dropped; the round then
// does the same work itself and reports the error there.
import type { ClientPrivacy } from './client-privacy.ts';
import type { Learner, TaskContext } from './learner.ts';

export interface RunPreparationOptions {
  learner: Learner;
  privacy?: ClientPrivacy;
  log: (line: string) => void;
  /** Told of each preparation: the run and how long it took. */
  prepared: (event: { runId: string; seconds: number }) => void;
}

export class RunPreparation {
  private preparedRun: string | null = null;

  constructor(private readonly o: RunPreparationOptions) {}

  /** Whether this institution has anything to prepare (a learner that can), so asking for a WAIT at once is worth it. */
  get able(): boolean {
    return typeof this.o.learner.prepare === 'function' || typeof this.o.privacy?.prepare === 'function';
  }

  /** Prepares for the run of a WAIT task that carries its configuration (`context` reads it), once per run; true when it did. */
  prepare(runId: string, context: () => TaskContext): boolean {
    if (!this.able || this.preparedRun === runId) return false;
    this.preparedRun = runId;
    const started = performance.now();
    try {
      const task = context();
      const noiseMultiplier = this.o.privacy?.prepare?.(task, this.o.learner) ?? null;
      this.o.learner.prepare?.(task, noiseMultiplier);
    } catch (error) {
      this.o.log(`preparing for run ${runId} failed (the first round will do it): ${(error as Error)?.message ?? error}`);
      return false;
    }
    const seconds = (performance.now() - started) / 1000;
    this.o.log(`prepared for run ${runId} in ${seconds.toFixed(2)} s`);
    this.o.prepared({ runId, seconds });
    return true;
  }
}
