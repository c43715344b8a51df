// Starts a worker thread running a TypeScript module, the same under tsx, `node bin/dpfed.js` and vitest:
// the thread's entry (typescript-worker-start.mjs) registers tsx through its public API, then imports the
// module. The module reads its own data from workerData as usual; `entry` is added to it.
import { Worker } from 'node:worker_threads';

const START = new URL('./typescript-worker-start.mjs', import.meta.url);

/** A worker running the TypeScript module at `entry` (a file URL), with `data` (plus `entry`) as its workerData. */
export function typeScriptWorker(entry: URL, data: object): Worker {
  return new Worker(START, { workerData: { ...data, entry: entry.href } });
}
