#!/usr/bin/env node
// The repository's launcher of the dpfed command (npm run demo, npm run bench, the container image): the
// workspace package `dpfed` (cli/), compiled by `npm install`, or its TypeScript source when node runs with
// the "source" export condition and tsx (the tests). A plain `node` shebang, for every platform's env and
// npm's shims; long-running processes do better with cli/node-heap.ts's NODE_HEAP_FLAGS, which the npm
// scripts and dpfed's own children pass.
await import('dpfed/main');
