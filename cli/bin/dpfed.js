#!/usr/bin/env node
// The dpfed command. It imports the CLI through the package's own name, so it runs the compiled
// dist/main.js, or cli/main.ts when node runs with the "source" export condition and tsx (the repository's
// tests). A plain `node` shebang, for every platform's env and npm's shims; long-running processes do
// better with the V8 heap flag of node-heap.ts, which the npm scripts and dpfed's own children pass.
await import('dpfed/main');
