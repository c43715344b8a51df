// JSON schemas of the console API: fastify validates every input against them (a bad value is a 400
// naming the field), serialises every output through them, and @fastify/swagger publishes them as the
// OpenAPI document at /docs.
import { LEDGER_MODES } from '@dpfed/proto/privacy-event';

const str = { type: 'string' } as const;
const num = { type: 'number' } as const;
const int = { type: 'integer' } as const;
const nullableNum = { type: ['number', 'null'] } as const;
const hex = { type: 'string', pattern: '^[0-9a-f]*$' } as const;

/** Free-text identifiers in queries (institution and run ids). */
const id = { type: 'string', minLength: 1, maxLength: 200 } as const;

function object(properties: Record<string, unknown>, required: string[] = Object.keys(properties)) {
  return { type: 'object', properties, required, additionalProperties: false } as const;
}

export const errorSchema = object({ statusCode: int, error: str, message: str }, ['message']);

const chain = { seq: int, prevHash: hex, rowHash: hex, countersignature: hex };

export const ledgerEventSchema = object({
  institutionId: str,
  runId: str,
  round: int,
  mode: { type: 'string', enum: [...LEDGER_MODES] },
  sampleRate: num,
  noiseMultiplier: num,
  steps: int,
  clipNorm: num,
  delta: num,
  modelVersion: int,
  time: str,
});

export const ledgerRowSchema = object({ ...chain, event: ledgerEventSchema, institutionSignature: hex });

export const refusalRowSchema = object({ ...chain, institutionId: str, runId: str, round: int, reason: str, projectedEpsilon: num, time: str });

const budget = object({ epsilon: num, delta: num });

export const institutionSummarySchema = object(
  {
    institutionId: str,
    publicKey: hex,
    accountant: { type: 'string', enum: ['rdp', 'pld'] },
    epsilon: num,
    order: num,
    delta: num,
    epsilonTotal: num,
    budget,
    remaining: num,
    projectedRoundsLeft: { type: ['integer', 'null'] },
    events: { type: 'array', items: ledgerRowSchema },
    refusals: { type: 'array', items: refusalRowSchema },
    // with several runs on the ledger (or one asked for): ε in "this run" beside ε over all runs
    epsilonThisRun: num,
    epsilonAllRuns: num,
  },
  ['institutionId', 'publicKey', 'accountant', 'epsilon', 'delta', 'epsilonTotal', 'budget', 'remaining', 'projectedRoundsLeft', 'events', 'refusals'],
);

const head = object({ seq: int, hash: hex });

/** The same object `dpfed ledger --json` prints. */
export const ledgerReportSchema = object({
  db: str,
  accountant: { type: 'string', enum: ['rdp', 'pld'] },
  run: { type: ['string', 'null'] },
  thisRun: { type: ['string', 'null'] },
  head,
  countersignerPublicKey: hex,
  institutions: { type: 'array', items: institutionSummarySchema },
});

export const ledgerQuerySchema = object({ accountant: { type: 'string', enum: ['rdp', 'pld'], default: 'rdp' }, institution: id, run: id }, []);

export const verifySchema = {
  type: 'object',
  properties: { ok: { type: 'boolean' }, rows: int, headHash: hex, badRow: int, reason: str },
  required: ['ok'],
  additionalProperties: false,
} as const;

export const eventsQuerySchema = object(
  {
    institution: id,
    run: id,
    mode: { type: 'string', enum: [...LEDGER_MODES] },
    round: { type: 'integer', minimum: 0 },
    offset: { type: 'integer', minimum: 0, default: 0 },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 200 },
  },
  [],
);

const rowStatus = { type: 'string', enum: ['ok', 'broken', 'unverified'] } as const;

export const eventsPageSchema = object({
  total: int,
  offset: int,
  limit: int,
  /** The latest finished verification (null before the first finishes); rows after its head are 'unverified'. */
  verification: { anyOf: [verifySchema, { type: 'null' }] },
  verificationPending: { type: 'boolean' },
  rows: {
    type: 'array',
    items: object({ ...chain, event: ledgerEventSchema, institutionSignature: hex, chain: rowStatus, signature: rowStatus, reason: str }, ['seq', 'event', 'rowHash', 'chain', 'signature']),
  },
});

export const burnDownQuerySchema = object({ institution: id, accountant: { type: 'string', enum: ['rdp', 'pld'], default: 'rdp' } }, ['institution']);
export const burnDownSchema = object({
  institutionId: str,
  accountant: str,
  budget,
  points: { type: 'array', items: object({ event: int, runId: str, round: int, epsilon: num, remaining: num }) },
});

export const receiptsSchema = object({
  present: { type: 'boolean' },
  table: { type: ['string', 'null'] },
  columns: { type: 'array', items: str },
  rows: { type: 'array', items: { type: 'object', additionalProperties: true } },
});

export const runSchema = object({
  id: str,
  createdAt: str,
  status: str,
  roundsPlanned: int,
  roundsCommitted: int,
  participants: int,
  strategy: str,
  aggregation: str,
  privacyMode: str,
});

const roundMetrics = {
  round: int,
  modelVersion: int,
  participants: int,
  seconds: num,
  committedAt: str,
  aggregation: str,
  auc: nullableNum,
  aucStderr: nullableNum,
  loss: nullableNum,
  accuracy: nullableNum,
};
export const roundSchema = object(roundMetrics);

export const roundDetailSchema = object({
  ...roundMetrics,
  runId: str,
  startedAt: str,
  strategy: str,
  config: { type: 'object', additionalProperties: true },
  participantsList: { type: 'array', items: object({ institutionId: str, status: str, numExamples: int, detail: str }) },
  metrics: { type: 'array', items: object({ institutionId: str, name: str, value: nullableNum }) },
  failures: { type: 'array', items: object({ at: str, reason: str }) },
  schedulingRefusals: { type: 'array', items: object({ institutionId: str, at: str, reason: str, projectedEpsilon: nullableNum, budgetEpsilon: nullableNum }) },
});

export const runParamsSchema = object({ runId: id });
export const roundParamsSchema = object({ runId: id, round: { type: 'integer', minimum: 0 } });

export const meSchema = object({ username: str, role: str, csrfToken: str });

export const userSchema = object({ username: str, role: { type: 'string', enum: ['compliance', 'operator'] }, createdAt: str });
export const newUserSchema = object(
  {
    username: { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,64}$' },
    role: { type: 'string', enum: ['compliance', 'operator'] },
    password: { type: 'string', minLength: 8, maxLength: 1024 },
    _csrf: str,
  },
  ['username', 'role', 'password'],
);
export const usernameParamsSchema = object({ username: { type: 'string', pattern: '^[A-Za-z0-9._@-]{1,64}$' } });

export const auditEntrySchema = object({ id: int, at: str, username: str, action: str, outcome: str, detail: str, ip: str });
