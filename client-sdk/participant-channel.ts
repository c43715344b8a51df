// What a FederationClient's task handlers (training and evaluation releases, secure sums, CKKS) need of
// the client: the link to the coordinator, the client's log, its events and its decline. A handler gets
// this, not the client, so it sees nothing else of the client's state.
import type { CoordinatorLink } from '@dpfed/proto/coordinator-link';
import type { Envelope } from '@dpfed/proto/wire';

export interface ParticipantChannel {
  readonly connection: CoordinatorLink;
  /** A line for the institution's own log (the client prefixes its institution id). */
  log(line: string): void;
  /** Emits one of FederationClient's events (listed on the class). */
  emit(event: string, payload: unknown): void;
  /**
   * Declines the task of `envelope`, saying why: logged, sent to the coordinator, emitted as 'declined';
   * a decline for budget is what the run's result reports as `declined`.
   */
  decline(envelope: Envelope, reason: string, detail: string, projectedEpsilon?: number, budgetEpsilon?: number): Promise<void>;
}
