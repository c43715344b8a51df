// Starts the noise worker (noise-worker.ts) in a worker thread: registers tsx's TypeScript loader through
// tsx's public API (the package export `tsx/esm/api`), then imports the worker module. Plain JavaScript so
// the thread can load it before any loader is registered; noise-pool.ts starts it.
import { register } from 'tsx/esm/api';

register();
await import('./noise-worker.ts');
