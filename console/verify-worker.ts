// Worker-thread entry of the console's chain verification (console/chain-verifier.ts): opens the ledger
// read-only, checks the whole chain inside one read transaction (a consistent snapshot even while a
// coordinator appends), and posts the result with the head it covers.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { PrivacyLedger } from '@dpfed/privacy/ledger';

const db = new Database((workerData as { dbPath: string }).dbPath, { readonly: true, fileMustExist: true });
try {
  db.exec('BEGIN');
  const ledger = new PrivacyLedger(db);
  const head = ledger.head();
  const result = ledger.verify();
  db.exec('COMMIT');
  parentPort!.postMessage({ result, head });
} finally {
  db.close();
}
