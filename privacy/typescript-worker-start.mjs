// Entry of a worker thread that runs a TypeScript module: registers tsx's loader in this thread through
// tsx's public API (the package export `tsx/esm/api`; loader hooks registered in the parent thread do not
// reach workers), then imports the module named by workerData.entry (a file URL). Plain JavaScript so the
// thread can load it before any loader is registered. Used by privacy/noise-pool.ts and
// console/chain-verifier.ts through typeScriptWorker().
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
