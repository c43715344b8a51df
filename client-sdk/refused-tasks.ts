// Tasks this client refused, or whose answer the coordinator refused, by run/round/kind/collection, with
// how often they came back, so that a refused task is not handled again in a loop.
import type { TaskMsg } from '@dpfed/proto/wire';
import { jittered } from './coordinator-retry.ts';

/** Pauses before a refused task that comes back is looked at again: from 1 s, doubling, up to 30 s. */
const REFUSED_BACKOFF = { initialMs: 1_000, maxMs: 30_000 } as const;

/** The first task of a collection (it starts a new attempt of the round's training or evaluation). */
const STARTS_ATTEMPT = new Set(['TRAIN', 'EVALUATE', 'CKKS_KEYGEN']);

/** What looking at a refused task again needs of its client. */
export interface RefusedTaskContext {
  /** Waits `ms`, or less when the client is closed or stopped. */
  sleep(ms: number): Promise<void>;
  /** True once the client was closed or stopped. */
  stopped(): boolean;
  /** Emits 'refused-again' {task, times}. */
  emit(event: string, payload: unknown): void;
}

export class RefusedTasks {
  private readonly refused = new Map<string, { times: number }>();

  constructor(private readonly client: RefusedTaskContext) {}

  private key(task: TaskMsg): string {
    return `${task.envelope.runId}/${task.envelope.round}/${task.kind}/${task.secagg?.collection ?? ''}`;
  }

  remember(task: TaskMsg): void {
    const key = this.key(task);
    if (!this.refused.has(key)) this.refused.set(key, { times: 0 });
    // keep the memory small: the oldest entries go first
    while (this.refused.size > 256) this.refused.delete(this.refused.keys().next().value!);
  }

  /**
   * Whether `task` was refused before (by this client or by the coordinator), after pausing. A later step
   * of a secure sum or CKKS round (share keys, masked input, unmask, decrypt) is never handled again: it
   * cannot succeed in the same attempt, and the coordinator closes the phase without it. The first task of
   * an attempt (TRAIN, EVALUATE, CKKS_KEYGEN) comes back the same when a failed round is run again under
   * its number, so it is handled again, but only after a pause that doubles each time (1 s up to 30 s):
   * never a hot loop. Handling a new first task forgets the refused later steps of that round.
   */
  async refusedBefore(task: TaskMsg): Promise<boolean> {
    const { client } = this;
    const key = this.key(task);
    if (STARTS_ATTEMPT.has(task.kind)) {
      const prefix = `${task.envelope.runId}/${task.envelope.round}/`;
      for (const k of [...this.refused.keys()]) if (k.startsWith(prefix) && !STARTS_ATTEMPT.has(k.slice(prefix.length).split('/')[0])) this.refused.delete(k);
    }
    const seen = this.refused.get(key);
    if (!seen) return false;
    seen.times++;
    client.emit('refused-again', { task, times: seen.times });
    await client.sleep(jittered(Math.min(REFUSED_BACKOFF.maxMs, REFUSED_BACKOFF.initialMs * 2 ** Math.min(seen.times - 1, 10))));
    return client.stopped() || !STARTS_ATTEMPT.has(task.kind);
  }
}
