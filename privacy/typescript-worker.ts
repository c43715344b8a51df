// Starts a worker thread running one of dpfed's modules, whether this package runs compiled or from its
// TypeScript source. Compiled (dist/*.js, what `npm install` builds and what the published packages
// hold), the module is the worker's entry itself. From source (vitest, tsx: the module's URL ends in
// .ts), the thread starts on tools/source-worker-start.mjs, which exists only in the source repository: it
// registers tsx and the "source" export condition in the thread, then imports the module. The module reads
// its own data from workerData as usual (`entry` is added to it when started from source).
import { Worker } from 'node:worker_threads';

const SOURCE_START = new URL('../tools/source-worker-start.mjs', import.meta.url);

/** The module `name` ('noise-worker') beside the module at `base` (its import.meta.url), with base's extension. */
export function moduleBeside(base: string, name: string): URL {
  const extension = base.endsWith('.ts') ? '.ts' : '.js';
  return new URL(`./${name}${extension}`, base);
}

/** A worker running the module at `entry` (a file URL, .js or .ts), with `data` as its workerData. */
export function typeScriptWorker(entry: URL, data: object): Worker {
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData: data });
  return new Worker(SOURCE_START, { workerData: { ...data, entry: entry.href } });
}
