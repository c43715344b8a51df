// The console's HTML pages and the CSV export. Each page reads through LedgerSource (cached per ledger
// version) and CoordinatorRecords, and renders on the server; reports and exports are audited.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccountantKind } from '@dpfed/privacy/accountant';
import { eventsPage } from './api-routes.ts';
import { eventsQuerySchema, ledgerQuerySchema, roundParamsSchema } from './api-schemas.ts';
import type { CoordinatorRecords } from './coordinator-records.ts';
import { layout, type LayoutOptions } from './html.ts';
import type { LedgerSource } from './ledger-source.ts';
import { auditBody } from './pages/audit-page.ts';
import { epsilonBody, epsilonCharts } from './pages/epsilon-page.ts';
import { eventsBody, type EventsFilter } from './pages/events-page.ts';
import { overviewBody } from './pages/overview-page.ts';
import { reportBody, reportsIndexBody } from './pages/report-page.ts';
import { roundBody } from './pages/round-page.ts';
import type { UsersStore } from './users-store.ts';

export interface PageDeps {
  source: LedgerSource;
  records: CoordinatorRecords;
  users: UsersStore;
}

function send(request: FastifyRequest, reply: FastifyReply, page: Omit<LayoutOptions, 'user' | 'csrfToken'>, status = 200) {
  const s = request.consoleSession!;
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .send(layout({ ...page, user: s.user, csrfToken: s.csrfToken }));
}

const hidden = { hide: true };
/** How long a page waits for a running chain verification before it shows the latest finished one. */
const PAGE_VERIFY_WAIT_MS = 3000;
/** A report waits longer: it states the verification it was produced with. */
const REPORT_VERIFY_WAIT_MS = 30_000;

export function registerPageRoutes(app: FastifyInstance, d: PageDeps): void {
  const { source, records, users } = d;
  const runIds = () => {
    const fromRecords = records.runs().map((r) => r.id);
    return fromRecords.length ? fromRecords : [...new Set(source.ledger.events().map((r) => r.event.runId))];
  };
  const institutionIds = () => source.ledger.institutions().map((i) => i.institutionId);

  app.get<{ Querystring: { run?: string } }>(
    '/',
    { schema: { ...hidden, querystring: { type: 'object', properties: { run: { type: 'string', maxLength: 200 } }, additionalProperties: false } } },
    async (request, reply) => {
      const runs = records.runs();
      const selectedRun = request.query.run ?? runs[runs.length - 1]?.id;
      const body = await overviewBody({
        dbPath: source.path,
        coordinatorDb: records.available,
        head: source.ledger.head(),
        verification: await source.verifier.settled(PAGE_VERIFY_WAIT_MS),
        institutions: source.ledger.institutions().length,
        runs,
        selectedRun,
        rounds: selectedRun ? records.rounds(selectedRun) : [],
      });
      return send(request, reply, { title: 'Overview', active: 'overview', body });
    },
  );

  app.get<{ Querystring: { accountant: AccountantKind; institution?: string; run?: string } }>('/epsilon', { schema: { ...hidden, querystring: ledgerQuerySchema } }, async (request, reply) => {
    const q = request.query;
    const report = source.report({ accountant: q.accountant, runId: q.run });
    const selected = q.institution ?? report.institutions[0]?.institutionId;
    const burnDown = selected ? source.burnDown(selected, q.accountant) : [];
    const charts = await source.cached(`epsilon-charts:${q.accountant}:${q.run ?? ''}:${selected ?? ''}`, () => epsilonCharts(report, selected, burnDown));
    const runs = source.cached('run-ids', runIds);
    return send(request, reply, { title: 'ε per institution', active: 'epsilon', body: epsilonBody({ report, runs, selected, burnDown, charts }) });
  });

  app.get<{ Querystring: EventsFilter }>('/events', { schema: { ...hidden, querystring: eventsQuerySchema } }, async (request, reply) => {
    const f = request.query;
    const page = eventsPage(source, f);
    const body = eventsBody({
      filter: f,
      institutions: institutionIds(),
      runs: source.cached('run-ids', runIds),
      total: page.total,
      rows: page.rows,
      refusals: source.ledger.refusals({ institutionId: f.institution, runId: f.run }),
      verification: await source.verifier.settled(PAGE_VERIFY_WAIT_MS),
      headSeq: source.ledger.head().seq,
      receipts: source.receipts(),
    });
    return send(request, reply, { title: 'Events and the audit chain', active: 'events', body });
  });

  app.get<{ Params: { runId: string; round: number } }>('/runs/:runId/rounds/:round', { schema: { ...hidden, params: roundParamsSchema } }, async (request, reply) => {
    const { runId, round } = request.params;
    const detail = records.round(runId, round);
    if (!detail) return send(request, reply, { title: 'Round not found', active: 'round', body: `<p class="error">Round ${round} of run ${runId} is not committed in this database.</p>` }, 404);
    return send(request, reply, { title: `Run ${runId}, round ${round}`, active: 'round', body: roundBody(detail) });
  });

  app.get('/reports', { schema: hidden }, async (request, reply) =>
    send(request, reply, { title: 'Compliance reports', active: 'reports', body: reportsIndexBody({ institutions: institutionIds(), runs: source.cached('run-ids', runIds) }) }),
  );

  app.get<{ Querystring: { accountant: AccountantKind; institution?: string; run?: string } }>(
    '/report',
    { schema: { ...hidden, querystring: { ...ledgerQuerySchema, required: ['institution'] } } },
    async (request, reply) => {
      const q = request.query;
      const report = source.report({ accountant: q.accountant, runId: q.run });
      const summary = report.institutions.find((s) => s.institutionId === q.institution);
      const user = request.consoleSession!.user!;
      if (!summary) return send(request, reply, { title: 'Report', active: 'reports', body: `<p class="error">institution: ${q.institution} is not registered in this ledger.</p>` }, 404);
      users.audit({
        username: user.username,
        action: 'report',
        outcome: 'ok',
        detail: `institution ${q.institution}, run ${q.run ?? 'all'}, ${q.accountant}, head ${report.head.seq}`,
        ip: request.ip,
      });
      const body = reportBody({
        report,
        summary,
        verification: await source.verifier.settled(REPORT_VERIFY_WAIT_MS),
        dbPath: source.path,
        generatedAt: new Date().toISOString(),
        generatedBy: `${user.username} (${user.role})`,
      });
      const title = `Compliance report: ${summary.institutionId}${q.run ? `, run ${q.run}` : ''}`;
      return send(request, reply, { title, active: 'reports', body, printable: true });
    },
  );

  app.get<{ Querystring: { institution?: string; run?: string } }>(
    '/export/events.csv',
    { schema: { ...hidden, querystring: { type: 'object', properties: { institution: { type: 'string', minLength: 1, maxLength: 200 }, run: { type: 'string', minLength: 1, maxLength: 200 } } } } },
    async (request, reply) => {
      const { institution, run } = request.query;
      const csv = source.ledger.exportCsv({ institutionId: institution, runId: run });
      const user = request.consoleSession!.user!;
      users.audit({
        username: user.username,
        action: 'export',
        outcome: 'ok',
        detail: `events.csv institution ${institution ?? 'all'}, run ${run ?? 'all'}, head ${source.ledger.head().seq}`,
        ip: request.ip,
      });
      return reply.type('text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="ledger-events.csv"').send(csv);
    },
  );

  app.get('/audit', { config: { roles: ['operator'] }, schema: hidden }, async (request, reply) => send(request, reply, { title: 'Audit log', active: 'audit', body: auditBody(users.auditLog()) }));
}
