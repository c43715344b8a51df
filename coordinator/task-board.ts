// Each institution's current task, and the long polls waiting for one. Posting a task wakes the
// institution's poll at once, so a round's latency is work, not waiting. A task stays current until it
// is replaced or cleared, so an institution that restarts mid-task is handed the same task again. The
// board also knows when each task was posted and whether it was handed out yet (the task-pickup rule),
// and holds back tasks from institutions that declined in the current round (no re-post loop).
import type { TaskMsg } from '@dpfed/proto/wire';

type Waiter = (task: TaskMsg | undefined) => void;

export class TaskBoard {
  private readonly tasks = new Map<string, TaskMsg>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** When each current task was posted, and whether a poll has been handed it since. */
  private readonly posted = new Map<string, { at: number; fetched: boolean }>();
  /** Institutions that get no task until unblockAll() (they declined in this round). */
  private readonly blocked = new Set<string>();

  post(institutionId: string, task: TaskMsg): void {
    if (this.blocked.has(institutionId) && task.kind !== 'DONE') return;
    this.tasks.set(institutionId, task);
    this.posted.set(institutionId, { at: Date.now(), fetched: false });
    const waiting = this.waiters.get(institutionId);
    if (waiting) {
      this.waiters.delete(institutionId);
      for (const wake of waiting) wake(task);
    }
  }

  clear(institutionId: string): void {
    this.tasks.delete(institutionId);
    this.posted.delete(institutionId);
  }

  /** Holds back every later task of this institution (until unblockAll) and clears its current one. */
  block(institutionId: string): void {
    this.blocked.add(institutionId);
    this.clear(institutionId);
  }

  unblockAll(): void {
    this.blocked.clear();
  }

  /** Institutions whose current task was posted before `before` (ms since epoch) and never handed out. */
  unfetched(before: number): string[] {
    const out: string[] = [];
    for (const [id, p] of this.posted) if (!p.fetched && p.at < before) out.push(id);
    return out;
  }

  private handOut(institutionId: string, task: TaskMsg | undefined): TaskMsg | undefined {
    const p = this.posted.get(institutionId);
    if (task && p && this.tasks.get(institutionId) === task) p.fetched = true;
    return task;
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
    if (task || waitMs <= 0) return Promise.resolve(this.handOut(institutionId, task));
    return new Promise((resolve) => {
      let set = this.waiters.get(institutionId);
      if (!set) this.waiters.set(institutionId, (set = new Set()));
      const finish: Waiter = (t) => {
        clearTimeout(timer);
        set!.delete(finish);
        resolve(this.handOut(institutionId, t));
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
