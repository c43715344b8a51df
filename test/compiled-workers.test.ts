// Worker threads of the compiled packages (dist/*.js, as `npm run demo`, `dpfed` and an installed package
// run them): the noise worker (privacy/noise-pool.ts) and the console's chain verifier
// (console/chain-verifier.ts) start on their compiled modules, with no tsx and no "source" condition in the
// process. The same workers from the TypeScript sources are covered by test/noise-pool.test.ts and the
// console's tests.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity } from '@dpfed/privacy/identity';
import { signEvent, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import Database from 'better-sqlite3';
import { ROOT, tempDir } from './helpers/federation-fixture.ts';

/**
 * Runs an ES module given as text with plain node (no tsx, no "source" condition), from a temporary file;
 * `{dist}` in the text stands for the repository's compiled modules (file URL of the folder holding the
 * packages, so `{dist}/privacy/dist/noise-pool.js`).
 */
function compiled(source: string, args: string[] = []): Promise<string> {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const script = join(tempDir('dpfed-compiled-worker-'), 'script.mjs');
  writeFileSync(script, source.replaceAll('{dist}', pathToFileURL(ROOT).href));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [script, ...args], { cwd: ROOT, env, encoding: 'utf8', timeout: 120_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${error.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

describe('worker threads of the compiled packages', () => {
  beforeAll(async () => {
    // the compiled packages match the sources (incremental: cheap when nothing changed)
    await new Promise<void>((resolve, reject) => execFile(process.execPath, ['tools/workspaces/build.mjs'], { cwd: ROOT }, (error, _out, stderr) => (error ? reject(new Error(stderr)) : resolve())));
  }, 300_000);

  it('the noise pool draws from its worker, started on dist/noise-worker.js', async () => {
    const out = await compiled(`
      const root = '{dist}';
      const { DiscreteGaussianPool } = await import(root + '/privacy/dist/noise-pool.js');
      const pool = new DiscreteGaussianPool(1000, { slotValues: 4096, slots: 16 });
      await pool.whenAvailable(20000);
      const values = new Int32Array(20000);
      pool.fill(values);
      console.log(JSON.stringify({ running: pool.running, stats: pool.stats, nonZero: values.some((v) => v !== 0) }));
      pool.dispose();
    `);
    const result = JSON.parse(out);
    expect(result).toMatchObject({ running: true, stats: { fromWorker: 20000, inThread: 0 }, nonZero: true });
  });

  it('the console verifies a ledger chain in its worker, started on dist/verify-worker.js', async () => {
    const dir = tempDir('dpfed-compiled-worker-');
    const dbPath = join(dir, 'bank.ledger.sqlite');
    const db = new Database(dbPath);
    const ledger = new PrivacyLedger(db, { countersigner: generateIdentity() });
    const key = generateIdentity();
    ledger.registerInstitution('bank-1', key.publicKey, { epsilon: 3, delta: 1e-5 });
    for (const round of [1, 2]) {
      const event: LedgerEvent = {
        institutionId: 'bank-1',
        runId: 'run-1',
        round,
        mode: 'record',
        sampleRate: 0.01,
        noiseMultiplier: 1.1,
        steps: 100,
        clipNorm: 1,
        delta: 1e-5,
        modelVersion: round - 1,
        time: `2024-05-01T12:00:0${round}.000Z`,
      };
      ledger.append(event, signEvent(event, key));
    }
    db.close();
    const out = await compiled(
      `
      const root = '{dist}';
      const { ChainVerifier } = await import(root + '/console/dist/chain-verifier.js');
      const verifier = new ChainVerifier(process.argv[2], () => 'v1');
      console.log(JSON.stringify(await verifier.settled(60000)));
      process.exit(0);
    `,
      [dbPath],
    );
    const state = JSON.parse(out);
    expect(state.pending).toBe(false);
    expect(state.result, JSON.stringify(state.result)).toMatchObject({ ok: true });
    expect(state.result.rows).toBeGreaterThanOrEqual(3); // the registration and both events
  });
});
