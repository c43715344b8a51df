// One prepared statement per SQL text and database connection. better-sqlite3's `prepare` compiles the SQL
// each time it is called; the ledger, the receipts and the coordinator's store run the same few statements
// every round, so compiling them once and reusing them removes that cost. Statements are synchronous: each
// use (get, all, run, or an iterate that is read to its end) finishes before the next begins, so sharing one
// per text is safe; the statement modes that change a statement for later callers (pluck, raw, expand,
// safeIntegers) are not used on these connections.
import type Database from 'better-sqlite3';

/** Makes `db.prepare` return the statement compiled earlier for the same SQL text. */
export function reusePreparedStatements(db: Database.Database): Database.Database {
  const compile = db.prepare.bind(db);
  const statements = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = compile(sql);
      statements.set(sql, statement);
    }
    return statement;
  }) as typeof db.prepare;
  return db;
}
