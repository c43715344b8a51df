import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

// Keys made by tests (coordinators and institutions started without an explicit key path) go to a temporary
// key directory, never to the user's ~/.config/dpfed/keys.
const keyDir = mkdtempSync(join(tmpdir(), 'dpfed-test-keys-'));

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    env: { DPFED_KEY_DIR: keyDir },
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: true,
    maxWorkers: 2,
  },
});
