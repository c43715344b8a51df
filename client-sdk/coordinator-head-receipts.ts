// Receipts of the coordinator's ledger: every task may carry the coordinator's signed ledger head, and the
// institution keeps each new head in its own ledger (ClientPrivacy.keepCoordinatorReceipt) once it
// verifies with the coordinator's Ed25519 key from registration, so that a coordinator that later shows a
// rewritten or truncated ledger can be caught.
import { verifySignature } from '@dpfed/privacy/identity';
import { receiptBytes } from '@dpfed/privacy/receipts';
import type { TaskMsg } from '@dpfed/proto/wire';
import type { ClientPrivacy } from './client-privacy.ts';

export class CoordinatorHeadReceipts {
  /** The coordinator's Ed25519 key, from registration: its ledger heads are verified with it. */
  private coordinatorKey: Uint8Array | null = null;
  private lastHead = '';

  /**
   * `privacy` keeps the receipts (none kept without it); `log` and `emit` are the client's
   * ('receipt-conflict' with the error when the ledger refuses a head).
   */
  constructor(
    private readonly privacy: ClientPrivacy | undefined,
    private readonly log: (line: string) => void,
    private readonly emit: (event: string, payload: unknown) => void,
  ) {}

  /** The coordinator's key as its registration answer gave it: later heads are verified with it. */
  trust(coordinatorKey: Uint8Array): void {
    this.coordinatorKey = coordinatorKey;
  }

  /** Keeps the coordinator's signed ledger head a task carries (once per head), when it verifies with the coordinator's key. */
  keep(task: TaskMsg): void {
    const head = task.coordinatorLedgerHead;
    const keep = this.privacy?.keepCoordinatorReceipt;
    if (!head || !head.signature?.length || !keep || !this.coordinatorKey) return;
    const hash = Buffer.from(head.hash).toString('hex');
    if (this.lastHead === `${head.seq}:${hash}`) return;
    if (head.hash.length !== 32 || !verifySignature(this.coordinatorKey, receiptBytes(head.seq, head.hash), head.signature)) {
      this.log(`task ${task.kind}: the coordinator's ledger head does not verify with its key; not kept`);
      return;
    }
    try {
      keep.call(this.privacy, {
        ledgerKey: Buffer.from(this.coordinatorKey).toString('hex'),
        seq: head.seq,
        hash,
        signature: Buffer.from(head.signature).toString('hex'),
        subject: 'coordinator',
        receivedAt: new Date().toISOString(),
      });
      this.lastHead = `${head.seq}:${hash}`;
    } catch (error) {
      this.log(`task ${task.kind}: coordinator ledger receipt refused: ${(error as Error).message}`);
      this.emit('receipt-conflict', error);
    }
  }
}
