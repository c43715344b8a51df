// Anchored verification: `dpfed ledger --verify --receipts FILE` (run as a user runs it) fails, naming the
// row, on a ledger whose tail was truncated back to an older countersigned head, on a wiped ledger, and on a
// ledger the key holder re-chained without one institution-signed event, given the receipts the other
// party holds; an intact ledger passes, and --export-receipts writes the file --receipts reads.
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { signEvent, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { parseReceipts, ReceiptStore, type LedgerReceipt } from '@dpfed/privacy/receipts';
import { DPFED_BIN, ROOT, tempDir } from './helpers/federation-fixture.ts';

const dir = tempDir('dpfed-ledger-receipts-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function dpfed(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [DPFED_BIN, 'ledger', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
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

/** A ledger countersigned by `key` with `banks` registered and their events for `rounds`, skipping `skip`. */
function buildLedger(path: string, key: IdentityKey, banks: Map<string, IdentityKey>, rounds: number[], skip?: { id: string; round: number }): void {
  const db = new Database(path);
  const ledger = new PrivacyLedger(db, { countersigner: key, now: () => new Date('2024-05-01T12:00:00.000Z') });
  for (const [id, bank] of banks) ledger.registerInstitution(id, bank.publicKey, { epsilon: 3, delta: 1e-5 });
  for (const round of rounds) {
    for (const [id, bank] of banks) {
      if (skip && skip.id === id && skip.round === round) continue;
      ledger.append(event(id, round), signEvent(event(id, round), bank));
    }
  }
  db.close();
}

/** Keeps the ledger's signed head as the other party would (in its own file), and exports it with the CLI. */
function receiptsFile(ledgerPath: string, key: IdentityKey, holderPath: string, subject: string): string {
  const db = new Database(ledgerPath);
  const receipt = new PrivacyLedger(db, { countersigner: key }).signedHead(subject);
  db.close();
  const holder = new Database(holderPath);
  new ReceiptStore(holder).add(receipt);
  holder.close();
  const out = join(dir, `${subject}-receipts-${Math.random().toString(36).slice(2)}.json`);
  const exported = dpfed('--db', holderPath, '--export-receipts', '--institution', subject, '--out', out);
  expect(exported.code).toBe(0);
  return out;
}

describe("an institution keeping the coordinator's receipts", () => {
  it('refuses a head that goes back or rewrites a seq it already holds', () => {
    const bank = generateIdentity();
    const coordinator = generateIdentity();
    const privacy = new InstitutionPrivacy({ institutionId: 'bank-k', identity: bank, budget: { epsilon: 3, delta: 1e-5 }, ledgerPath: join(dir, 'bank-k.ledger.sqlite') });
    const path = join(dir, 'coordinator-k.sqlite');
    buildLedger(path, coordinator, new Map([['bank-k', bank]]), [1, 2]);
    const head = (p: string) => {
      const db = new Database(p);
      const receipt = new PrivacyLedger(db, { countersigner: coordinator }).signedHead('coordinator');
      db.close();
      return receipt;
    };
    const at3 = head(path);
    privacy.keepCoordinatorReceipt(at3);
    privacy.keepCoordinatorReceipt(at3); // the same receipt again: kept once
    const rewritten = join(dir, 'coordinator-k.rewritten.sqlite');
    buildLedger(rewritten, coordinator, new Map([['bank-k', bank]]), [1, 3]);
    expect(() => privacy.keepCoordinatorReceipt(head(rewritten))).toThrow(/already signed another hash for seq 3/);
    const shorter = join(dir, 'coordinator-k.shorter.sqlite');
    buildLedger(shorter, coordinator, new Map([['bank-k', bank]]), [1]);
    expect(() => privacy.keepCoordinatorReceipt(head(shorter))).toThrow(/went back from seq 3 to 2/);
    expect(privacy.coordinatorReceipts().map((r) => r.seq)).toEqual([3]);
    privacy.close();
  });
});

describe('dpfed ledger --verify --receipts', () => {
  it("detects the coordinator's ledger re-chained without one institution-signed event", () => {
    const coordinator = generateIdentity();
    const banks = new Map([
      ['bank-1', generateIdentity()],
      ['bank-2', generateIdentity()],
    ]);
    const path = join(dir, 'coordinator.sqlite');
    buildLedger(path, coordinator, banks, [1, 2]);
    // bank-1 holds the coordinator's signed head after round 2 (in its own ledger file's receipts table)
    const receipts = receiptsFile(path, coordinator, join(dir, 'bank-1.holder.sqlite'), 'coordinator');
    expect(parseReceipts(readFileSync(receipts, 'utf8'), receipts)).toMatchObject([{ seq: 6, subject: 'coordinator' }]);
    const intact = dpfed('--db', path, '--verify', '--receipts', receipts);
    expect(intact.stdout).toMatch(/ledger intact: 6 rows/);
    expect(intact.code).toBe(0);

    // the key holder rebuilds the chain without bank-2's round-1 event and adds one more row: a valid chain by itself
    const rechained = join(dir, 'coordinator.rechained.sqlite');
    buildLedger(rechained, coordinator, banks, [1, 2, 3], { id: 'bank-2', round: 1 });
    expect(dpfed('--db', rechained, '--verify').code).toBe(0);
    const result = dpfed('--db', rechained, '--verify', '--receipts', receipts);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/verification FAILED at row 6: row 6 does not match the receipt .*re-chained/);
  });

  it('detects an institution ledger truncated back to an older countersigned head, and a wiped one', () => {
    const bank = generateIdentity();
    const path = join(dir, 'bank-a.ledger.sqlite');
    buildLedger(path, bank, new Map([['bank-a', bank]]), [1]);
    const older = join(dir, 'bank-a.older.sqlite');
    copyFileSync(path, older); // 2 rows, with its own valid countersigned head
    {
      const db = new Database(path);
      const ledger = new PrivacyLedger(db, { countersigner: bank });
      for (const round of [2, 3]) ledger.append(event('bank-a', round), signEvent(event('bank-a', round), bank));
      db.close();
    }
    // the coordinator holds bank-a's signed head at seq 4
    const receipts = receiptsFile(path, bank, join(dir, 'coordinator.holder.sqlite'), 'bank-a');
    expect(dpfed('--db', path, '--verify', '--receipts', receipts).code).toBe(0);

    // truncated: the older copy verifies on its own, not against the receipt
    expect(dpfed('--db', older, '--verify').code).toBe(0);
    const truncated = dpfed('--db', older, '--verify', '--receipts', receipts, '--json');
    expect(truncated.code).toBe(1);
    expect(JSON.parse(truncated.stdout)).toMatchObject({ ok: false, badRow: 4 });
    expect(truncated.stderr).toMatch(/FAILED at row 4: row 4 is missing: .*holds 2 rows \(tail truncated to an older head, or wiped\)/);

    // wiped: every row and the head removed (the append-only triggers dropped first); an empty ledger verifies alone
    const wiped = join(dir, 'bank-a.wiped.sqlite');
    copyFileSync(path, wiped);
    {
      const db = new Database(wiped);
      for (const t of ['ledger_institutions', 'ledger_events', 'ledger_refusals']) db.exec(`DROP TRIGGER ${t}_no_delete; DELETE FROM ${t};`);
      db.exec("DELETE FROM ledger_meta WHERE key LIKE 'head_%'");
      db.close();
    }
    expect(dpfed('--db', wiped, '--verify').code).toBe(0);
    const result = dpfed('--db', wiped, '--verify', '--receipts', receipts);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/FAILED at row 4: row 4 is missing: .*holds 0 rows/);

    // a ledger replaced under another key: none of the receipts is for it
    const other = join(dir, 'bank-a.other-key.sqlite');
    const stranger = generateIdentity();
    buildLedger(other, stranger, new Map([['bank-a', stranger]]), [1, 2, 3]);
    const replaced = dpfed('--db', other, '--verify', '--receipts', receipts);
    expect(replaced.code).toBe(1);
    expect(replaced.stderr).toMatch(/none of the 1 receipts is for this ledger's countersigner/);
  });

  it('refuses a receipts file that is not JSON or carries a forged signature, with exit 2 naming --receipts', () => {
    const bank = generateIdentity();
    const path = join(dir, 'bank-f.ledger.sqlite');
    buildLedger(path, bank, new Map([['bank-f', bank]]), [1]);
    const bad = join(dir, 'not-json.json');
    writeFileSync(bad, 'nope');
    expect(dpfed('--db', path, '--verify', '--receipts', bad)).toMatchObject({ code: 2, stderr: expect.stringMatching(/--receipts: .*not JSON/) });
    const db = new Database(path);
    const receipt: LedgerReceipt = new PrivacyLedger(db, { countersigner: bank }).signedHead('bank-f');
    db.close();
    const forged = join(dir, 'forged.json');
    writeFileSync(forged, JSON.stringify([{ ...receipt, seq: receipt.seq + 5 }]));
    expect(dpfed('--db', path, '--verify', '--receipts', forged)).toMatchObject({ code: 2, stderr: expect.stringMatching(/--receipts: .*receipt 0\.signature: does not verify/) });
    expect(dpfed('--db', path, '--receipts', forged)).toMatchObject({ code: 2, stderr: expect.stringMatching(/--receipts needs --verify/) });
  });
});
