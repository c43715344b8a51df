#!/usr/bin/env -S node --initial-old-space-size=128
// Runs the TypeScript CLI directly through tsx, so `npx dpfed` works right after `npm install`.
// The V8 flag on the first line is cli/node-heap.ts's NODE_HEAP_FLAGS (why: see there).
import { register } from 'tsx/esm/api';
register();
await import('../cli/main.ts');
