// Runs a sweep's jobs on worker_threads (default one per core), each thread holding the pooled data
// once and taking the next job when it finishes one. A job that fails is reported with its error and
// the others go on. Each job is deterministic per seed (except CSPRNG noise), so the thread it runs on
// does not change its result.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { moduleBeside, typeScriptWorker } from '@dpfed/privacy/typescript-worker';
import type { BackendName } from '@dpfed/client/tf-backend';
import type { TransportName } from './federation-transport.ts';
import type { SimJob } from './sim-grid.ts';
import type { SimData } from './sim-data.ts';
import type { SimRecord } from './sim-result.ts';

export interface SimWorkerData {
  data: SimData;
  transport: TransportName;
  backend?: BackendName;
}

export interface SimWorkerRequest {
  job: SimJob;
}

export type SimWorkerReply = { jobId: string; rows: SimRecord[] } | { jobId: string; error: string };

export interface PoolOptions {
  workers?: number;
  data: SimData;
  transport: TransportName;
  /** The TensorFlow.js backend of every worker (default wasm). */
  backend?: BackendName;
  /** Told each finished job's rows as it finishes (in completion order). */
  onRows?: (job: SimJob, rows: SimRecord[]) => void;
  /** Told each failed job. */
  onError?: (job: SimJob, error: string) => void;
}

export function defaultWorkers(): number {
  return availableParallelism();
}

/** Runs every job; resolves with the failures (empty when all succeeded). */
export async function runOnWorkers(jobs: SimJob[], o: PoolOptions): Promise<{ job: SimJob; error: string }[]> {
  const failures: { job: SimJob; error: string }[] = [];
  if (jobs.length === 0) return failures;
  const count = Math.max(1, Math.min(o.workers ?? defaultWorkers(), jobs.length));
  const queue = [...jobs];
  const entry = moduleBeside(import.meta.url, 'sim-worker');
  const workers: Worker[] = [];
  try {
    await Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise<void>((resolve, reject) => {
            const worker = typeScriptWorker(entry, { data: o.data, transport: o.transport, backend: o.backend } satisfies SimWorkerData);
            workers.push(worker);
            let current: SimJob | undefined;
            const next = () => {
              current = queue.shift();
              if (!current) {
                resolve();
                return;
              }
              worker.postMessage({ job: current } satisfies SimWorkerRequest);
            };
            worker.on('message', (message: SimWorkerReply | { ready: true }) => {
              if ('ready' in message) return next();
              if (!current || message.jobId !== current.id) return;
              if ('error' in message) {
                failures.push({ job: current, error: message.error });
                o.onError?.(current, message.error);
              } else o.onRows?.(current, message.rows);
              next();
            });
            worker.on('error', reject);
            worker.on('exit', (code) => {
              if (current || queue.length) reject(new Error(`a simulation worker exited (code ${code}) with jobs left`));
            });
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return failures;
}
