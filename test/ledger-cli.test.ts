// `dpfed ledger` as a user runs it: `node bin/dpfed.js ledger …` on a ledger file the test builds.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { signEvent, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { PrivacyLedger } from '@dpfed/privacy/ledger';

const ROOT = resolve(import.meta.dirname, '..');
let dir: string;
let file: string;
let coordinator: IdentityKey;

function dpfed(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [join(ROOT, 'bin/dpfed.js'), 'ledger', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function event(institutionId: string, round: number): LedgerEvent {
  return {
    institutionId,
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
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpfed-ledger-cli-'));
  file = join(dir, 'coordinator.sqlite');
  coordinator = generateIdentity();
  const db = new Database(file);
  const ledger = new PrivacyLedger(db, { countersigner: coordinator });
  for (const id of ['bank-1', 'bank-2']) {
    const key = generateIdentity();
    ledger.registerInstitution(id, key.publicKey, { epsilon: 3, delta: 1e-5 });
    for (const round of [1, 2]) ledger.append(event(id, round), signEvent(event(id, round), key));
  }
  ledger.recordRefusal('bank-2', 'run-1', 3, 'budget', 3.4);
  db.close();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dpfed ledger', () => {
  it('--json: per institution epsilon, delta, budget, remaining, rounds left and the events; the file is left untouched', () => {
    const before = readFileSync(file);
    const { code, stdout } = dpfed('--db', file, '--json');
    expect(code).toBe(0);
    const out = JSON.parse(stdout);
    expect(out.accountant).toBe('rdp');
    expect(out.head.seq).toBe(7);
    expect(out.countersignerPublicKey).toBe(Buffer.from(coordinator.publicKey).toString('hex'));
    expect(out.institutions.map((i: { institutionId: string }) => i.institutionId)).toEqual(['bank-1', 'bank-2']);
    const bank1 = out.institutions[0];
    const expected = makeAccountant('rdp').epsilon(
      [
        { sampleRate: 0.01, noiseMultiplier: 1.1, steps: 100 },
        { sampleRate: 0.01, noiseMultiplier: 1.1, steps: 100 },
      ],
      1e-5,
    ).epsilon;
    expect(bank1.epsilon).toBe(expected);
    expect(bank1).toMatchObject({ delta: 1e-5, budget: { epsilon: 3, delta: 1e-5 } });
    expect(bank1.remaining).toBeCloseTo(3 - expected, 12);
    expect(bank1.projectedRoundsLeft).toBeGreaterThan(0);
    expect(bank1.events).toHaveLength(2);
    expect(bank1.events[0].event).toMatchObject({ institutionId: 'bank-1', round: 1, steps: 100 });
    expect(out.institutions[1].refusals).toHaveLength(1);
    expect(readFileSync(file).equals(before)).toBe(true);

    const pld = JSON.parse(dpfed('--db', file, '--institution', 'bank-1', '--accountant', 'pld', '--json').stdout);
    expect(pld.accountant).toBe('pld');
    expect(pld.institutions[0].epsilon).toBe(
      makeAccountant('pld').epsilon(
        [
          { sampleRate: 0.01, noiseMultiplier: 1.1, steps: 100 },
          { sampleRate: 0.01, noiseMultiplier: 1.1, steps: 100 },
        ],
        1e-5,
      ).epsilon,
    );

    const one = JSON.parse(dpfed('--db', file, '--institution', 'bank-2', '--json').stdout);
    expect(one.institutions).toHaveLength(1);
    expect(one.institutions[0].institutionId).toBe('bank-2');
  });

  it('prints a readable table without --json', () => {
    const { code, stdout } = dpfed('--db', file);
    expect(code).toBe(0);
    expect(stdout).toMatch(/institution\s+epsilon\s+delta\s+budget eps\s+remaining\s+rounds left/);
    expect(stdout).toMatch(/^bank-1\s+\d/m);
    expect(stdout).toMatch(/refused: bank-2 run run-1 round 3: budget/);
  });

  it('--export csv: header and one line per event, to stdout or --out', () => {
    const { code, stdout } = dpfed('--db', file, '--export', 'csv');
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0].startsWith('seq,institution_id,run_id,round,mode,sample_rate,noise_multiplier,steps,clip_norm,delta,model_version,time,')).toBe(true);
    expect(lines).toHaveLength(5);
    expect(lines[1]).toMatch(/^2,bank-1,run-1,1,record,0\.01,1\.1,100,1,/);
    const out = join(dir, 'export.csv');
    expect(dpfed('--db', file, '--export', 'csv', '--institution', 'bank-2', '--out', out).code).toBe(0);
    expect(readFileSync(out, 'utf8').trimEnd().split('\n')).toHaveLength(3);
  });

  it('--verify: exit 0 when intact, 1 naming the first bad row after tampering', () => {
    const intact = dpfed('--db', file, '--verify');
    expect(intact.code).toBe(0);
    expect(intact.stdout).toMatch(/intact: 7 rows/);
    expect(dpfed('--db', file, '--verify', '--coordinator-key', Buffer.from(generateIdentity().publicKey).toString('hex')).code).toBe(1);

    const tampered = join(dir, 'tampered.sqlite');
    writeFileSync(tampered, readFileSync(file));
    const other = new Database(tampered);
    other.exec('DROP TRIGGER ledger_events_no_update');
    other.prepare('UPDATE ledger_events SET steps = 1 WHERE seq = 3').run();
    other.close();
    const broken = dpfed('--db', tampered, '--verify');
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/row 3/);
    const json = JSON.parse(dpfed('--db', tampered, '--verify', '--json').stdout);
    expect(json).toMatchObject({ ok: false, badRow: 3 });
  });

  it('a missing database exits 2 naming it; so does a file that holds no ledger', () => {
    const missing = join(dir, 'nope.sqlite');
    const result = dpfed('--db', missing, '--json');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(missing);
    expect(existsSync(missing)).toBe(false);
    const plain = join(dir, 'plain.sqlite');
    const db = new Database(plain);
    db.exec('CREATE TABLE t (x)');
    db.close();
    const notLedger = dpfed('--db', plain);
    expect(notLedger.code).toBe(2);
    expect(notLedger.stderr).toMatch(/not a dpfed ledger/);
    expect(dpfed('--db', file, '--verify', '--export', 'csv').code).toBe(2);
  });
  it('several runs: each institution shows "this run" (the latest, or --run) beside "all runs on this ledger"', () => {
    const multi = join(dir, 'multi-run.sqlite');
    const db = new Database(multi);
    const ledger = new PrivacyLedger(db, { countersigner: coordinator });
    const key = generateIdentity();
    ledger.registerInstitution('bank-1', key.publicKey, { epsilon: 5, delta: 1e-5 });
    const events = [event('bank-1', 1), event('bank-1', 2), { ...event('bank-1', 1), runId: 'run-2', steps: 300 }];
    for (const e of events) ledger.append(e, signEvent(e, key));
    db.close();
    const rdp = makeAccountant('rdp');
    const mechanism = (e: LedgerEvent) => ({ sampleRate: e.sampleRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps });
    const run1 = rdp.epsilon(events.slice(0, 2).map(mechanism), 1e-5).epsilon;
    const run2 = rdp.epsilon(events.slice(2).map(mechanism), 1e-5).epsilon;
    const all = rdp.epsilon(events.map(mechanism), 1e-5).epsilon;
    expect(new Set([run1, run2, all]).size).toBe(3);

    const latest = JSON.parse(dpfed('--db', multi, '--json').stdout);
    expect(latest.thisRun).toBe('run-2');
    expect(latest.institutions[0]).toMatchObject({ epsilonThisRun: run2, epsilonAllRuns: all, epsilon: all });
    const given = JSON.parse(dpfed('--db', multi, '--run', 'run-1', '--json').stdout);
    expect(given.thisRun).toBe('run-1');
    expect(given.institutions[0]).toMatchObject({ epsilonThisRun: run1, epsilonAllRuns: all });

    const table = dpfed('--db', multi).stdout;
    expect(table).toMatch(/institution\s+this run eps\s+all runs eps\s+delta\s+budget eps/);
    expect(table).toMatch(/this run: run-2 \(the latest of 2 runs on this ledger/);
    expect(table).toMatch(new RegExp(`^bank-1\\s+${Number(run2.toPrecision(4))}\\s+${Number(all.toPrecision(4))}\\s`, 'm'));
    // one run only: the single epsilon column as before
    expect(dpfed('--db', file).stdout).toMatch(/institution\s+epsilon\s+delta/);
  });
});
