// Verification of a ledger: the whole hash chain (order, row hashes, countersignatures, institutions'
// signatures on their events, the countersigned head) and, when the other party's receipts are given, that
// the ledger still holds every row a receipt names. See ledger.ts for what this proves and what it cannot.
import { verifySignature } from './identity.ts';
import { validateLedgerEvent, verifyEventSignature } from './ledger-event.ts';
import { countersignBytes, genesisHash, headBytes, hex, rowHashOf, unhex } from './ledger-hashing.ts';
import { toInstitutionRow, toLedgerRow, toRefusalRow, type AnyRow, type LedgerDatabase, type Row } from './ledger-rows.ts';
import { validateReceipt, type LedgerReceipt } from './receipts.ts';

export type VerifyResult = { ok: true; rows: number; headHash: string } | { ok: false; badRow: number; reason: string };

/** What verification reads from a ledger. */
export interface VerifiableLedger {
  readonly db: LedgerDatabase;
  /** The countersigner's public key recorded in ledger_meta. */
  readonly countersignerPublicKey: Uint8Array;
  /** A ledger_meta value (head_seq, head_hash, head_signature). */
  meta(key: string): string | undefined;
  /** row_hash of row `seq`, or undefined when the ledger has no such row. */
  rowHashAt(seq: number): string | undefined;
}

/** The chain, then (with `receipts`) every receipt for this ledger's key against it. Never throws on a damaged file. */
export function verifyLedger(ledger: VerifiableLedger, opts: { countersignerPublicKey?: Uint8Array; receipts?: readonly LedgerReceipt[] } = {}): VerifyResult {
  const chain = verifyChain(ledger, opts);
  if (!chain.ok || opts.receipts === undefined) return chain;
  const key = hex(ledger.countersignerPublicKey);
  const mine = opts.receipts.filter((r) => r.ledgerKey === key);
  if (mine.length === 0) {
    return {
      ok: false,
      badRow: 0,
      reason: `none of the ${opts.receipts.length} receipts is for this ledger's countersigner ${key.slice(0, 16)}… (a ledger replaced under another key, or receipts of another ledger)`,
    };
  }
  for (const receipt of [...mine].sort((a, b) => b.seq - a.seq)) {
    try {
      validateReceipt(receipt);
    } catch (error) {
      return { ok: false, badRow: receipt.seq, reason: `receipt for seq ${receipt.seq}: ${(error as Error).message}` };
    }
    if (receipt.seq > chain.rows) {
      return {
        ok: false,
        badRow: receipt.seq,
        reason: `row ${receipt.seq} is missing: a receipt signed by this ledger's key (held by the other party, for ${receipt.subject}) names head seq ${receipt.seq}, hash ${receipt.hash.slice(0, 16)}…, but the ledger holds ${chain.rows} rows (tail truncated to an older head, or wiped)`,
      };
    }
    const actual = ledger.rowHashAt(receipt.seq);
    if (actual !== receipt.hash) {
      return {
        ok: false,
        badRow: receipt.seq,
        reason: `row ${receipt.seq} does not match the receipt signed by this ledger's key (hash ${receipt.hash.slice(0, 16)}…, found ${String(actual).slice(0, 16)}…): the ledger was rewritten or re-chained after the receipt`,
      };
    }
  }
  return chain;
}

/** Checks every row of the chain in seq order and the countersigned head; names the first bad row. */
export function verifyChain(ledger: VerifiableLedger, opts: { countersignerPublicKey?: Uint8Array }): VerifyResult {
  const key = ledger.countersignerPublicKey;
  if (opts.countersignerPublicKey && hex(opts.countersignerPublicKey) !== hex(key)) {
    return { ok: false, badRow: 0, reason: `ledger_meta names countersigner ${hex(key)}, not the trusted key ${hex(opts.countersignerPublicKey)}` };
  }
  let rows: AnyRow[];
  try {
    rows = [
      ...(ledger.db.prepare('SELECT * FROM ledger_institutions').all() as Row[]).map((r) => ({ kind: 'institution' as const, row: toInstitutionRow(r) })),
      ...(ledger.db.prepare('SELECT * FROM ledger_events').all() as Row[]).map((r) => ({ kind: 'event' as const, row: toLedgerRow(r) })),
      ...(ledger.db.prepare('SELECT * FROM ledger_refusals').all() as Row[]).map((r) => ({ kind: 'refusal' as const, row: toRefusalRow(r) })),
    ];
  } catch (error) {
    return { ok: false, badRow: 0, reason: `cannot read the ledger tables: ${(error as Error).message}` };
  }
  rows.sort((a, b) => a.row.seq - b.row.seq);
  const keys = new Map<string, Uint8Array>();
  let prev = genesisHash(key);
  for (let i = 0; i < rows.length; i++) {
    const entry = rows[i];
    const expected = i + 1;
    const seq = entry.row.seq;
    if (seq !== expected) {
      if (seq < expected) return { ok: false, badRow: seq, reason: `row ${seq} appears more than once (inserted row)` };
      return { ok: false, badRow: expected, reason: `row ${expected} is missing (the next row found is ${seq})` };
    }
    const where = `row ${seq} (${entry.kind})`;
    try {
      if (entry.row.prevHash !== hex(prev))
        return {
          ok: false,
          badRow: seq,
          reason: `${where}: prev_hash does not match ${seq === 1 ? 'the genesis hash of the countersigner key' : `row ${seq - 1}`} (deleted, inserted or reordered rows, or a replaced key)`,
        };
      if (entry.kind === 'event') validateLedgerEvent(entry.row.event);
      const rowHash = rowHashOf(entry, prev);
      if (entry.row.rowHash !== hex(rowHash)) return { ok: false, badRow: seq, reason: `${where}: row_hash does not match its contents (altered row)` };
      if (!verifySignature(key, countersignBytes(rowHash), unhex(entry.row.countersignature, 'countersignature', 64))) {
        return { ok: false, badRow: seq, reason: `${where}: bad countersignature` };
      }
      if (entry.kind === 'institution') {
        const known = keys.get(entry.row.institutionId);
        if (known && hex(known) !== entry.row.publicKey) return { ok: false, badRow: seq, reason: `${where}: institution ${entry.row.institutionId} changes its public key` };
        keys.set(entry.row.institutionId, unhex(entry.row.publicKey, 'public_key', 32));
      } else if (entry.kind === 'event') {
        const institutionKey = keys.get(entry.row.event.institutionId);
        if (!institutionKey) return { ok: false, badRow: seq, reason: `${where}: institution ${entry.row.event.institutionId} has no key registered before this row` };
        if (!verifyEventSignature(entry.row.event, unhex(entry.row.institutionSignature, 'institution_signature', 64), institutionKey)) {
          return { ok: false, badRow: seq, reason: `${where}: bad institution signature` };
        }
      }
      prev = rowHash;
    } catch (error) {
      return { ok: false, badRow: seq, reason: `${where}: ${(error as Error).message}` };
    }
  }
  const last = rows.length;
  const headSeq = ledger.meta('head_seq');
  if (headSeq === undefined) {
    if (last === 0) return { ok: true, rows: 0, headHash: hex(prev) };
    return { ok: false, badRow: last, reason: 'ledger_meta has no head although rows exist' };
  }
  if (Number(headSeq) !== last) {
    const n = Number(headSeq);
    return n > last
      ? { ok: false, badRow: last + 1, reason: `rows ${last + 1}..${n} are missing (the head says ${n} rows)` }
      : { ok: false, badRow: n + 1, reason: `row ${n + 1} lies beyond the countersigned head (${n} rows)` };
  }
  try {
    if (ledger.meta('head_hash') !== hex(prev) || !verifySignature(key, headBytes(last, prev), unhex(ledger.meta('head_signature') ?? '', 'head_signature', 64))) {
      return { ok: false, badRow: last, reason: `row ${last}: the countersigned head does not match the last row` };
    }
  } catch (error) {
    return { ok: false, badRow: last, reason: `head: ${(error as Error).message}` };
  }
  return { ok: true, rows: last, headHash: hex(prev) };
}
