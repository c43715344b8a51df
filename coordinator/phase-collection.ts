// The part of a round collection that one PhaseCollector answers: which result route it takes, who still
// owes an answer, an institution that is gone or declined leaving the phase, and the end of the phase at
// shutdown. The plain training and evaluation collections extend it and add what they collect.
import type { PhaseCollector } from './phase-collector.ts';
import type { ResultRoute } from './result-routing.ts';
import type { RoundCollection } from './round-collection.ts';

export abstract class PhaseCollection<Report, Outcome> implements Pick<RoundCollection<Outcome>, 'accepts' | 'awaiting' | 'drop' | 'decline' | 'stop'> {
  protected constructor(
    protected readonly phase: PhaseCollector<Report>,
    private readonly route: ResultRoute,
  ) {}

  accepts(route: ResultRoute): boolean {
    return route === this.route;
  }

  awaiting(id: string): boolean {
    return this.phase.isOpenFor(id);
  }

  drop(id: string, detail: string): void {
    this.phase.reject(id, 'dropped', detail);
  }

  decline(id: string, detail: string): void {
    this.phase.reject(id, 'declined', detail);
  }

  stop(): void {
    this.phase.close();
  }
}
