// `dpfed client` tells an institution what a run cost and what its ledger holds: two runs (two coordinators,
// record-level DP) on the same institution ledger; after each, the final report gives "this run" and "all
// runs on this ledger", checked against the ledger file itself.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { bankSlices, cleanUp, DPFED_BIN, enrol, FRAUD_SCHEMA, ROOT, runConfig, startTestCoordinator, tempDir, writeBankCsv } from './helpers/federation-fixture.ts';

const dir = tempDir('dpfed-client-budget-');
afterAll(() => cleanUp({ dir }));

function runClient(port: number, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        DPFED_BIN,
        'client',
        '--insecure',
        '--coordinator',
        `127.0.0.1:${port}`,
        '--institution',
        'bank-1',
        '--data',
        join(dir, 'bank.csv'),
        '--schema',
        FRAUD_SCHEMA,
        '--identity',
        join(dir, 'bank-1.identity'),
        '--ledger',
        join(dir, 'bank-1.ledger.sqlite'),
        '--backend',
        'wasm',
        ...args,
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

async function oneRun(name: string, args: string[]) {
  const config = runConfig([
    '--rounds',
    '1',
    '--min-clients',
    '1',
    '--privacy',
    'record',
    '--epsilon',
    '2',
    '--delta',
    '1e-5',
    '--aggregation',
    'plain',
    '--model',
    'logistic',
    '--round-timeout',
    '60',
  ]);
  const coordinator = await startTestCoordinator({ dbPath: join(dir, `${name}.sqlite`), config, insecure: true });
  const identity = spawnSync(process.execPath, [DPFED_BIN, 'identity', 'show', '--identity', join(dir, 'bank-1.identity'), '--json'], { cwd: ROOT, encoding: 'utf8' });
  enrol(coordinator, 'bank-1', new Uint8Array(Buffer.from(JSON.parse(identity.stdout).publicKey, 'hex')));
  try {
    return { ...(await runClient(coordinator.port, args)), runId: coordinator.runId };
  } finally {
    await coordinator.close();
  }
}

function ledgerEpsilon(runId?: string): number {
  const db = new Database(join(dir, 'bank-1.ledger.sqlite'), { readonly: true });
  try {
    return new PrivacyLedger(db).spent('bank-1', makeAccountant('rdp'), { runId }).epsilon;
  } finally {
    db.close();
  }
}

describe('dpfed client: this run and all runs on this ledger', () => {
  it('reports both, in --json and in its final line', async () => {
    writeBankCsv(join(dir, 'bank.csv'), bankSlices(1, { rowsPerBank: 800, seed: 'client-budget' })[0]);
    const init = spawnSync(process.execPath, [DPFED_BIN, 'identity', 'init', '--identity', join(dir, 'bank-1.identity'), '--institution', 'bank-1'], { cwd: ROOT, encoding: 'utf8' });
    expect(init.status, init.stderr).toBe(0);

    const first = await oneRun('first', ['--json']);
    expect(first.code, first.err).toBe(0);
    const report = JSON.parse(first.out.trim().split('\n').pop()!);
    expect(report.epsilonThisRun).toBeGreaterThan(0);
    expect(report.epsilonThisRun).toBe(ledgerEpsilon(first.runId));
    expect(report.epsilonAllRuns).toBe(report.epsilonThisRun);
    expect(report).toMatchObject({ runs: [first.runId], budget: 10 });
    // its own metrics of each model it received (the initial one, round 1's), on its validation rows: in --json and its log
    expect(report.localMetrics.map((m: { round: number }) => m.round)).toEqual([0, 1]);
    for (const m of report.localMetrics) {
      expect(Object.keys(m).sort()).toEqual(['accuracy', 'auc', 'logLoss', 'modelId', 'n', 'prAuc', 'precision', 'recall', 'round']);
      expect(m.n).toBeGreaterThan(0);
    }
    expect(first.err).toMatch(/round 1 global model on my validation rows \(stays here\): AUC \d\.\d{4}, PR-AUC/);

    const second = await oneRun('second', ['--no-local-metrics']);
    expect(second.code, second.err).toBe(0);
    expect(second.err).not.toContain('on my validation rows');
    const thisRun = ledgerEpsilon(second.runId);
    const all = ledgerEpsilon();
    expect(all).toBeGreaterThan(thisRun);
    expect(second.err).toContain(`this run: epsilon ${thisRun.toFixed(3)}; all runs on this ledger: epsilon ${all.toFixed(3)} of budget 10 at delta 0.00001`);
  }, 180_000);
});
