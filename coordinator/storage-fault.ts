// Faults of the coordinator's SQLite file that are not bugs: the file locked by another process, read-only,
// the disk full, an I/O error, a file that is not (or no longer) a database. They are told apart by better-sqlite3's error code (SqliteError.code, the
// SQLite result code name) and described with the file they concern, so an operator reading the log knows
// which file and what to do. Every write of a round runs in a transaction, so such a fault leaves nothing
// half-written: the round fails whole and is run again after a pause (coordinator/round-machine.ts).

/** A description naming `file` and the problem when `error` is a storage fault of SQLite; null for any other error. */
export function describeStorageFault(file: string, error: unknown): string | null {
  const code = typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : '';
  if (!code.startsWith('SQLITE_')) return null;
  const problem =
    code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')
      ? 'the database is locked by another connection (another process holds a write transaction on it)'
      : code === 'SQLITE_FULL'
        ? 'the disk (or the file system holding it) is full'
        : code.startsWith('SQLITE_READONLY')
          ? 'the file cannot be written (read-only file, directory or file system)'
          : code.startsWith('SQLITE_IOERR')
            ? 'the operating system refused a read or write (I/O error)'
            : code.startsWith('SQLITE_CANTOPEN')
              ? 'the file cannot be opened'
              : code === 'SQLITE_NOTADB'
                ? 'the file is not an SQLite database'
                : code.startsWith('SQLITE_CORRUPT')
                  ? 'the database file is damaged (restore it from a backup)'
                  : null;
  if (!problem) return null;
  return `${file}: ${problem} (${code}: ${(error as Error).message})`;
}

/** Whether `error` is such a storage fault. */
export function isStorageFault(error: unknown): boolean {
  return describeStorageFault('', error) !== null;
}

/** An error whose message names the file and the problem (the original error is its cause). */
export class StorageFaultError extends Error {
  constructor(description: string, cause: unknown) {
    super(description, { cause });
    this.name = 'StorageFaultError';
  }
}
