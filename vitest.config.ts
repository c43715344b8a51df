import { mkdtempSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { defaultServerConditions } from 'vite';
import { defineConfig } from 'vitest/config';

// Keys made by tests (coordinators and institutions started without an explicit key path) go to a temporary
// key directory, never to the user's ~/.config/dpfed/keys.
const keyDir = mkdtempSync(join(tmpdir(), 'dpfed-test-keys-'));

// Tests run the workspace packages from their TypeScript sources: the "source" export condition resolves
// `@dpfed/*` and `dpfed/*` to the .ts files (one module instance per file), in the tests themselves and in
// the processes they start (bin/dpfed.js, the bench's children), which run them through tsx. A test that
// checks the compiled packages (test/packages-install.test.ts) clears NODE_OPTIONS for its children.
const tsxLoader = pathToFileURL(createRequire(join(process.cwd(), 'package.json')).resolve('tsx')).href;
const SOURCE_CONDITIONS = ['source', ...defaultServerConditions];

export default defineConfig({
  resolve: { conditions: SOURCE_CONDITIONS },
  ssr: { resolve: { conditions: SOURCE_CONDITIONS, externalConditions: ['source'] } },
  test: {
    include: ['test/**/*.test.ts'],
    env: { DPFED_KEY_DIR: keyDir, NODE_OPTIONS: `--conditions=source --import=${tsxLoader}` },
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
