// Runs a sweep's jobs on worker_threads (default one per core), each thread holding the pooled data
// once and taking the next job when it finishes one. A job that fails, or runs past the time limit, is
// reported with its error and the others go on. Each job is deterministic per seed (except CSPRNG noise), so the thread it runs on
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
  /** A setting still running after this many milliseconds is stopped and failed (default: no limit). */
  settingTimeoutMs?: number;
}

export function defaultWorkers(): number {
  return availableParallelism();
}

/** A booted worker: resolves once it says it holds the data. */
function bootWorker(entry: URL, data: SimWorkerData): Promise<Worker> {
  const worker = typeScriptWorker(entry, data);
  return new Promise((resolve, reject) => {
    const ready = (message: { ready?: true }) => {
      if (!message?.ready) return;
      worker.off('message', ready).off('error', reject);
      resolve(worker);
    };
    worker.on('message', ready).once('error', reject);
  });
}

/** The worker's reply to `job`, or 'timeout' when it takes longer than `timeoutMs`; rejects when the worker fails. */
function runJob(worker: Worker, job: SimJob, timeoutMs: number | undefined): Promise<SimWorkerReply | 'timeout'> {
  return new Promise((resolve, reject) => {
    const timer = timeoutMs === undefined ? null : setTimeout(() => finish('timeout'), timeoutMs);
    const onMessage = (message: SimWorkerReply) => {
      if (message?.jobId === job.id) finish(message);
    };
    const onExit = (code: number) => fail(new Error(`a simulation worker exited (code ${code}) while running setting ${job.id}`));
    const fail = (error: Error) => {
      cleanUp();
      reject(error);
    };
    const finish = (reply: SimWorkerReply | 'timeout') => {
      cleanUp();
      resolve(reply);
    };
    const cleanUp = () => {
      if (timer) clearTimeout(timer);
      worker.off('message', onMessage).off('error', fail).off('exit', onExit);
    };
    worker.on('message', onMessage).once('error', fail).once('exit', onExit);
    worker.postMessage({ job } satisfies SimWorkerRequest);
  });
}

/**
 * Runs every job; resolves with the failures (empty when all succeeded). Each of `workers` lanes takes the
 * next job when it finishes one. A job that runs past `settingTimeoutMs` is failed with an error naming the
 * limit: its worker is terminated (a hung federation stops with it) and the lane boots a fresh one.
 */
export async function runOnWorkers(jobs: SimJob[], o: PoolOptions): Promise<{ job: SimJob; error: string }[]> {
  const failures: { job: SimJob; error: string }[] = [];
  if (jobs.length === 0) return failures;
  const count = Math.max(1, Math.min(o.workers ?? defaultWorkers(), jobs.length));
  const queue = [...jobs];
  const entry = moduleBeside(import.meta.url, 'sim-worker');
  const data: SimWorkerData = { data: o.data, transport: o.transport, backend: o.backend };
  const running = new Set<Worker>();
  const lane = async () => {
    let worker: Worker | null = null;
    try {
      for (let job = queue.shift(); job; job = queue.shift()) {
        if (!worker) running.add((worker = await bootWorker(entry, data)));
        const reply = await runJob(worker, job, o.settingTimeoutMs);
        if (reply === 'timeout') {
          const error = `the setting ran longer than its time limit of ${o.settingTimeoutMs! / 1000} s (--setting-timeout) and was stopped`;
          failures.push({ job, error });
          o.onError?.(job, error);
          running.delete(worker);
          await worker.terminate();
          worker = null;
        } else if ('error' in reply) {
          failures.push({ job, error: reply.error });
          o.onError?.(job, reply.error);
        } else o.onRows?.(job, reply.rows);
      }
    } finally {
      if (worker) running.delete(worker);
      await worker?.terminate();
    }
  };
  const lanes = await Promise.allSettled(
    Array.from({ length: count }, () =>
      lane().catch(async (error) => {
        // a worker that fails (not a job: the thread itself) ends the sweep: no lane takes another job
        queue.length = 0;
        await Promise.all([...running].map((w) => w.terminate()));
        throw error;
      }),
    ),
  );
  const failed = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
  if (failed) throw failed.reason;
  return failures;
}
