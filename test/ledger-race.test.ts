// Atomic check-and-append: two PROCESSES sharing one institution ledger file race to record events whose
// composition fits the budget only partly. appendWithinBudget checks and appends in one BEGIN IMMEDIATE
// transaction, so together they record exactly as many events as fit, and the composed ε never passes it.
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { projectedRoundsLeft } from '@dpfed/privacy/budget';
import { generateIdentity } from '@dpfed/privacy/identity';
import { BudgetExceededError, PrivacyLedger } from '@dpfed/privacy/ledger';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import type { TaskContext } from '@dpfed/client/learner';
import { ROOT, tempDir } from './helpers/federation-fixture.ts';

const dir = tempDir('dpfed-ledger-race-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runWorker(args: string[]): Promise<{ tag: string; recorded: number; refused: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'test/helpers/ledger-race-worker.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim())) : reject(new Error(`worker ${args[3]} exited ${code}: ${err}`))));
  });
}

describe('appendWithinBudget across processes', () => {
  it('two processes sharing one ledger never spend more than the budget together', async () => {
    const path = join(dir, 'bank.ledger.sqlite');
    const identity = generateIdentity();
    const budget = { epsilon: 2.5, delta: 1e-5 };
    const accountant = makeAccountant('rdp');
    const event = { sampleRate: 0.02, noiseMultiplier: 1, steps: 50 };
    const fits = projectedRoundsLeft([], event, budget, accountant);
    expect(fits).toBeGreaterThanOrEqual(3);
    expect(fits).toBeLessThan(40);
    {
      const db = new Database(path);
      db.pragma('journal_mode = WAL');
      new PrivacyLedger(db, { countersigner: identity }).registerInstitution('bank', identity.publicKey, budget);
      db.close();
    }
    const seed = Buffer.from(identity.seed).toString('hex');
    const startAt = String(Date.now() + 2500); // both processes are loaded by then
    const results = await Promise.all(['a', 'b'].map((tag) => runWorker([path, seed, 'bank', tag, String(fits), startAt])));
    const recorded = results.reduce((n, r) => n + r.recorded, 0);
    const refused = results.reduce((n, r) => n + r.refused, 0);
    expect(recorded + refused).toBe(2 * fits);
    expect(recorded).toBe(fits); // every event that fits, and not one more

    const db = new Database(path, { readonly: true });
    const ledger = new PrivacyLedger(db);
    expect(ledger.events({ institutionId: 'bank' })).toHaveLength(fits);
    expect(ledger.spent('bank', accountant).epsilon).toBeLessThanOrEqual(budget.epsilon);
    expect(ledger.projected('bank', [event], accountant)).toBeGreaterThan(budget.epsilon);
    expect(ledger.verify()).toMatchObject({ ok: true, rows: 1 + fits });
    db.close();
  });
});

describe('InstitutionPrivacy.recordRelease', () => {
  it('refuses, recording nothing, a release another writer of the same ledger made unaffordable after the pre-training check', () => {
    const path = join(dir, 'shared.ledger.sqlite');
    const identity = generateIdentity();
    const budget = { epsilon: 2.5, delta: 1e-5 };
    const mechanism = { sampleRate: 0.02, noiseMultiplier: 1, steps: 50, clipNorm: 1 };
    const fits = projectedRoundsLeft([], mechanism, budget, makeAccountant('rdp'));
    const a = new InstitutionPrivacy({ institutionId: 'bank', identity, budget, ledgerPath: path });
    const b = new InstitutionPrivacy({ institutionId: 'bank', identity, budget, ledgerPath: path });
    const task = (runId: string, round: number) => ({ runId, round, modelVersion: round - 1, config: { privacy: { mode: 'record', record: { accountant: 'rdp' } } } }) as unknown as TaskContext;
    for (let round = 1; round < fits; round++) b.recordRelease(task('run-b', round), mechanism);
    // when a checked before training, one more round still fitted
    expect(a.spent().epsilon).toBeLessThan(budget.epsilon);
    // meanwhile b spends the last round that fits, so a's release would pass the budget
    b.recordRelease(task('run-b', fits), mechanism);
    expect(() => a.recordRelease(task('run-a', 1), mechanism)).toThrow(BudgetExceededError);
    expect(a.spent().epsilon).toBeLessThanOrEqual(budget.epsilon);
    const db = new Database(path, { readonly: true });
    expect(new PrivacyLedger(db).events({ institutionId: 'bank' }).map((r) => r.event.runId)).toEqual(Array(fits).fill('run-b'));
    db.close();
    a.close();
    b.close();
  });
});
