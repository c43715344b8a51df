// The events table: filtered privacy events in chain order with each row's chain and signature status
// against the whole-chain verification, the refusals, and the anchored head receipts when the ledger
// keeps any.
import { esc, fmt, query, table } from '../html.ts';
import { rowStatus, type VerificationState } from '../chain-verifier.ts';
import type { ReceiptsTable } from '../ledger-source.ts';
import type { LedgerRow, RefusalRow } from '@dpfed/privacy/ledger';
import { LEDGER_MODES, type LedgerMode } from '@dpfed/proto/privacy-event';
import { verificationBanner } from './verification-banner.ts';

export interface EventsFilter {
  institution?: string;
  run?: string;
  mode?: LedgerMode;
  round?: number;
  offset: number;
  limit: number;
}

export interface EventsData {
  filter: EventsFilter;
  institutions: string[];
  runs: string[];
  total: number;
  rows: LedgerRow[];
  refusals: RefusalRow[];
  verification: VerificationState;
  headSeq: number;
  receipts: ReceiptsTable | null;
}

function statusCells(seq: number, v: VerificationState): [string, string] {
  const s = rowStatus(seq, v);
  if (s.state === 'ok') return ['<span class="ok" data-chain="ok">ok</span>', '<span class="ok" data-signature="ok">ok</span>'];
  if (s.state === 'unverified') {
    const why = s.why === 'after-break' ? 'not verified (after the break)' : 'not verified yet';
    return [`<span class="unverified" data-chain="unverified">${why}</span>`, '<span class="unverified" data-signature="unverified">-</span>'];
  }
  return s.signature
    ? ['<span class="ok" data-chain="ok">linked</span>', `<span class="broken" data-signature="broken">BROKEN: ${esc(s.reason)}</span>`]
    : [`<span class="broken" data-chain="broken">BROKEN: ${esc(s.reason)}</span>`, '<span class="unverified" data-signature="unverified">-</span>'];
}

function select(name: string, values: string[], current: string | undefined, all: string): string {
  return `<label>${esc(name)}<select name="${esc(name)}"><option value="">${esc(all)}</option>${values
    .map((v) => `<option value="${esc(v)}"${v === current ? ' selected' : ''}>${esc(v)}</option>`)
    .join('')}</select></label>`;
}

export function eventsBody(d: EventsData): string {
  const f = d.filter;
  const base = { institution: f.institution, run: f.run, mode: f.mode, round: f.round };
  const filters = `<form method="get" action="/events" class="filters">${select('institution', d.institutions, f.institution, 'all')}${select('run', d.runs, f.run, 'all')}${select(
    'mode',
    [...LEDGER_MODES],
    f.mode,
    'all',
  )}<label>round<input name="round" type="number" min="0" value="${f.round ?? ''}"></label><button type="submit">Filter</button></form>`;
  const rows = d.rows.map((r) => {
    const e = r.event;
    const [chain, signature] = statusCells(r.seq, d.verification);
    return [
      `<span data-seq="${r.seq}">${r.seq}</span>`,
      esc(e.institutionId),
      esc(e.runId),
      String(e.round),
      esc(e.mode),
      fmt(e.sampleRate),
      fmt(e.noiseMultiplier),
      String(e.steps),
      fmt(e.clipNorm),
      fmt(e.delta, 3),
      esc(e.time),
      chain,
      signature,
      `<span class="hash">${esc(r.rowHash.slice(0, 16))}…</span>`,
    ];
  });
  const from = d.total === 0 ? 0 : f.offset + 1;
  const to = f.offset + d.rows.length;
  const pager = [
    f.offset > 0 ? `<a href="/events${query({ ...base, offset: Math.max(0, f.offset - f.limit) })}">previous</a>` : '',
    to < d.total ? `<a href="/events${query({ ...base, offset: to })}">next</a>` : '',
  ]
    .filter(Boolean)
    .join(' · ');
  const receipts = d.receipts
    ? `<h3>Anchored head receipts (table ${esc(d.receipts.table)})</h3>` +
      table(
        d.receipts.columns,
        d.receipts.rows.map((row) => d.receipts!.columns.map((c) => `<span class="hash">${esc(row[c] instanceof Buffer ? (row[c] as Buffer).toString('hex') : row[c])}</span>`)),
        {
          id: 'receipts',
          empty: 'the receipts table is empty',
        },
      )
    : '<h3>Anchored head receipts</h3><p class="empty" id="receipts-none">None: this ledger keeps no receipts table.</p>';
  return [
    verificationBanner(d.verification, d.headSeq),
    filters,
    `<p>Events ${from}–${to} of ${d.total}. ${pager} <a class="noprint" href="/export/events.csv${query({ institution: f.institution, run: f.run })}">Export CSV (institution and run filters)</a></p>`,
    table(['seq', 'institution', 'run', 'round', 'mode', 'q', 'σ', 'steps', 'clip', 'δ', 'time', 'chain', 'signature', 'row hash'], rows, { id: 'events', empty: 'no events match' }),
    '<h3>Refusals</h3>',
    table(
      ['seq', 'institution', 'run', 'round', 'reason', 'projected ε', 'time', 'chain'],
      d.refusals.map((r) => [String(r.seq), esc(r.institutionId), esc(r.runId), String(r.round), esc(r.reason), fmt(r.projectedEpsilon), esc(r.time), statusCells(r.seq, d.verification)[0]]),
      { id: 'refusals', empty: 'no refusals' },
    ),
    receipts,
  ].join('');
}
