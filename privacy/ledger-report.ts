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

/** An institution's summary, with its ε in "this run" beside its ε over all runs when the ledger holds several runs or one is asked for. */
export type ReportedInstitution = InstitutionSummary & { epsilonThisRun?: number; epsilonAllRuns?: number };

export interface LedgerReport {
  accountant: AccountantKind;
  run: string | null;
  /** The run "this run" figures are about: the one asked for, else the latest when the ledger holds several (null: one run only). */
  thisRun: string | null;
  /** The chain head (last seq and its hash) the figures were computed at. */
  head: { seq: number; hash: string };
  /** The countersigner's Ed25519 public key as recorded in the ledger (hex). */
  countersignerPublicKey: string;
  institutions: ReportedInstitution[];
}

/** The run "this run" means: the one asked for, or the run of the latest event when the ledger holds several. */
export function thisRunOf(ledger: PrivacyLedger, runId: string | undefined): { runId: string; given: boolean; runs: number } | undefined {
  const runs = [...new Set(ledger.events().map((r) => r.event.runId))];
  if (runId !== undefined) return { runId, given: true, runs: runs.length };
  return runs.length > 1 ? { runId: runs[runs.length - 1], given: false, runs: runs.length } : undefined;
}

/** The report over a ledger opened through its public API (read-only is enough). */
export function ledgerReport(ledger: PrivacyLedger, opts: LedgerReportOptions): LedgerReport {
  const head = ledger.head();
  const accountant = makeAccountant(opts.accountant);
  const summaries = ledger.summary({ institutionId: opts.institutionId, runId: opts.runId }, accountant);
  const run = thisRunOf(ledger, opts.runId);
  const thisRunEpsilon = run && new Map(ledger.summary({ institutionId: opts.institutionId, runId: run.runId }, accountant).map((s) => [s.institutionId, s.epsilon]));
  return {
    accountant: opts.accountant,
    run: opts.runId ?? null,
    thisRun: run?.runId ?? null,
    head,
    countersignerPublicKey: Buffer.from(ledger.countersignerPublicKey).toString('hex'),
    institutions: thisRunEpsilon ? summaries.map((s) => ({ ...s, epsilonThisRun: thisRunEpsilon.get(s.institutionId) ?? 0, epsilonAllRuns: s.epsilonTotal })) : summaries,
  };
}
