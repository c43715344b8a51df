// The printable compliance report for one institution (and optionally one run): the mechanism, the
// accountant, ε and δ against the budget, and the chain head the figures cover, with the verification
// result at the time it was produced. Printed from the browser (print stylesheet hides the navigation).
import { esc, fmt, query, table } from '../html.ts';
import type { VerificationState } from '../chain-verifier.ts';
import type { InstitutionSummary } from '@dpfed/privacy/ledger';
import type { LedgerReport } from '@dpfed/privacy/ledger-report';

const MECHANISMS: Record<string, string> = {
  record:
    "record-level DP (DP-SGD at the institution): each example's gradient is clipped to L2 norm C and Gaussian noise σ·C is added to the sum of a Poisson-subsampled batch (sampling rate q); one event records q, σ and the number of steps of a round",
  client:
    "client-level DP (DP-FedAvg): each institution's update is clipped to L2 norm S and the aggregate carries Gaussian noise z·S (the noise actually present after dropouts); one event per round",
};

const ACCOUNTANTS: Record<string, string> = {
  rdp: 'Rényi DP accountant for the Poisson-subsampled Gaussian (integer and fractional orders, improved RDP→(ε, δ) conversion); ε is composed from all events, never summed',
  pld: 'privacy-loss-distribution accountant for the Poisson-subsampled Gaussian; ε is composed from all events, never summed',
};

export interface ReportsIndexData {
  institutions: string[];
  runs: string[];
}

export function reportsIndexBody(d: ReportsIndexData): string {
  const rows = d.institutions.map((id) => [
    esc(id),
    `<a href="/report${query({ institution: id })}">all runs</a>${d.runs.map((run) => ` · <a href="/report${query({ institution: id, run })}">${esc(run)}</a>`).join('')}`,
  ]);
  return `<p>A report states, for one institution, the privacy mechanism, the accountant, ε and δ against the budget, and the ledger head it covers. Producing one is recorded in the audit log.</p>${table(
    ['institution', 'report'],
    rows,
    { id: 'reports', empty: 'no institutions registered' },
  )}`;
}

export interface ReportData {
  report: LedgerReport;
  summary: InstitutionSummary;
  verification: VerificationState;
  dbPath: string;
  generatedAt: string;
  generatedBy: string;
}

export function reportBody(d: ReportData): string {
  const s = d.summary;
  const r = d.report;
  const modes = [...new Set(s.events.map((e) => e.event.mode))];
  const rounds = s.events.map((e) => e.event.round);
  const range = (values: number[]) => (values.length ? (Math.min(...values) === Math.max(...values) ? fmt(values[0], 6) : `${fmt(Math.min(...values), 6)} – ${fmt(Math.max(...values), 6)}`) : '-');
  const v = d.verification.result;
  const covered = v && v.ok && d.verification.verifiedHead?.seq === r.head.seq;
  const verified =
    !v || (v.ok && !covered)
      ? `<span class="unverified" id="report-verification">not yet verified up to row ${r.head.seq} (the verification is still running): check with dpfed ledger --verify before filing</span>`
      : v.ok
        ? `<span class="ok" id="report-verification">verified: all ${v.rows} rows, every hash, signature and countersignature, and the signed head hold</span>`
        : `<span class="broken" id="report-verification">NOT verified: chain broken at row ${v.badRow}: ${esc(v.reason)}</span>`;
  return [
    `<p class="noprint"><a href="/report${query({ institution: s.institutionId, run: r.run, accountant: r.accountant === 'rdp' ? 'pld' : 'rdp' })}">same report with the ${r.accountant === 'rdp' ? 'PLD' : 'RDP'} accountant</a> · use the browser's Print to file it as PDF.</p>`,
    '<dl class="facts" id="report-facts">',
    `<dt>Institution</dt><dd>${esc(s.institutionId)} (identity key <span class="hash">${esc(s.publicKey)}</span>)</dd>`,
    `<dt>Scope</dt><dd>${r.run ? `run ${esc(r.run)}` : 'all runs in this ledger'}</dd>`,
    `<dt>Mechanism</dt><dd>${modes.length ? modes.map((m) => esc(MECHANISMS[m] ?? m)).join('; ') : 'no privacy events recorded'}</dd>`,
    `<dt>Accountant</dt><dd>${esc(r.accountant)}: ${esc(ACCOUNTANTS[r.accountant])}</dd>`,
    `<dt>ε spent${r.run ? ' (this run)' : ''}</dt><dd data-field="epsilon" data-value="${s.epsilon}">${fmt(s.epsilon, 6)} at δ = ${fmt(s.delta, 3)}</dd>`,
    `<dt>ε spent (all runs)</dt><dd data-field="epsilonTotal" data-value="${s.epsilonTotal}">${fmt(s.epsilonTotal, 6)}</dd>`,
    `<dt>Budget</dt><dd>ε = ${fmt(s.budget.epsilon, 6)}, δ = ${fmt(s.budget.delta, 3)}</dd>`,
    `<dt>Remaining</dt><dd data-field="remaining" data-value="${s.remaining}">${fmt(s.remaining, 6)}</dd>`,
    `<dt>Projected rounds left</dt><dd>${s.projectedRoundsLeft ?? '-'} (further rounds like the latest one that fit the budget)</dd>`,
    `<dt>Events</dt><dd>${s.events.length} (rounds ${range(rounds)}; sampling rate ${range(s.events.map((e) => e.event.sampleRate))}; noise multiplier ${range(s.events.map((e) => e.event.noiseMultiplier))}; clip norm ${range(s.events.map((e) => e.event.clipNorm))})</dd>`,
    `<dt>Refusals</dt><dd>${s.refusals.length}</dd>`,
    `<dt>Chain head covered</dt><dd>row <span id="report-head-seq">${r.head.seq}</span>, hash <span class="hash" id="report-head-hash">${esc(r.head.hash)}</span></dd>`,
    `<dt>Countersigner key</dt><dd class="hash">${esc(r.countersignerPublicKey)}</dd>`,
    `<dt>Verification</dt><dd>${verified}</dd>`,
    `<dt>Source</dt><dd>${esc(d.dbPath)}</dd>`,
    `<dt>Produced</dt><dd>${esc(d.generatedAt)} by ${esc(d.generatedBy)}</dd>`,
    '</dl>',
    '<h3>Events covered</h3>',
    table(
      ['seq', 'run', 'round', 'mode', 'q', 'σ', 'steps', 'clip', 'row hash'],
      s.events.map((e) => [
        String(e.seq),
        esc(e.event.runId),
        String(e.event.round),
        esc(e.event.mode),
        fmt(e.event.sampleRate),
        fmt(e.event.noiseMultiplier),
        String(e.event.steps),
        fmt(e.event.clipNorm),
        `<span class="hash">${esc(e.rowHash)}</span>`,
      ]),
      { id: 'report-events', empty: 'no events' },
    ),
    s.refusals.length
      ? '<h3>Refusals</h3>' +
        table(
          ['seq', 'run', 'round', 'reason', 'projected ε'],
          s.refusals.map((x) => [String(x.seq), esc(x.runId), String(x.round), esc(x.reason), fmt(x.projectedEpsilon)]),
        )
      : '',
    '<p>ε is the privacy loss composed over the events listed, by the accountant named, at the budget δ. The figures equal <code>dpfed ledger --json</code> over the same ledger head; check the chain independently with <code>dpfed ledger --verify</code>.</p>',
  ].join('');
}
