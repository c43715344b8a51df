// The console's chain verification in a worker thread: pending before the first result, the result keyed
// by the ledger version, a newer row shown as not yet verified until the next verification covers it.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { buildConsoleFixture } from '@dpfed/bench/console-fixture';
import { rowStatus } from '@dpfed/console/chain-verifier';
import { LedgerSource } from '@dpfed/console/ledger-source';
import { generateIdentity } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { tempDir } from './helpers/federation-fixture.ts';

const dir = tempDir('dpfed-console-verifier-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('console chain verifier', () => {
  it('verifies off the request path and follows the file as it grows', async () => {
    const path = join(dir, 'coordinator.sqlite');
    const fixture = buildConsoleFixture({ path, institutions: 3, rounds: 3 });
    const source = new LedgerSource(path);
    try {
      const first = source.verifier.state();
      expect(first).toEqual({ result: null, verifiedHead: null, pending: true });
      expect(rowStatus(1, first)).toEqual({ state: 'unverified', why: 'pending' });
      const done = await source.verifier.settled(60_000);
      const head = source.ledger.head();
      expect(done.pending).toBe(false);
      expect(done.result).toEqual(source.ledger.verify());
      expect(done.verifiedHead).toEqual(head);
      expect(rowStatus(head.seq, done)).toEqual({ state: 'ok' });

      // another connection appends a row: the last result stays, marked pending, and the new row is not verified yet
      const writer = new Database(path);
      new PrivacyLedger(writer, { countersigner: fixture.coordinator }).registerInstitution('bank-late', generateIdentity().publicKey, { epsilon: 1, delta: 1e-5 });
      writer.close();
      const grown = source.verifier.state();
      expect(grown.pending).toBe(true);
      expect(grown.result).toEqual(done.result);
      expect(rowStatus(head.seq + 1, grown)).toEqual({ state: 'unverified', why: 'pending' });
      const again = await source.verifier.settled(60_000);
      expect(again.pending).toBe(false);
      expect(again.verifiedHead?.seq).toBe(head.seq + 1);
      expect(rowStatus(head.seq + 1, again)).toEqual({ state: 'ok' });
    } finally {
      await source.close();
    }
  });
});
