// The read-only JSON API under /api: the ledger report (the same object `dpfed ledger --json` prints, from
// the same function), the chain verification, events with each row's status, burn-down curves, receipts,
// runs and rounds.
import type { FastifyInstance } from 'fastify';
import type { AccountantKind } from '@dpfed/privacy/accountant';
import {
  burnDownQuerySchema,
  burnDownSchema,
  errorSchema,
  eventsPageSchema,
  eventsQuerySchema,
  ledgerQuerySchema,
  ledgerReportSchema,
  receiptsSchema,
  roundDetailSchema,
  roundParamsSchema,
  roundSchema,
  runParamsSchema,
  runSchema,
  verifySchema,
} from './api-schemas.ts';
import type { CoordinatorRecords } from './coordinator-records.ts';
import { rowStatus } from './chain-verifier.ts';
import type { LedgerSource } from './ledger-source.ts';
import type { EventsFilter } from './pages/events-page.ts';

/** /api/verify answers for the ledger as it is: it waits this long for a running verification. */
const API_VERIFY_WAIT_MS = 120_000;
const EVENTS_VERIFY_WAIT_MS = 3000;

export interface ApiDeps {
  source: LedgerSource;
  records: CoordinatorRecords;
}

/** Events matching the filter, in chain order, one page of them, and how many match in all. */
export function eventsPage(source: LedgerSource, f: EventsFilter) {
  const all = source.cached(`events:${f.institution ?? ''}:${f.run ?? ''}`, () => source.ledger.events({ institutionId: f.institution, runId: f.run }));
  const matching = f.mode === undefined && f.round === undefined ? all : all.filter((r) => (f.mode === undefined || r.event.mode === f.mode) && (f.round === undefined || r.event.round === f.round));
  return { total: matching.length, rows: matching.slice(f.offset, f.offset + f.limit) };
}

export function registerApiRoutes(app: FastifyInstance, d: ApiDeps): void {
  const { source, records } = d;

  app.get<{ Querystring: { accountant: AccountantKind; institution?: string; run?: string } }>(
    '/api/ledger',
    { schema: { summary: 'ε per institution: the same object as `dpfed ledger --json`', querystring: ledgerQuerySchema, response: { 200: ledgerReportSchema, 404: errorSchema } } },
    async (request, reply) => {
      const q = request.query;
      const report = source.report({ accountant: q.accountant, institutionId: q.institution, runId: q.run });
      if (q.institution !== undefined && report.institutions.length === 0)
        return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `institution: ${q.institution} is not registered in this ledger` });
      return { db: source.path, ...report };
    },
  );

  app.get(
    '/api/verify',
    {
      schema: {
        summary: 'check the hash chain, every signature and the signed head (as `dpfed ledger --verify --json`); waits for the verification of the current ledger',
        response: { 200: verifySchema, 503: errorSchema },
      },
    },
    async (_request, reply) => {
      const state = await source.verifier.settled(API_VERIFY_WAIT_MS);
      if (state.pending || !state.result) return reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'the chain verification is still running; ask again later' });
      return state.result;
    },
  );

  app.get<{ Querystring: EventsFilter }>(
    '/api/events',
    { schema: { summary: "privacy events in chain order with each row's chain and signature status", querystring: eventsQuerySchema, response: { 200: eventsPageSchema } } },
    async (request) => {
      const f = request.query;
      const verification = await source.verifier.settled(EVENTS_VERIFY_WAIT_MS);
      const page = eventsPage(source, f);
      return {
        total: page.total,
        offset: f.offset,
        limit: f.limit,
        verification: verification.result,
        verificationPending: verification.pending,
        rows: page.rows.map((r) => {
          const s = rowStatus(r.seq, verification);
          if (s.state !== 'broken') return { ...r, chain: s.state, signature: s.state };
          return { ...r, chain: s.signature ? 'ok' : 'broken', signature: s.signature ? 'broken' : 'unverified', reason: s.reason };
        }),
      };
    },
  );

  app.get<{ Querystring: { institution: string; accountant: AccountantKind } }>(
    '/api/burn-down',
    { schema: { summary: 'ε spent and remaining after each recorded event of one institution (all runs)', querystring: burnDownQuerySchema, response: { 200: burnDownSchema, 404: errorSchema } } },
    async (request, reply) => {
      const { institution, accountant } = request.query;
      const row = source.ledger.institution(institution);
      if (!row) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `institution: ${institution} is not registered in this ledger` });
      return { institutionId: institution, accountant, budget: row.budget, points: source.burnDown(institution, accountant) };
    },
  );

  app.get('/api/receipts', { schema: { summary: 'anchored head receipts, when the ledger keeps a receipts table', response: { 200: receiptsSchema } } }, async () => {
    const r = source.receipts();
    const plain = (row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Buffer ? v.toString('hex') : v]));
    return r ? { present: true, table: r.table, columns: r.columns, rows: r.rows.map(plain) } : { present: false, table: null, columns: [], rows: [] };
  });

  app.get('/api/runs', { schema: { summary: "the coordinator's runs (empty for an institution ledger)", response: { 200: { type: 'array', items: runSchema } } } }, async () => records.runs());

  app.get<{ Params: { runId: string } }>(
    '/api/runs/:runId/rounds',
    { schema: { summary: 'committed rounds of a run with global AUC (and its standard error), loss, accuracy', params: runParamsSchema, response: { 200: { type: 'array', items: roundSchema } } } },
    async (request) => records.rounds(request.params.runId),
  );

  app.get<{ Params: { runId: string; round: number } }>(
    '/api/runs/:runId/rounds/:round',
    { schema: { summary: 'one round: participants, dropouts, strategy, aggregation, privacy parameters, metrics', params: roundParamsSchema, response: { 200: roundDetailSchema, 404: errorSchema } } },
    async (request, reply) => {
      const detail = records.round(request.params.runId, request.params.round);
      if (!detail) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `round ${request.params.round} of run ${request.params.runId} is not committed in this database` });
      return detail;
    },
  );
}
