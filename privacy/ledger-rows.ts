// The ledger's row types and how they are read from SQLite: the three chained row kinds (institution
// registrations, privacy events, refusals), the part of a better-sqlite3 Database the ledger uses, and the
// mapping from a table row (snake_case columns, see ledger-schema.ts) to its typed form.
import type { PrivacyBudget } from './budget.ts';
import type { LedgerEvent } from './ledger-event.ts';

/** The part of a better-sqlite3 Database the ledger uses. */
export interface LedgerStatement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
export interface LedgerDatabase {
  prepare(sql: string): LedgerStatement;
  exec(sql: string): unknown;
  readonly inTransaction: boolean;
}

export interface ChainFields {
  seq: number;
  prevHash: string;
  rowHash: string;
  countersignature: string;
}

/** An event row. Hashes and signatures are lowercase hex. */
export interface LedgerRow extends ChainFields {
  event: LedgerEvent;
  institutionSignature: string;
}

export interface InstitutionRow extends ChainFields {
  institutionId: string;
  publicKey: string;
  budget: PrivacyBudget;
  time: string;
}

export interface RefusalRow extends ChainFields {
  institutionId: string;
  runId: string;
  round: number;
  reason: string;
  projectedEpsilon: number;
  time: string;
}

export interface LedgerFilter {
  institutionId?: string;
  runId?: string;
}

/** A table row as better-sqlite3 returns it. */
export type Row = Record<string, unknown>;
/** A row of any of the three chained tables, tagged with its kind. */
export type AnyRow = { kind: 'institution'; row: InstitutionRow } | { kind: 'event'; row: LedgerRow } | { kind: 'refusal'; row: RefusalRow };

export function toInstitutionRow(r: Row): InstitutionRow {
  return {
    seq: r.seq as number,
    institutionId: r.institution_id as string,
    publicKey: r.public_key as string,
    budget: { epsilon: r.budget_epsilon as number, delta: r.budget_delta as number },
    time: r.time as string,
    prevHash: r.prev_hash as string,
    rowHash: r.row_hash as string,
    countersignature: r.countersignature as string,
  };
}

/** The ledger_events columns, in table order (also the CSV export's columns). */
export const EVENT_COLUMNS = [
  'seq',
  'institution_id',
  'run_id',
  'round',
  'mode',
  'sample_rate',
  'noise_multiplier',
  'steps',
  'clip_norm',
  'delta',
  'model_version',
  'time',
  'institution_signature',
  'prev_hash',
  'row_hash',
  'countersignature',
] as const;

/** An event row's values in EVENT_COLUMNS order: the inverse of toLedgerRow. */
export function eventColumnValues(r: LedgerRow): (string | number)[] {
  const e = r.event;
  return [
    r.seq,
    e.institutionId,
    e.runId,
    e.round,
    e.mode,
    e.sampleRate,
    e.noiseMultiplier,
    e.steps,
    e.clipNorm,
    e.delta,
    e.modelVersion,
    e.time,
    r.institutionSignature,
    r.prevHash,
    r.rowHash,
    r.countersignature,
  ];
}

export function toLedgerRow(r: Row): LedgerRow {
  return {
    seq: r.seq as number,
    event: {
      institutionId: r.institution_id as string,
      runId: r.run_id as string,
      round: r.round as number,
      mode: r.mode as LedgerEvent['mode'],
      sampleRate: r.sample_rate as number,
      noiseMultiplier: r.noise_multiplier as number,
      steps: r.steps as number,
      clipNorm: r.clip_norm as number,
      delta: r.delta as number,
      modelVersion: r.model_version as number,
      time: r.time as string,
    },
    institutionSignature: r.institution_signature as string,
    prevHash: r.prev_hash as string,
    rowHash: r.row_hash as string,
    countersignature: r.countersignature as string,
  };
}

export function toRefusalRow(r: Row): RefusalRow {
  return {
    seq: r.seq as number,
    institutionId: r.institution_id as string,
    runId: r.run_id as string,
    round: r.round as number,
    reason: r.reason as string,
    projectedEpsilon: r.projected_epsilon as number,
    time: r.time as string,
    prevHash: r.prev_hash as string,
    rowHash: r.row_hash as string,
    countersignature: r.countersignature as string,
  };
}

/** The WHERE clause (and its parameters) selecting the rows a filter names. */
export function filterClause(filter: LedgerFilter | undefined): { where: string; params: string[] } {
  const conditions: string[] = [];
  const params: string[] = [];
  if (filter?.institutionId !== undefined) {
    conditions.push('institution_id = ?');
    params.push(filter.institutionId);
  }
  if (filter?.runId !== undefined) {
    conditions.push('run_id = ?');
    params.push(filter.runId);
  }
  return { where: conditions.length ? `WHERE ${conditions.join(' AND ')}` : '', params };
}
