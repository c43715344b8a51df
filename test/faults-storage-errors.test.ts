// How the coordinator names a storage fault of its database (coordinator/storage-fault.ts) and which gRPC
// status a call that meets one ends with (coordinator/rpc-error.ts), on real SQLite errors from real files.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { CoordinatorStore } from '@dpfed/coordinator/coordinator-store';
import { callStatusOf, invalidArgument } from '@dpfed/coordinator/rpc-error';
import { describeStorageFault, isStorageFault, StorageFaultError } from '@dpfed/coordinator/storage-fault';
import { tempDir } from './helpers/federation-fixture.ts';

const dir = tempDir('dpfed-faults-storage-errors-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The error a write meets while another connection holds BEGIN EXCLUSIVE on `file`. */
function lockedWriteError(file: string): unknown {
  const store = new CoordinatorStore(file);
  const other = new Database(file);
  other.exec('BEGIN EXCLUSIVE');
  try {
    store.recordRoundFailure('run', 1, 'x');
    return null;
  } catch (error) {
    return error;
  } finally {
    other.exec('ROLLBACK');
    other.close();
    store.close();
  }
}

describe('faults: storage errors', () => {
  it('a locked database: named with its file and the problem, and a call that meets it is UNAVAILABLE (retried), not INTERNAL', () => {
    const file = join(dir, 'locked.sqlite');
    const error = lockedWriteError(file);
    expect(error).not.toBeNull();
    expect(isStorageFault(error)).toBe(true);
    expect(describeStorageFault(file, error)).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the database is locked by another connection .*\\(SQLITE_BUSY`));
    const call = callStatusOf(error);
    expect(call.code).toBe(status.UNAVAILABLE);
    expect(call.message).toContain('SQLITE_BUSY');
  });

  it("a file that is not a database, at open: the store's error names the file and the problem; other errors are no storage faults", () => {
    const file = join(dir, 'not-a-db.sqlite');
    writeFileSync(file, 'this is not an SQLite file, and it is long enough to have a header: '.repeat(4));
    expect(() => new CoordinatorStore(file)).toThrow(StorageFaultError);
    expect(() => new CoordinatorStore(file)).toThrow(`cannot open the coordinator database ${file}: the file is not an SQLite database (SQLITE_NOTADB`);
    expect(isStorageFault(new Error('boom'))).toBe(false);
    expect(isStorageFault(invalidArgument('x'))).toBe(false);
    expect(callStatusOf(new Error('boom')).code).toBe(status.INTERNAL);
  });
});
