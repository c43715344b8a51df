#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx, so `npx dpfed` works right after `npm install`.
// A plain `node` shebang, for every platform's env and npm's shims; long-running processes do better
// with cli/node-heap.ts's NODE_HEAP_FLAGS, which the npm scripts and dpfed's own children pass.
import { register } from 'tsx/esm/api';
register();
await import('../cli/main.ts');
