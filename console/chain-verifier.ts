// Whole-chain verification for the console, off the request path. Checking every hash and signature of a
// large ledger takes long (every row costs two Ed25519 verifications), so it runs in a worker thread and
// the server keeps answering meanwhile. Each result is kept with the ledger version it was started at;
// a page asks for the state and gets the latest result, marked pending while a newer one runs, and may
// wait a little for it.
import type { Worker } from 'node:worker_threads';
import type { VerifyResult } from '@dpfed/privacy/ledger';
import { moduleBeside, typeScriptWorker } from '@dpfed/privacy/typescript-worker';

export interface VerificationState {
  /** The latest finished verification (null before the first one finishes). */
  result: VerifyResult | null;
  /** The chain head that result covers: rows after it are not verified yet. */
  verifiedHead: { seq: number; hash: string } | null;
  /** A verification of a newer version of the file is running. */
  pending: boolean;
}

export class ChainVerifier {
  private last: { version: string; result: VerifyResult; head: { seq: number; hash: string } | null } | null = null;
  private running: { version: string; promise: Promise<void>; worker: Worker } | null = null;
  private closed = false;

  constructor(
    private readonly dbPath: string,
    private readonly versionOf: () => string,
  ) {}

  private start(version: string): void {
    const worker = typeScriptWorker(moduleBeside(import.meta.url, 'verify-worker'), { dbPath: this.dbPath });
    const promise = new Promise<void>((resolve) => {
      let settled = false;
      const finish = (result: VerifyResult, head: { seq: number; hash: string } | null) => {
        if (settled) return;
        settled = true;
        if (!this.closed) this.last = { version, result, head };
        this.running = null;
        resolve();
      };
      worker.once('message', (m: { result: VerifyResult; head: { seq: number; hash: string } }) => finish(m.result, m.head));
      worker.once('error', (error) => finish({ ok: false, badRow: 0, reason: `verification could not run: ${error.message}` }, null));
      worker.once('exit', (code) => finish({ ok: false, badRow: 0, reason: `verification could not run: its worker exited with code ${code}` }, null));
    });
    this.running = { version, promise, worker };
  }

  /** The state now; starts a verification when the file changed since the last one started. */
  state(): VerificationState {
    const version = this.versionOf();
    if (this.last?.version === version) return { result: this.last.result, verifiedHead: this.last.head, pending: false };
    if (!this.running && !this.closed) this.start(version);
    return { result: this.last?.result ?? null, verifiedHead: this.last?.head ?? null, pending: true };
  }

  /** The state once the current version is verified, or after `timeoutMs`, whichever comes first. */
  async settled(timeoutMs: number): Promise<VerificationState> {
    const deadline = Date.now() + timeoutMs;
    let state = this.state();
    while (state.pending && this.running && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.running.promise, new Promise((r) => (timer = setTimeout(r, deadline - Date.now())))]);
      clearTimeout(timer);
      state = this.state();
    }
    return state;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.running?.worker.terminate();
  }
}

/** A row's status against the latest verification: rows before the first bad one hold, the bad one is
 * named with the reason, rows after it cannot be vouched for (their chain starts from a broken link), and
 * rows newer than the verified head are not verified yet. */
export type RowStatus = { state: 'ok' } | { state: 'broken'; reason: string; signature: boolean } | { state: 'unverified'; why: 'after-break' | 'pending' };

export function rowStatus(seq: number, v: VerificationState): RowStatus {
  const result = v.result;
  if (!result) return { state: 'unverified', why: 'pending' };
  if (result.ok) return seq <= result.rows ? { state: 'ok' } : { state: 'unverified', why: 'pending' };
  if (seq < result.badRow) return { state: 'ok' };
  if (seq === result.badRow) return { state: 'broken', reason: result.reason, signature: /signature/.test(result.reason) };
  return { state: 'unverified', why: 'after-break' };
}
