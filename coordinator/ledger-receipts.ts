// The coordinator's side of ledger receipts (privacy/receipts.ts), kept in its own SQLite file:
//   - per institution, the heads of that institution's own ledger it signed (at Register, and with each
//     training result), and the continuity check at Register: an institution whose ledger is behind the
//     newest receipt (truncated or rolled back), missing (wiped, or a fresh ledger path) or replaced (its row
//     at the receipt's seq has another hash) is refused with FAILED_PRECONDITION naming ledger_head;
//   - the coordinator's own ledger head, signed with its key, which every task carries to the institutions;
//   - a budget re-declared at Register, recorded as its own row of the coordinator's ledger.
import { verifySignature, type IdentityKey } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { receiptBytes, ReceiptStore, type LedgerReceipt } from '@dpfed/privacy/receipts';
import type { LedgerHeadMsg } from '@dpfed/proto/wire';
import type { CoordinatorStore } from './coordinator-store.ts';
import { failedPrecondition, invalidArgument } from './rpc-error.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const short = (h: string) => `${h.slice(0, 16)}…`;

export class CoordinatorReceipts {
  private readonly receipts: ReceiptStore;
  /** The coordinator's ledger: undefined until first looked for, null when the file has none (the privacy hooks,
   * which create it, run before the server takes calls, so a ledger absent then stays absent). */
  private ledgerView: PrivacyLedger | null | undefined = undefined;
  /** Reads the head from ledger_meta: a statement prepared once, since every task asks for the head. */
  private headQuery: { all(): unknown[] } | null = null;
  private signedHead: { hash: string; head: LedgerHeadMsg } | null = null;
  readonly coordinatorPublicKey: Uint8Array;

  constructor(
    private readonly store: CoordinatorStore,
    private readonly identity: IdentityKey,
  ) {
    this.receipts = new ReceiptStore(store.db);
    this.coordinatorPublicKey = identity.publicKey;
  }

  /** The coordinator's ε ledger in its SQLite file, once it exists (the privacy hooks create it). */
  private ledger(): PrivacyLedger | null {
    if (this.ledgerView === undefined) {
      const exists = this.store.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_meta'").get() !== undefined;
      this.ledgerView = exists ? new PrivacyLedger(this.store.db, { countersigner: this.identity }) : null;
      if (exists) this.headQuery = this.store.db.prepare("SELECT key, value FROM ledger_meta WHERE key = 'head_seq' OR key = 'head_hash'");
    }
    return this.ledgerView;
  }

  /** The newest receipt of `institutionId`'s own ledger (countersigned by `publicKey`), if any. */
  institutionReceipt(institutionId: string, publicKey: Uint8Array): LedgerReceipt | undefined {
    return this.receipts.latest(hex(publicKey), institutionId);
  }

  private receiptAt(institutionId: string, publicKey: Uint8Array, seq: number): LedgerReceipt | undefined {
    const receipt = this.receipts.at(hex(publicKey), seq);
    return receipt?.subject === institutionId ? receipt : undefined;
  }

  /** A signed head from the wire as a receipt; throws INVALID_ARGUMENT naming `field` when malformed or not signed by `publicKey`. */
  private toReceipt(field: string, institutionId: string, publicKey: Uint8Array, head: LedgerHeadMsg): LedgerReceipt {
    if (!Number.isSafeInteger(head.seq) || head.seq < 0) throw invalidArgument(`${field}.seq: expected a non-negative integer`);
    if (head.hash?.length !== 32) throw invalidArgument(`${field}.hash: expected 32 bytes, got ${head.hash?.length ?? 0}`);
    if (!verifySignature(publicKey, receiptBytes(head.seq, head.hash), head.signature ?? new Uint8Array(0))) {
      throw invalidArgument(`${field}.signature: does not verify with the institution's identity key over (seq ${head.seq}, hash)`);
    }
    return { ledgerKey: hex(publicKey), seq: head.seq, hash: hex(head.hash), signature: hex(head.signature), subject: institutionId, receivedAt: new Date().toISOString() };
  }

  /**
   * Register's continuity check. `head` is the declared head of the institution's own ledger, `anchorHash` its
   * row_hash at `receiptSeq` (the seq the challenge named). Returns the head as a receipt to keep (null when
   * the institution keeps no ledger); throws FAILED_PRECONDITION naming ledger_head when the ledger is behind
   * the newest receipt, missing, or replaced.
   */
  checkContinuity(institutionId: string, publicKey: Uint8Array, head: LedgerHeadMsg, receiptSeq: number, anchorHash: Uint8Array): LedgerReceipt | null {
    const declared = head.signature?.length ? this.toReceipt('ledger_head', institutionId, publicKey, head) : null;
    if (!declared && head.seq > 0) throw invalidArgument('ledger_head.signature: required when ledger_head.seq > 0');
    const newest = this.institutionReceipt(institutionId, publicKey);
    if (!newest || newest.seq === 0) return declared;
    if (!declared || declared.seq === 0) {
      throw failedPrecondition(
        `ledger_head: institution "${institutionId}" declares ${declared ? 'an empty' : 'no'} ledger, but the coordinator holds its signed receipt for row ${newest.seq} (hash ${short(newest.hash)}): a wiped ledger or a fresh ledger path; restore the institution's ledger file`,
      );
    }
    if (declared.seq < newest.seq) {
      throw failedPrecondition(
        `ledger_head: institution "${institutionId}" declares head seq ${declared.seq}, behind the coordinator's receipt for row ${newest.seq}: a truncated or rolled-back ledger`,
      );
    }
    const anchor = this.receiptAt(institutionId, publicKey, receiptSeq);
    if (anchor && hex(anchorHash) !== anchor.hash) {
      throw failedPrecondition(
        `ledger_head: row ${receiptSeq} of institution "${institutionId}"'s ledger has hash ${anchorHash.length ? short(hex(anchorHash)) : '(none)'}, the coordinator's receipt says ${short(anchor.hash)}: a replaced ledger`,
      );
    }
    const same = this.receiptAt(institutionId, publicKey, declared.seq);
    if (same && same.hash !== declared.hash) {
      throw failedPrecondition(`ledger_head: head seq ${declared.seq} has hash ${short(declared.hash)}, the coordinator's receipt for that row says ${short(same.hash)}: a replaced ledger`);
    }
    return declared;
  }

  keepInstitutionReceipt(receipt: LedgerReceipt): void {
    this.receipts.add(receipt);
  }

  /** A training result's signed head of the institution's ledger: kept when no receipt for its seq is held yet. A head
   * older than the newest receipt (a result re-sent after the ledger grew) is kept too: it only adds an anchor. A
   * head whose hash differs from a receipt held for the same seq is refused (two histories of one ledger). */
  keepResultHead(institutionId: string, publicKey: Uint8Array, head: LedgerHeadMsg): void {
    const receipt = this.toReceipt('header.ledger_head', institutionId, publicKey, head);
    const same = this.receiptAt(institutionId, publicKey, receipt.seq);
    if (same) {
      if (same.hash !== receipt.hash) throw invalidArgument(`header.ledger_head.hash: row ${receipt.seq} differs from the coordinator's receipt for it (a replaced ledger)`);
      return;
    }
    this.receipts.add(receipt);
  }

  /** A declared budget the coordinator's ledger does not hold yet for the institution (its first, or a changed
   * one) gets its own ledger row, so every budget an institution declared is auditable. */
  recordBudgetChange(institutionId: string, publicKey: Uint8Array, budget: { epsilon: number; delta: number }): void {
    const ledger = this.ledger();
    if (!ledger) return;
    const current = ledger.institution(institutionId);
    if (!current || current.budget.epsilon !== budget.epsilon || current.budget.delta !== budget.delta) ledger.registerInstitution(institutionId, publicKey, budget);
  }

  /** The coordinator's ledger head signed with its key (null before the ledger has a row). Signed once per head. */
  coordinatorHead(): LedgerHeadMsg | null {
    if (!this.ledger() || !this.headQuery) return null;
    const rows = this.headQuery.all() as { key: string; value: string }[];
    const seq = Number(rows.find((r) => r.key === 'head_seq')?.value ?? 0);
    const headHash = rows.find((r) => r.key === 'head_hash')?.value;
    if (seq === 0 || !headHash) return null;
    if (this.signedHead?.hash !== headHash) {
      const hash = Buffer.from(headHash, 'hex');
      this.signedHead = { hash: headHash, head: { seq, hash, signature: this.identity.sign(receiptBytes(seq, hash)) } };
    }
    return this.signedHead.head;
  }
}
