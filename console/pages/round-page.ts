// One round in detail: participants and dropouts, the strategy and aggregation, the run's privacy
// parameters, every metric, failed attempts and scheduling refusals.
import type { RoundDetail } from '../coordinator-records.ts';
import { esc, fmt, table } from '../html.ts';

function privacyFacts(config: Record<string, unknown>): string {
  const task = (config.task ?? {}) as { privacy?: { mode?: string; record?: Record<string, unknown>; client?: Record<string, unknown> } };
  const privacy = task.privacy ?? {};
  const params = privacy.mode === 'record' ? privacy.record : privacy.mode === 'client' ? privacy.client : undefined;
  const items = Object.entries(params ?? {}).map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(typeof v === 'number' ? fmt(v, 6) : v)}</dd>`);
  return `<dl class="facts" id="privacy"><dt>privacy mode</dt><dd>${esc(privacy.mode ?? '-')}</dd>${items.join('')}</dl>`;
}

export function roundBody(d: RoundDetail): string {
  const dropped = d.participantsList.filter((p) => p.status !== 'reported');
  return [
    `<dl class="facts"><dt>run</dt><dd>${esc(d.runId)}</dd><dt>round</dt><dd>${d.round}</dd><dt>model version</dt><dd>${d.modelVersion}</dd><dt>strategy</dt><dd>${esc(d.strategy)}</dd>` +
      `<dt>aggregation</dt><dd>${esc(d.aggregation)}</dd><dt>started</dt><dd>${esc(d.startedAt)}</dd><dt>committed</dt><dd>${esc(d.committedAt)}</dd><dt>seconds</dt><dd>${fmt(d.seconds, 3)}</dd>` +
      `<dt>global AUC</dt><dd>${fmt(d.auc)}${d.aucStderr !== null ? ` ± ${fmt(1.96 * d.aucStderr)} (1.96 standard errors)` : ''}</dd><dt>loss</dt><dd>${fmt(d.loss)}</dd><dt>accuracy</dt><dd>${fmt(d.accuracy)}</dd></dl>`,
    '<h3>Privacy parameters of the run</h3>',
    privacyFacts(d.config),
    `<h3>Participants (${d.participantsList.length - dropped.length} reported, ${dropped.length} dropped or refused)</h3>`,
    table(
      ['institution', 'status', 'examples', 'detail'],
      d.participantsList.map((p) => [esc(p.institutionId), `<span class="${p.status === 'reported' ? 'ok' : 'broken'}">${esc(p.status)}</span>`, String(p.numExamples), esc(p.detail)]),
      {
        id: 'participants',
        empty: 'no participants recorded',
      },
    ),
    '<h3>Metrics</h3>',
    table(
      ['institution', 'metric', 'value'],
      d.metrics.map((m) => [m.institutionId === '' ? '<em>global</em>' : esc(m.institutionId), esc(m.name), fmt(m.value, 6)]),
      { id: 'metrics' },
    ),
    '<h3>Failed attempts of this round</h3>',
    table(
      ['at', 'reason'],
      d.failures.map((f) => [esc(f.at), esc(f.reason)]),
      { id: 'failures', empty: 'none' },
    ),
    '<h3>Scheduling refusals</h3>',
    table(
      ['institution', 'at', 'reason', 'projected ε', 'budget ε'],
      d.schedulingRefusals.map((r) => [esc(r.institutionId), esc(r.at), esc(r.reason), fmt(r.projectedEpsilon), fmt(r.budgetEpsilon)]),
      { id: 'scheduling-refusals', empty: 'none' },
    ),
  ].join('');
}
