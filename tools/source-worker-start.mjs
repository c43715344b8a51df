// Entry of a worker thread that runs a dpfed module from its TypeScript source (tests, and anything run
// through tsx in this repository; the compiled packages start their workers on dist/*.js directly). Loader
// hooks registered in the parent thread do not reach workers, so this registers them again in the thread:
// tsx through its public API (the package export `tsx/esm/api`), and the "source" export condition, so
// `@dpfed/*` imports resolve to the packages' .ts sources as they do in the parent. Then it imports the
// module named by workerData.entry (a file URL). Plain JavaScript so the thread can load it before any
// loader is registered. Used by privacy/typescript-worker.ts.
import { register as registerHooks } from 'node:module';
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const SOURCE_CONDITION = `export async function resolve(specifier, context, next) {
  return next(specifier, { ...context, conditions: [...new Set(['source', ...context.conditions])] });
}`;
registerHooks(`data:text/javascript,${encodeURIComponent(SOURCE_CONDITION)}`);
await import(workerData.entry);
