// Each institution's current task, and the long polls waiting for one. Posting a task wakes the
// institution's poll at once, so a round's latency is work, not waiting. A task stays current until it
// is replaced or cleared, so an institution that restarts mid-task is handed the same task again.
import type { TaskMsg } from '../proto/wire.ts';

type Waiter = (task: TaskMsg | undefined) => void;

export class TaskBoard {
  private readonly tasks = new Map<string, TaskMsg>();
  private readonly waiters = new Map<string, Set<Waiter>>();

  post(institutionId: string, task: TaskMsg): void {
    this.tasks.set(institutionId, task);
    const waiting = this.waiters.get(institutionId);
    if (waiting) {
      this.waiters.delete(institutionId);
      for (const wake of waiting) wake(task);
    }
  }

  clear(institutionId: string): void {
    this.tasks.delete(institutionId);
  }

  current(institutionId: string): TaskMsg | undefined {
    return this.tasks.get(institutionId);
  }

  isWaiting(institutionId: string): boolean {
    return (this.waiters.get(institutionId)?.size ?? 0) > 0;
  }

  /** The current task, or the next one posted within waitMs (undefined on timeout or cancel). */
  next(institutionId: string, waitMs: number, cancelled?: (onCancel: () => void) => void): Promise<TaskMsg | undefined> {
    const task = this.tasks.get(institutionId);
    if (task || waitMs <= 0) return Promise.resolve(task);
    return new Promise((resolve) => {
      let set = this.waiters.get(institutionId);
      if (!set) this.waiters.set(institutionId, (set = new Set()));
      const finish: Waiter = (t) => {
        clearTimeout(timer);
        set!.delete(finish);
        resolve(t);
      };
      const timer = setTimeout(() => finish(undefined), waitMs);
      set.add(finish);
      cancelled?.(() => finish(undefined));
    });
  }

  /** Wakes every waiting poll with no task (used at shutdown). */
  wakeAll(): void {
    for (const [, set] of this.waiters) for (const wake of set) wake(undefined);
    this.waiters.clear();
  }
}
