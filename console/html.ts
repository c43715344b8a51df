// HTML building blocks for the console's server-rendered pages: escaping, number formatting, tables and
// the page frame (navigation, the logout form with its CSRF token, the stylesheet). No inline scripts: the
// pages work without JavaScript and the Content-Security-Policy forbids scripts other than our own files.

/** Escapes text for HTML element content and double-quoted attributes. */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** A number as `dpfed ledger` prints it in its table (4 significant digits, exponent below 1e-3). */
export function fmt(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && Math.abs(x) < 1e-3) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}

/** A query string from defined, non-empty values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A table; cells are HTML already escaped by the caller. `data-*` attributes let tests find values. */
export function table(headers: string[], rows: string[][], opts: { id?: string; empty?: string } = {}): string {
  if (rows.length === 0) return `<p class="empty"${opts.id ? ` id="${esc(opts.id)}"` : ''}>${esc(opts.empty ?? 'none')}</p>`;
  return `<table${opts.id ? ` id="${esc(opts.id)}"` : ''}><thead><tr>${headers.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

export interface PageUser {
  username: string;
  role: string;
}

export interface LayoutOptions {
  title: string;
  active: 'overview' | 'epsilon' | 'events' | 'reports' | 'audit' | 'login' | 'round';
  body: string;
  user?: PageUser;
  csrfToken?: string;
  /** Print-only pages drop the navigation when printed (see console.css). */
  printable?: boolean;
}

const NAV: [LayoutOptions['active'], string, string][] = [
  ['overview', '/', 'Overview'],
  ['epsilon', '/epsilon', 'ε per institution'],
  ['events', '/events', 'Events & chain'],
  ['reports', '/reports', 'Compliance reports'],
];

export function layout(o: LayoutOptions): string {
  const nav = o.user
    ? `<nav>${NAV.map(([key, href, label]) => `<a href="${href}"${key === o.active ? ' class="active"' : ''}>${esc(label)}</a>`).join('')}${
        o.user.role === 'operator' ? `<a href="/audit"${o.active === 'audit' ? ' class="active"' : ''}>Audit log</a>` : ''
      }<a href="/docs">API (OpenAPI)</a><span class="who">${esc(o.user.username)} (${esc(o.user.role)})</span><form method="post" action="/logout" class="inline"><input type="hidden" name="_csrf" value="${esc(
        o.csrfToken,
      )}"><button type="submit">Log out</button></form></nav>`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(o.title)} · dpfed console</title><meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/static/console.css"></head><body${
    o.printable ? ' class="printable"' : ''
  }><header><h1>dpfed compliance console</h1>${nav}</header><main><h2>${esc(o.title)}</h2>${o.body}</main></body></html>`;
}
