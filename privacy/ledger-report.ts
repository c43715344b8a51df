// The ledger report: what `dpfed ledger --json` prints and what the compliance console shows, computed in
// one place so the two can never disagree. Per registered institution: ε composed by the accountant over
// the events shown (never summed), δ, the budget, what remains of it over every run, the projected rounds
// left at the institution's latest event, its events and refusals; plus the chain head the figures cover.
import { makeAccountant, type AccountantKind } from './accountant.ts';
import { PrivacyLedger, type InstitutionSummary } from './ledger.ts';

export interface LedgerReportOptions {
  /** Only this institution (the report is empty when it is not registered). */
  institutionId?: string;
  /** Only the events of this run; `remaining` still counts every run. */
  runId?: string;
  accountant: AccountantKind;
}

export interface LedgerReport {
  accountant: AccountantKind;
  run: string | null;
  /** The chain head (last seq and its hash) the figures were computed at. */
  head: { seq: number; hash: string };
  /** The countersigner's Ed25519 public key as recorded in the ledger (hex). */
  countersignerPublicKey: string;
  institutions: InstitutionSummary[];
}

/** The report over a ledger opened through its public API (read-only is enough). */
export function ledgerReport(ledger: PrivacyLedger, opts: LedgerReportOptions): LedgerReport {
  const head = ledger.head();
  const institutions = ledger.summary({ institutionId: opts.institutionId, runId: opts.runId }, makeAccountant(opts.accountant));
  return {
    accountant: opts.accountant,
    run: opts.runId ?? null,
    head,
    countersignerPublicKey: Buffer.from(ledger.countersignerPublicKey).toString('hex'),
    institutions,
  };
}
