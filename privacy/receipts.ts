// Ledger receipts: a ledger head (seq, row hash) signed by the key that countersigns that ledger, handed
// to the OTHER party and kept there. A ledger holder can rewrite its own file (truncate the tail back to an
// older countersigned head, wipe it, re-chain it without a row), but it cannot take back a receipt the other
// party already holds: `verify({ receipts })` fails when the ledger no longer contains the row a receipt names.
//
// Who holds what:
//   - the coordinator keeps, per institution, the heads of that institution's own ledger the institution
//     signed (at registration and with each training result) in its SQLite file;
//   - each institution keeps the coordinator's signed heads (sent with tasks after every committed round)
//     in a table of its own ledger file.
// Both sides use the same table, `ledger_receipts`, which is not part of any hash chain (it records what
// the other party said, not what this party did).
//
// Signed bytes: exactly the ledger's own head signature, encodeCanonical("dpfed.v1/ledger-head", seq as
// uint64, row hash as bytes) (see ledger-event.ts for the encoding), verified with the ledger's countersigner
// key. So the countersigned head a ledger file stores is itself a receipt, and the signature is deterministic.
import { encodeCanonical } from './ledger-event.ts';
import { verifySignature, type IdentityKey } from './identity.ts';
import type { LedgerDatabase } from './ledger.ts';

export const RECEIPT_DOMAIN = 'dpfed.v1/ledger-head';

/** A signed ledger head. Keys, hashes and signatures are lowercase hex. */
export interface LedgerReceipt {
  /** Ed25519 public key of the ledger's countersigner (identifies the ledger). */
  ledgerKey: string;
  /** Head seq: the number of rows the ledger held (0: empty ledger). */
  seq: number;
  /** row_hash of row `seq` (for seq 0: the ledger's genesis hash). */
  hash: string;
  /** Ed25519 by ledgerKey over receiptBytes(seq, hash). */
  signature: string;
  /** Whose ledger: an institution id, or "coordinator". Informative; not signed. */
  subject: string;
  /** When the holder received it (ISO-8601). Informative; not signed. */
  receivedAt: string;
}

const HEX32 = /^[0-9a-f]{64}$/;
const HEX64 = /^[0-9a-f]{128}$/;

/** The bytes a receipt (and a ledger's countersigned head) signs. */
export function receiptBytes(seq: number, hash: Uint8Array): Uint8Array {
  return encodeCanonical(RECEIPT_DOMAIN, [{ u: seq }, { b: hash }]);
}

export function signReceipt(key: IdentityKey, head: { seq: number; hash: string }, subject: string, now = new Date()): LedgerReceipt {
  const signature = key.sign(receiptBytes(head.seq, Buffer.from(head.hash, 'hex')));
  return { ledgerKey: Buffer.from(key.publicKey).toString('hex'), seq: head.seq, hash: head.hash, signature: Buffer.from(signature).toString('hex'), subject, receivedAt: now.toISOString() };
}

/** Throws an Error naming the bad field unless `r` is well-formed and its signature verifies. */
export function validateReceipt(r: unknown, label = 'receipt'): asserts r is LedgerReceipt {
  if (!r || typeof r !== 'object') throw new Error(`${label}: expected an object`);
  const v = r as Record<string, unknown>;
  if (typeof v.ledgerKey !== 'string' || !HEX32.test(v.ledgerKey)) throw new Error(`${label}.ledgerKey: expected 64 lowercase hex characters`);
  if (typeof v.seq !== 'number' || !Number.isSafeInteger(v.seq) || v.seq < 0) throw new Error(`${label}.seq: expected a non-negative integer`);
  if (typeof v.hash !== 'string' || !HEX32.test(v.hash)) throw new Error(`${label}.hash: expected 64 lowercase hex characters`);
  if (typeof v.signature !== 'string' || !HEX64.test(v.signature)) throw new Error(`${label}.signature: expected 128 lowercase hex characters`);
  if (typeof v.subject !== 'string') throw new Error(`${label}.subject: expected a string`);
  if (typeof v.receivedAt !== 'string') throw new Error(`${label}.receivedAt: expected a string`);
  const ok = verifySignature(Buffer.from(v.ledgerKey, 'hex'), receiptBytes(v.seq, Buffer.from(v.hash, 'hex')), Buffer.from(v.signature, 'hex'));
  if (!ok) throw new Error(`${label}.signature: does not verify with ledgerKey over (seq ${v.seq}, hash)`);
}

/** Parses a receipts file (`dpfed ledger --export-receipts`): a JSON array of receipts, each checked. */
export function parseReceipts(text: string, source: string): LedgerReceipt[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source}: not JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(value)) throw new Error(`${source}: expected a JSON array of receipts`);
  value.forEach((r, i) => validateReceipt(r, `${source}: receipt ${i}`));
  return value as LedgerReceipt[];
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ledger_receipts (
  ledger_key TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL, signature TEXT NOT NULL,
  subject TEXT NOT NULL, received_at TEXT NOT NULL, PRIMARY KEY (ledger_key, seq));`;

type Row = { ledger_key: string; seq: number; hash: string; signature: string; subject: string; received_at: string };
const toReceipt = (r: Row): LedgerReceipt => ({ ledgerKey: r.ledger_key, seq: r.seq, hash: r.hash, signature: r.signature, subject: r.subject, receivedAt: r.received_at });

/** The receipts this party holds about other parties' ledgers, in its own SQLite file. */
export class ReceiptStore {
  constructor(private readonly db: LedgerDatabase) {
    db.exec(SCHEMA);
  }

  /** True when `db` has a receipts table (opened read-only, nothing is created). */
  static present(db: LedgerDatabase): boolean {
    return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_receipts'").get() !== undefined;
  }

  /** Reads receipts from a database without creating the table (empty when it has none). */
  static read(db: LedgerDatabase, filter: { subject?: string } = {}): LedgerReceipt[] {
    if (!ReceiptStore.present(db)) return [];
    const rows = (
      filter.subject === undefined
        ? db.prepare('SELECT * FROM ledger_receipts ORDER BY subject, seq').all()
        : db.prepare('SELECT * FROM ledger_receipts WHERE subject = ? ORDER BY seq').all(filter.subject)
    ) as Row[];
    return rows.map(toReceipt);
  }

  /** Verifies and keeps a receipt. A second receipt for the same (ledger, seq) with another hash is refused:
   * the other party signed two different histories, which is itself evidence worth keeping out of the way. */
  add(receipt: LedgerReceipt): void {
    validateReceipt(receipt);
    const existing = this.db.prepare('SELECT hash FROM ledger_receipts WHERE ledger_key = ? AND seq = ?').get(receipt.ledgerKey, receipt.seq) as { hash: string } | undefined;
    if (existing) {
      if (existing.hash !== receipt.hash) throw new Error(`receipt: ledger ${receipt.ledgerKey.slice(0, 16)}… already signed another hash for seq ${receipt.seq} (two histories)`);
      return;
    }
    this.db
      .prepare('INSERT INTO ledger_receipts (ledger_key, seq, hash, signature, subject, received_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(receipt.ledgerKey, receipt.seq, receipt.hash, receipt.signature, receipt.subject, receipt.receivedAt);
  }

  /** The receipt with the highest seq for this ledger key (and subject), if any. */
  latest(ledgerKey: string, subject?: string): LedgerReceipt | undefined {
    const row = (
      subject === undefined
        ? this.db.prepare('SELECT * FROM ledger_receipts WHERE ledger_key = ? ORDER BY seq DESC LIMIT 1').get(ledgerKey)
        : this.db.prepare('SELECT * FROM ledger_receipts WHERE ledger_key = ? AND subject = ? ORDER BY seq DESC LIMIT 1').get(ledgerKey, subject)
    ) as Row | undefined;
    return row ? toReceipt(row) : undefined;
  }

  /** The receipt for row `seq` of the ledger countersigned by `ledgerKey`, if this party holds one. */
  at(ledgerKey: string, seq: number): LedgerReceipt | undefined {
    const row = this.db.prepare('SELECT * FROM ledger_receipts WHERE ledger_key = ? AND seq = ?').get(ledgerKey, seq) as Row | undefined;
    return row ? toReceipt(row) : undefined;
  }

  all(filter: { subject?: string } = {}): LedgerReceipt[] {
    return ReceiptStore.read(this.db, filter);
  }
}
