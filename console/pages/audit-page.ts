// The audit log (operators only): every login, ok or failed, every logout and export, newest first.
import { esc, table } from '../html.ts';
import type { AuditEntry } from '../users-store.ts';

export function auditBody(entries: AuditEntry[]): string {
  return table(
    ['#', 'at', 'user', 'action', 'outcome', 'detail', 'from'],
    entries.map((e) => [String(e.id), esc(e.at), esc(e.username), esc(e.action), `<span class="${e.outcome === 'ok' ? 'ok' : 'broken'}">${esc(e.outcome)}</span>`, esc(e.detail), esc(e.ip)]),
    { id: 'audit', empty: 'no entries' },
  );
}
