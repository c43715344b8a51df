// Overview: what the console is reading, whether the chain holds, the runs, and the selected run's rounds
// with the global AUC per round (and its noise band where an AUC standard error is recorded).
import { aucChart } from '../charts.ts';
import type { RoundMetrics, RunSummary } from '../coordinator-records.ts';
import { esc, fmt, query, table } from '../html.ts';
import type { VerificationState } from '../chain-verifier.ts';
import { verificationBanner } from './verification-banner.ts';

export interface OverviewData {
  dbPath: string;
  coordinatorDb: boolean;
  head: { seq: number; hash: string };
  verification: VerificationState;
  institutions: number;
  runs: RunSummary[];
  selectedRun?: string;
  rounds: RoundMetrics[];
}

export async function overviewBody(d: OverviewData): Promise<string> {
  const parts = [
    `<dl class="facts"><dt>Database</dt><dd>${esc(d.dbPath)} (${d.coordinatorDb ? 'coordinator database' : 'institution ledger'}, opened read-only)</dd>` +
      `<dt>Ledger head</dt><dd>row ${d.head.seq}, <span class="hash">${esc(d.head.hash)}</span></dd><dt>Institutions</dt><dd>${d.institutions}</dd></dl>`,
    verificationBanner(d.verification, d.head.seq),
  ];
  if (!d.coordinatorDb) {
    parts.push('<p class="empty">This file is an institution ledger: it holds privacy events, not the coordinator\'s runs and rounds.</p>');
    return parts.join('');
  }
  parts.push(
    '<h3>Runs</h3>',
    table(
      ['run', 'created', 'status', 'strategy', 'aggregation', 'privacy', 'rounds (committed / planned)', 'institutions'],
      d.runs.map((r) => [
        `<a href="/${query({ run: r.id })}">${esc(r.id)}</a>`,
        esc(r.createdAt),
        esc(r.status),
        esc(r.strategy),
        esc(r.aggregation),
        esc(r.privacyMode),
        `${r.roundsCommitted} / ${r.roundsPlanned}`,
        String(r.participants),
      ]),
      { id: 'runs', empty: 'no runs yet' },
    ),
  );
  if (d.selectedRun) {
    const withBand = d.rounds.some((r) => r.aucStderr !== null);
    parts.push(
      `<h3>Run ${esc(d.selectedRun)}: rounds</h3>`,
      d.rounds.length ? `<div class="chart" id="auc-chart">${await aucChart(d.rounds, withBand ? 'global AUC per round (band: ±1.96 standard errors)' : 'global AUC per round')}</div>` : '',
      withBand ? '' : '<p class="empty">No AUC standard error recorded for these rounds: no noise band is drawn.</p>',
      table(
        ['round', 'participants', 'AUC', 'AUC std. error', 'loss', 'accuracy', 'aggregation', 'seconds', 'committed'],
        d.rounds.map((r) => [
          `<a href="/runs/${encodeURIComponent(d.selectedRun as string)}/rounds/${r.round}">${r.round}</a>`,
          String(r.participants),
          fmt(r.auc),
          fmt(r.aucStderr),
          fmt(r.loss),
          fmt(r.accuracy),
          esc(r.aggregation),
          fmt(r.seconds, 3),
          esc(r.committedAt),
        ]),
        { id: 'rounds', empty: 'no committed rounds' },
      ),
    );
  }
  return parts.join('');
}
