// Liveness within a round: a participant known to be gone leaves the open collection step at once
// instead of at its deadline. Two rules: every Session stream of the institution closed, or it has not
// fetched a task posted --task-pickup-timeout ago (checked every 200 ms while a round runs). A dropped
// institution is marked unresponsive, so it is not sampled again until it shows life.
import type { InstitutionRegistry } from './institution-registry.ts';
import type { RoundCollection } from './round-collection.ts';
import type { TaskBoard } from './task-board.ts';

/** The default of --task-pickup-timeout for runs stored without it. */
const DEFAULT_TASK_PICKUP_MS = 10_000;
/** How often a running round looks for sampled institutions that have not fetched their task. */
const PICKUP_CHECK_MS = 200;

export class RoundLiveness {
  constructor(
    private readonly o: {
      registry: InstitutionRegistry;
      board: TaskBoard;
      taskPickupTimeoutMs?: number;
      /** The round's open collection, if any. */
      collecting: () => RoundCollection<unknown> | null;
      /** Told of each drop (the round's 'participant-dropped' event). */
      dropped: (id: string, detail: string) => void;
    },
  ) {}

  /** Applies the task-pickup rule until the returned function is called (the end of the round). */
  watchPickups(): () => void {
    const watch = setInterval(() => this.dropUnfetched(), PICKUP_CHECK_MS);
    return () => clearInterval(watch);
  }

  /** Every Session stream of `id` closed: it is gone, so the round stops waiting for it. */
  gone(id: string): void {
    if (!this.drop(id, 'its Session stream closed')) this.o.registry.markUnresponsive(id, 'its Session stream closed');
  }

  /** Drops `id` from the collection step now open; false when it owed no answer. */
  private drop(id: string, detail: string): boolean {
    const open = this.o.collecting();
    if (!open?.awaiting(id)) return false;
    this.o.registry.markUnresponsive(id, detail);
    this.o.board.clear(id);
    open.drop(id, detail);
    this.o.dropped(id, detail);
    return true;
  }

  private dropUnfetched(): void {
    const pickupMs = this.o.taskPickupTimeoutMs ?? DEFAULT_TASK_PICKUP_MS;
    for (const id of this.o.board.unfetched(Date.now() - pickupMs)) {
      this.drop(id, `did not fetch its task within the task-pickup timeout (${pickupMs / 1000} s)`);
    }
  }
}
