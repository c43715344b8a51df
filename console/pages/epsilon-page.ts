// ε per institution: the same figures as `dpfed ledger --json` (spent in the selected run and over all
// runs, δ, budget, remaining, projected rounds left at the latest event's plan), a chart of spent against
// budget, and one institution's burn-down over its recorded events.
import { burnDownChart, spentVsBudgetChart } from '../charts.ts';
import { esc, fmt, query, table } from '../html.ts';
import type { BurnDownPoint } from '../ledger-source.ts';
import type { LedgerReport } from '@dpfed/privacy/ledger-report';

export interface EpsilonData {
  report: LedgerReport;
  runs: string[];
  selected?: string;
  burnDown: BurnDownPoint[];
  /** Charts are rendered once per ledger version and reused (see LedgerSource). */
  charts: { spent: string; burnDown: string };
}

export async function epsilonCharts(report: LedgerReport, selected: string | undefined, burnDown: BurnDownPoint[]): Promise<{ spent: string; burnDown: string }> {
  const spent = report.institutions.length ? await spentVsBudgetChart(report.institutions.map((s) => ({ institutionId: s.institutionId, epsilon: s.epsilonTotal, budget: s.budget.epsilon }))) : '';
  const chosen = report.institutions.find((s) => s.institutionId === selected);
  const burn = chosen && burnDown.length ? await burnDownChart(burnDown, chosen.budget.epsilon, `${chosen.institutionId}: remaining ε over its recorded events (all runs)`) : '';
  return { spent, burnDown: burn };
}

export function epsilonBody(d: EpsilonData): string {
  const r = d.report;
  const filters = `<form method="get" action="/epsilon" class="filters"><label>accountant<select name="accountant">${['rdp', 'pld']
    .map((a) => `<option value="${a}"${a === r.accountant ? ' selected' : ''}>${a}</option>`)
    .join('')}</select></label><label>run<select name="run"><option value="">all runs</option>${d.runs
    .map((id) => `<option value="${esc(id)}"${id === r.run ? ' selected' : ''}>${esc(id)}</option>`)
    .join('')}</select></label><label>burn-down of<select name="institution">${r.institutions
    .map((s) => `<option value="${esc(s.institutionId)}"${s.institutionId === d.selected ? ' selected' : ''}>${esc(s.institutionId)}</option>`)
    .join('')}</select></label><button type="submit">Show</button></form>`;
  const rows = r.institutions.map((s) => [
    `<span data-institution="${esc(s.institutionId)}">${esc(s.institutionId)}</span>`,
    `<span data-field="epsilon" data-value="${s.epsilon}">${fmt(s.epsilon)}</span>`,
    `<span data-field="epsilonTotal" data-value="${s.epsilonTotal}">${fmt(s.epsilonTotal)}</span>`,
    `<span data-field="delta" data-value="${s.delta}">${fmt(s.delta, 3)}</span>`,
    `<span data-field="budget" data-value="${s.budget.epsilon}">${fmt(s.budget.epsilon)}</span>`,
    `<span data-field="remaining" data-value="${s.remaining}">${fmt(s.remaining)}</span>`,
    `<span data-field="projectedRoundsLeft" data-value="${s.projectedRoundsLeft ?? ''}">${s.projectedRoundsLeft ?? '-'}</span>`,
    String(s.events.length),
    String(s.refusals.length),
    `<a href="/events${query({ institution: s.institutionId, run: r.run })}">events</a> · <a href="/report${query({ institution: s.institutionId, run: r.run, accountant: r.accountant })}">report</a>`,
  ]);
  return [
    filters,
    `<p>Accountant ${esc(r.accountant)}${r.run ? `, run ${esc(r.run)}` : ', all runs'}; ledger head row ${r.head.seq} <span class="hash">${esc(r.head.hash)}</span>. ε is composed from the events by the accountant, never summed; "remaining" counts every run.</p>`,
    table(['institution', r.run ? `ε (run ${r.run})` : 'ε spent', 'ε charged to the budget (all runs)', 'δ', 'budget ε', 'remaining', 'projected rounds left', 'events', 'refusals', ''], rows, {
      id: 'epsilon-table',
      empty: 'no institutions registered',
    }),
    d.charts.spent ? `<div class="chart" id="spent-chart">${d.charts.spent}</div>` : '',
    d.charts.burnDown ? `<div class="chart" id="burn-down-chart">${d.charts.burnDown}</div>` : d.selected ? '<p class="empty">No events recorded for this institution.</p>' : '',
  ].join('');
}
