// The ε ledger: an append-only, hash-chained record of privacy events in SQLite.
//
// The coordinator keeps it inside its own SQLite file (append() joins the caller's open transaction as a
// savepoint, so an event commits with its round); each institution keeps its own local ledger file with the
// same class, countersigned by its own key.
//
// Tables (created if absent):
//   ledger_meta          key/value: format, countersigner_public_key (hex), head_seq, head_hash, head_signature
//   ledger_institutions  an institution's identity public key and declared budget (a later row with the same key
//                        and another budget updates the budget; another key is refused)
//   ledger_events        one privacy event per (institution, run, round, mode), with the institution's signature
//   ledger_refusals      why the holder of this ledger stopped sampling / training an institution in a round
// All three row tables share ONE chain: seq runs 1, 2, 3 … across them, and every row stores
//   prev_hash        row_hash of seq − 1 (for seq 1: SHA-256("dpfed.v1/ledger-genesis" 0x00 countersigner key))
//   row_hash         SHA-256(prev_hash || canonical row bytes || institution signature (events only))
//   countersignature Ed25519 by the countersigner over encodeCanonical("dpfed.v1/ledger-countersign", row_hash)
// and ledger_meta holds the head (seq, hash) with the countersigner's signature over it, so removing rows from
// the end is detected too. SQLite triggers refuse UPDATE and DELETE on the row tables (defence in depth; verify()
// does not rely on them).
//
// What verify() proves: every row is intact, in order, none missing or inserted, every event carries a valid
// signature by the key its institution registered earlier in the chain, every row and the head are
// countersigned by the key in ledger_meta. Someone who can rewrite the whole file AND holds no key can still
// swap in a new countersigner key and re-sign everything; pass the coordinator's key you trust
// (verify({ countersignerPublicKey })) to rule that out. Rolling the whole file back to an older copy is only
// visible against a head hash recorded elsewhere: pass the receipts the other party holds
// (verify({ receipts }), privacy/receipts.ts), and a ledger that no longer holds a row a receipt names (tail
// truncated to an older head, wiped, replaced, or re-chained by the key holder without a row) fails.
//
// Budgets: appendWithinBudget() checks the budget with the accountant (composing all the institution's events
// with the new one) and appends in the same BEGIN IMMEDIATE transaction, so two processes sharing one ledger
// file cannot both pass the check and together overspend.
import { createHash } from 'node:crypto';
import type { Accountant } from './accountant.ts';
import { checkBudget, projectedRoundsLeft, validateBudget, composedEpsilon, type PrivacyBudget } from './budget.ts';
import { verifySignature, type IdentityKey } from './identity.ts';
import {
  canonicalEventBytes,
  encodeCanonical,
  pickLedgerEvent,
  validateLedgerEvent,
  verifyEventSignature,
  type LedgerEvent,
} from './ledger-event.ts';
import type { MechanismEvent } from './mechanism-event.ts';
import { receiptBytes, signReceipt, validateReceipt, type LedgerReceipt } from './receipts.ts';

/** appendWithinBudget() refused: the event would take the institution past its budget (nothing was appended). */
export class BudgetExceededError extends Error {
  constructor(message: string, readonly projectedEpsilon: number, readonly budget: PrivacyBudget) {
    super(message);
    this.name = 'BudgetExceededError';
  }
}

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

export interface SpentEpsilon {
  epsilon: number;
  delta: number;
  order?: number;
}

export interface InstitutionSummary {
  institutionId: string;
  publicKey: string;
  accountant: 'rdp' | 'pld';
  /** ε composed over the events shown (those matching the filter). */
  epsilon: number;
  order?: number;
  /** δ the ε is stated at: the institution's budget δ. */
  delta: number;
  /** ε composed over ALL this institution's events in this ledger (every run): what the budget is charged. */
  epsilonTotal: number;
  budget: PrivacyBudget;
  /** budget ε − epsilonTotal, never below 0. */
  remaining: number;
  /** Further rounds like the institution's latest event that fit the budget; null without events. */
  projectedRoundsLeft: number | null;
  events: LedgerRow[];
  refusals: RefusalRow[];
}

export type VerifyResult = { ok: true; rows: number; headHash: string } | { ok: false; badRow: number; reason: string };

export interface LedgerOptions {
  /** The key that countersigns rows. Without it the ledger is read-only (nothing is created or appended). */
  countersigner?: IdentityKey;
  /** Clock for registration and refusal times (tests). */
  now?: () => Date;
}

const FORMAT = 'dpfed.v1/ledger';
const ROW_TABLES = ['ledger_institutions', 'ledger_events', 'ledger_refusals'] as const;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_institutions (
  seq INTEGER PRIMARY KEY, institution_id TEXT NOT NULL, public_key TEXT NOT NULL,
  budget_epsilon REAL NOT NULL, budget_delta REAL NOT NULL, time TEXT NOT NULL,
  prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL, countersignature TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_institutions_by_id ON ledger_institutions (institution_id, seq);
CREATE TABLE IF NOT EXISTS ledger_events (
  seq INTEGER PRIMARY KEY, institution_id TEXT NOT NULL, run_id TEXT NOT NULL, round INTEGER NOT NULL,
  mode TEXT NOT NULL, sample_rate REAL NOT NULL, noise_multiplier REAL NOT NULL, steps INTEGER NOT NULL,
  clip_norm REAL NOT NULL, delta REAL NOT NULL, model_version INTEGER NOT NULL, time TEXT NOT NULL,
  institution_signature TEXT NOT NULL, prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL, countersignature TEXT NOT NULL,
  UNIQUE (institution_id, run_id, round, mode));
CREATE TABLE IF NOT EXISTS ledger_refusals (
  seq INTEGER PRIMARY KEY, institution_id TEXT NOT NULL, run_id TEXT NOT NULL, round INTEGER NOT NULL,
  reason TEXT NOT NULL, projected_epsilon REAL NOT NULL, time TEXT NOT NULL,
  prev_hash TEXT NOT NULL, row_hash TEXT NOT NULL, countersignature TEXT NOT NULL,
  UNIQUE (institution_id, run_id, round));
${ROW_TABLES.map(
  (t) => `
CREATE TRIGGER IF NOT EXISTS ${t}_no_update BEFORE UPDATE ON ${t} BEGIN SELECT RAISE(ABORT, '${t} is append-only'); END;
CREATE TRIGGER IF NOT EXISTS ${t}_no_delete BEFORE DELETE ON ${t} BEGIN SELECT RAISE(ABORT, '${t} is append-only'); END;`,
).join('')}
`;

type Row = Record<string, unknown>;
type AnyRow = { kind: 'institution'; row: InstitutionRow } | { kind: 'event'; row: LedgerRow } | { kind: 'refusal'; row: RefusalRow };

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const HEX_RE = /^(?:[0-9a-f]{2})*$/;
function unhex(text: string, name: string, length?: number): Uint8Array {
  if (typeof text !== 'string' || !HEX_RE.test(text)) throw new Error(`${name} is not lowercase hex`);
  const bytes = new Uint8Array(Buffer.from(text, 'hex'));
  if (length !== undefined && bytes.length !== length) throw new Error(`${name} must be ${length} bytes, got ${bytes.length}`);
  return bytes;
}
const sha256 = (...parts: Uint8Array[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

export function genesisHash(countersignerPublicKey: Uint8Array): Uint8Array {
  return sha256(encodeCanonical('dpfed.v1/ledger-genesis', [{ b: countersignerPublicKey }]));
}

function institutionRowBytes(r: InstitutionRow): Uint8Array {
  return encodeCanonical('dpfed.v1/ledger-row/institution', [
    { u: r.seq },
    { s: r.institutionId },
    { b: unhex(r.publicKey, 'public_key', 32) },
    { f: r.budget.epsilon },
    { f: r.budget.delta },
    { s: r.time },
  ]);
}

function eventRowBytes(r: LedgerRow): Uint8Array {
  return encodeCanonical('dpfed.v1/ledger-row/event', [{ u: r.seq }, { b: canonicalEventBytes(r.event) }]);
}

function refusalRowBytes(r: RefusalRow): Uint8Array {
  return encodeCanonical('dpfed.v1/ledger-row/refusal', [
    { u: r.seq },
    { s: r.institutionId },
    { s: r.runId },
    { u: r.round },
    { s: r.reason },
    { f: r.projectedEpsilon },
    { s: r.time },
  ]);
}

function rowHashOf(entry: AnyRow, prevHash: Uint8Array): Uint8Array {
  if (entry.kind === 'institution') return sha256(prevHash, institutionRowBytes(entry.row));
  if (entry.kind === 'refusal') return sha256(prevHash, refusalRowBytes(entry.row));
  return sha256(prevHash, eventRowBytes(entry.row), unhex(entry.row.institutionSignature, 'institution_signature', 64));
}

const countersignBytes = (rowHash: Uint8Array) => encodeCanonical('dpfed.v1/ledger-countersign', [{ b: rowHash }]);
const headBytes = receiptBytes;

function toInstitutionRow(r: Row): InstitutionRow {
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

function toLedgerRow(r: Row): LedgerRow {
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

function toRefusalRow(r: Row): RefusalRow {
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

const mechanismOf = (e: LedgerEvent): MechanismEvent => ({ sampleRate: e.sampleRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps });

/**
 * What one more round is projected to cost: the latest training release, plus the latest evaluation once
 * there was one (a cross-site release happens once per run, at its end: it is no part of a round).
 */
function nextRoundOf(rows: readonly LedgerRow[]): MechanismEvent[] {
  const latest = (...modes: LedgerEvent['mode'][]) => [...rows].reverse().find((r) => modes.includes(r.event.mode))?.event;
  return [latest('record', 'client'), latest('evaluation')].filter((e): e is LedgerEvent => e !== undefined).map(mechanismOf);
}

function sameEvent(a: LedgerEvent, b: LedgerEvent): boolean {
  return Buffer.from(canonicalEventBytes(a)).equals(Buffer.from(canonicalEventBytes(b)));
}

function filterClause(filter: LedgerFilter | undefined): { where: string; params: string[] } {
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

function csvCell(value: string | number): string {
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const CSV_COLUMNS = [
  'seq', 'institution_id', 'run_id', 'round', 'mode', 'sample_rate', 'noise_multiplier', 'steps', 'clip_norm', 'delta',
  'model_version', 'time', 'institution_signature', 'prev_hash', 'row_hash', 'countersignature',
] as const;

export class PrivacyLedger {
  readonly db: LedgerDatabase;
  /** The countersigner's Ed25519 public key, as recorded in ledger_meta. */
  readonly countersignerPublicKey: Uint8Array;
  private readonly countersigner?: IdentityKey;
  private readonly now: () => Date;

  constructor(db: LedgerDatabase, opts: LedgerOptions = {}) {
    this.db = db;
    this.countersigner = opts.countersigner;
    this.now = opts.now ?? (() => new Date());
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ledger_meta'").get() !== undefined;
    if (!opts.countersigner) {
      if (!hasMeta) throw new Error('not a dpfed ledger: table ledger_meta is missing');
    } else {
      db.exec(SCHEMA);
      const key = hex(opts.countersigner.publicKey);
      db.prepare('INSERT OR IGNORE INTO ledger_meta (key, value) VALUES (?, ?), (?, ?)').run('format', FORMAT, 'countersigner_public_key', key);
    }
    const recorded = this.meta('countersigner_public_key');
    if (recorded === undefined) throw new Error('not a dpfed ledger: ledger_meta has no countersigner_public_key');
    if (opts.countersigner && recorded !== hex(opts.countersigner.publicKey)) {
      throw new Error(`ledger is countersigned by key ${recorded.slice(0, 16)}…, not by the given countersigner ${hex(opts.countersigner.publicKey).slice(0, 16)}…`);
    }
    this.countersignerPublicKey = unhex(recorded, 'ledger_meta.countersigner_public_key', 32);
  }

  private meta(key: string): string | undefined {
    const row = this.db.prepare('SELECT value FROM ledger_meta WHERE key = ?').get(key) as { value: string } | undefined;
    return row?.value;
  }

  private writer(): IdentityKey {
    if (!this.countersigner) throw new Error('ledger opened read-only (no countersigner key): cannot append');
    return this.countersigner;
  }

  /** Runs `fn` atomically: a savepoint inside the caller's transaction, else its own IMMEDIATE transaction. */
  private atomically<T>(fn: () => T): T {
    const nested = this.db.inTransaction;
    this.db.exec(nested ? 'SAVEPOINT dpfed_ledger' : 'BEGIN IMMEDIATE');
    try {
      const result = fn();
      this.db.exec(nested ? 'RELEASE dpfed_ledger' : 'COMMIT');
      return result;
    } catch (error) {
      if (nested) this.db.exec('ROLLBACK TO dpfed_ledger; RELEASE dpfed_ledger');
      else if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw error;
    }
  }

  /** The chain head: last seq and its hash (seq 0 and the genesis hash for an empty ledger). */
  head(): { seq: number; hash: string } {
    const seq = this.meta('head_seq');
    if (seq === undefined) return { seq: 0, hash: hex(genesisHash(this.countersignerPublicKey)) };
    return { seq: Number(seq), hash: this.meta('head_hash') as string };
  }

  /** The head signed by this ledger's countersigner: the receipt handed to the other party. */
  signedHead(subject: string): LedgerReceipt {
    return signReceipt(this.writer(), this.head(), subject, this.now());
  }

  /** row_hash of row `seq` (the genesis hash for seq 0), or undefined when the ledger has no such row. */
  rowHashAt(seq: number): string | undefined {
    if (seq === 0) return hex(genesisHash(this.countersignerPublicKey));
    for (const table of ROW_TABLES) {
      const row = this.db.prepare(`SELECT row_hash FROM ${table} WHERE seq = ?`).get(seq) as { row_hash: string } | undefined;
      if (row) return row.row_hash;
    }
    return undefined;
  }

  /** Appends one row of any kind at the head; the caller holds the transaction. */
  private chain<T extends ChainFields>(build: (seq: number, prevHash: string) => Omit<T, 'rowHash' | 'countersignature'>, kind: AnyRow['kind']): T {
    const key = this.writer();
    const head = this.head();
    const seq = head.seq + 1;
    const partial = build(seq, head.hash) as T;
    const rowHash = rowHashOf({ kind, row: partial } as unknown as AnyRow, unhex(head.hash, 'head_hash', 32));
    const row = { ...partial, rowHash: hex(rowHash), countersignature: hex(key.sign(countersignBytes(rowHash))) } as T;
    const upsert = this.db.prepare('INSERT INTO ledger_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    upsert.run('head_seq', String(seq));
    upsert.run('head_hash', row.rowHash);
    upsert.run('head_signature', hex(key.sign(headBytes(seq, rowHash))));
    return row;
  }

  /** The institution's current registration (its latest key row), if any. */
  institution(institutionId: string): InstitutionRow | undefined {
    const row = this.db.prepare('SELECT * FROM ledger_institutions WHERE institution_id = ? ORDER BY seq DESC LIMIT 1').get(institutionId) as Row | undefined;
    return row ? toInstitutionRow(row) : undefined;
  }

  /** Every institution's current registration, by id. */
  institutions(): InstitutionRow[] {
    const rows = this.db.prepare('SELECT * FROM ledger_institutions ORDER BY seq').all() as Row[];
    const latest = new Map<string, InstitutionRow>();
    for (const r of rows) latest.set(r.institution_id as string, toInstitutionRow(r));
    return [...latest.values()].sort((a, b) => (a.institutionId < b.institutionId ? -1 : a.institutionId > b.institutionId ? 1 : 0));
  }

  /** Records an institution's identity key and declared budget. Same key and budget again: returns the existing
   * row. Same key, other budget: a new row that updates the budget. Another key for a known id: refused. */
  registerInstitution(institutionId: string, publicKey: Uint8Array, budget: PrivacyBudget): InstitutionRow {
    if (typeof institutionId !== 'string' || institutionId.length === 0) throw new Error('registerInstitution: institutionId must be a non-empty string');
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) throw new Error('registerInstitution: publicKey must be a 32-byte Ed25519 public key');
    validateBudget(budget, 'registerInstitution: budget');
    this.writer();
    return this.atomically(() => {
      const current = this.institution(institutionId);
      const key = hex(publicKey);
      if (current) {
        if (current.publicKey !== key) throw new Error(`registerInstitution: institution ${institutionId} is already registered with another public key`);
        if (current.budget.epsilon === budget.epsilon && current.budget.delta === budget.delta) return current;
      }
      const row = this.chain<InstitutionRow>(
        (seq, prevHash) => ({ seq, institutionId, publicKey: key, budget: { epsilon: budget.epsilon, delta: budget.delta }, time: this.now().toISOString(), prevHash }),
        'institution',
      );
      this.db
        .prepare('INSERT INTO ledger_institutions (seq, institution_id, public_key, budget_epsilon, budget_delta, time, prev_hash, row_hash, countersignature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(row.seq, row.institutionId, row.publicKey, row.budget.epsilon, row.budget.delta, row.time, row.prevHash, row.rowHash, row.countersignature);
      return row;
    });
  }

  private existingEvent(e: LedgerEvent): LedgerRow | undefined {
    const row = this.db
      .prepare('SELECT * FROM ledger_events WHERE institution_id = ? AND run_id = ? AND round = ? AND mode = ?')
      .get(e.institutionId, e.runId, e.round, e.mode) as Row | undefined;
    return row ? toLedgerRow(row) : undefined;
  }

  /** Verifies the institution's signature, then appends the event. An identical event already recorded for the
   * same (institution, run, round, mode) returns the existing row (no new row); a different one is refused. */
  append(event: LedgerEvent, institutionSignature: Uint8Array): LedgerRow {
    return this.appendChecked(event, institutionSignature, null);
  }

  /**
   * append(), but refused with a BudgetExceededError (nothing appended) when the institution's events composed
   * with this one by `accountant`, at its registered budget's δ, would pass its registered budget ε. The check
   * and the append run in one transaction (BEGIN IMMEDIATE when the caller holds none), so no other writer of
   * the same file can append in between.
   */
  appendWithinBudget(event: LedgerEvent, institutionSignature: Uint8Array, accountant: Accountant): LedgerRow {
    return this.appendChecked(event, institutionSignature, accountant);
  }

  private appendChecked(event: LedgerEvent, institutionSignature: Uint8Array, accountant: Accountant | null): LedgerRow {
    validateLedgerEvent(event);
    const e = pickLedgerEvent(event);
    this.writer();
    return this.atomically(() => {
      const institution = this.institution(e.institutionId);
      if (!institution) throw new Error(`append: institution ${e.institutionId} is not registered in this ledger`);
      if (!(institutionSignature instanceof Uint8Array) || !verifyEventSignature(e, institutionSignature, unhex(institution.publicKey, 'public_key', 32))) {
        throw new Error(`append: bad signature on the event of institution ${e.institutionId}, run ${e.runId}, round ${e.round}`);
      }
      const existing = this.existingEvent(e);
      if (existing) {
        if (sameEvent(existing.event, e)) return existing;
        throw new Error(
          `append: a different ${e.mode} event is already recorded for institution ${e.institutionId}, run ${e.runId}, round ${e.round} (seq ${existing.seq}); refusing to record it twice`,
        );
      }
      if (accountant) {
        const check = checkBudget(this.mechanisms(e.institutionId), [mechanismOf(e)], institution.budget, accountant);
        if (!check.allowed) {
          throw new BudgetExceededError(`append: institution ${e.institutionId}, run ${e.runId}, round ${e.round}: ${check.reason}`, check.projectedEpsilon, institution.budget);
        }
      }
      const row = this.chain<LedgerRow>((seq, prevHash) => ({ seq, event: e, institutionSignature: hex(institutionSignature), prevHash }), 'event');
      this.db
        .prepare(
          `INSERT INTO ledger_events (seq, institution_id, run_id, round, mode, sample_rate, noise_multiplier, steps, clip_norm, delta,
             model_version, time, institution_signature, prev_hash, row_hash, countersignature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(row.seq, e.institutionId, e.runId, e.round, e.mode, e.sampleRate, e.noiseMultiplier, e.steps, e.clipNorm, e.delta, e.modelVersion, e.time,
          row.institutionSignature, row.prevHash, row.rowHash, row.countersignature);
      return row;
    });
  }

  /** Records why an institution was not sampled / did not train in a round (chained like every row). One refusal
   * per (institution, run, round): recording it again returns the first. */
  recordRefusal(institutionId: string, runId: string, round: number, reason: string, projectedEpsilon: number): RefusalRow {
    if (typeof institutionId !== 'string' || institutionId.length === 0) throw new Error('recordRefusal: institutionId must be a non-empty string');
    if (typeof runId !== 'string' || runId.length === 0) throw new Error('recordRefusal: runId must be a non-empty string');
    if (!Number.isInteger(round) || round < 0 || round > 0xffffffff) throw new Error(`recordRefusal: round must be an integer in [0, 2^32), got ${round}`);
    if (typeof reason !== 'string' || reason.length === 0) throw new Error('recordRefusal: reason must be a non-empty string');
    if (typeof projectedEpsilon !== 'number' || Number.isNaN(projectedEpsilon) || projectedEpsilon < 0) {
      throw new Error(`recordRefusal: projectedEpsilon must be a non-negative number, got ${projectedEpsilon}`);
    }
    this.writer();
    return this.atomically(() => {
      const existing = this.db.prepare('SELECT * FROM ledger_refusals WHERE institution_id = ? AND run_id = ? AND round = ?').get(institutionId, runId, round) as Row | undefined;
      if (existing) return toRefusalRow(existing);
      const row = this.chain<RefusalRow>(
        (seq, prevHash) => ({ seq, institutionId, runId, round, reason, projectedEpsilon, time: this.now().toISOString(), prevHash }),
        'refusal',
      );
      this.db
        .prepare('INSERT INTO ledger_refusals (seq, institution_id, run_id, round, reason, projected_epsilon, time, prev_hash, row_hash, countersignature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(row.seq, row.institutionId, row.runId, row.round, row.reason, row.projectedEpsilon, row.time, row.prevHash, row.rowHash, row.countersignature);
      return row;
    });
  }

  /** Event rows in chain order. */
  events(filter?: LedgerFilter): LedgerRow[] {
    const { where, params } = filterClause(filter);
    return (this.db.prepare(`SELECT * FROM ledger_events ${where} ORDER BY seq`).all(...params) as Row[]).map(toLedgerRow);
  }

  refusals(filter?: LedgerFilter): RefusalRow[] {
    const { where, params } = filterClause(filter);
    return (this.db.prepare(`SELECT * FROM ledger_refusals ${where} ORDER BY seq`).all(...params) as Row[]).map(toRefusalRow);
  }

  private budgetOf(institutionId: string): PrivacyBudget {
    const institution = this.institution(institutionId);
    if (!institution) throw new Error(`institution ${institutionId} is not registered in this ledger`);
    return institution.budget;
  }

  private mechanisms(institutionId: string, runId?: string): MechanismEvent[] {
    return this.events({ institutionId, runId }).map((r) => mechanismOf(r.event));
  }

  /** ε spent by an institution: ALL its events (optionally of one run) composed by the accountant at the
   * institution's budget δ. Never a sum of per-event ε's. */
  spent(institutionId: string, accountant: Accountant, opts: { runId?: string } = {}): SpentEpsilon {
    const { delta: budgetDelta } = this.budgetOf(institutionId);
    const rows = this.events({ institutionId, runId: opts.runId });
    const { epsilon, order } = composedEpsilon(rows.map((r) => mechanismOf(r.event)), budgetDelta, accountant);
    // Each event's δ above the budget's is the explicit charge of its noise sampler's cut tail
    // (privacy/discretisation-cost.ts, charged at the budget's ε, which the composed ε never passes): the
    // charges add to the δ the composition is stated at.
    let delta = budgetDelta;
    for (const r of rows) delta += Math.max(0, r.event.delta - budgetDelta);
    delta = Math.min(delta, 1);
    return order === undefined ? { epsilon, delta } : { epsilon, delta, order };
  }

  /** ε the institution would have spent if `extraEvents` were added to all its recorded events. */
  projected(institutionId: string, extraEvents: readonly MechanismEvent[], accountant: Accountant): number {
    const { delta } = this.budgetOf(institutionId);
    return composedEpsilon([...this.mechanisms(institutionId), ...extraEvents], delta, accountant).epsilon;
  }

  /** Further rounds of `perRoundEvent` that keep the institution within its budget. */
  roundsLeft(institutionId: string, perRoundEvent: MechanismEvent | readonly MechanismEvent[], accountant: Accountant, maxRounds = 10000): number {
    return projectedRoundsLeft(this.mechanisms(institutionId), perRoundEvent, this.budgetOf(institutionId), accountant, maxRounds);
  }

  /** Per registered institution (optionally one): ε spent, δ, budget, remaining, projected rounds left, events. */
  summary(filter: LedgerFilter | undefined, accountant: Accountant): InstitutionSummary[] {
    const institutions = this.institutions().filter((i) => filter?.institutionId === undefined || i.institutionId === filter.institutionId);
    return institutions.map((institution) => {
      const id = institution.institutionId;
      const events = this.events({ institutionId: id, runId: filter?.runId });
      const all = this.mechanisms(id);
      const shown = composedEpsilon(events.map((r) => mechanismOf(r.event)), institution.budget.delta, accountant);
      const total = filter?.runId === undefined ? shown.epsilon : composedEpsilon(all, institution.budget.delta, accountant).epsilon;
      const nextRound = nextRoundOf(this.events({ institutionId: id }));
      const summary: InstitutionSummary = {
        institutionId: id,
        publicKey: institution.publicKey,
        accountant: accountant.kind,
        epsilon: shown.epsilon,
        delta: institution.budget.delta,
        epsilonTotal: total,
        budget: institution.budget,
        remaining: Math.max(0, institution.budget.epsilon - total),
        projectedRoundsLeft: nextRound.length ? projectedRoundsLeft(all, nextRound, institution.budget, accountant) : null,
        events,
        refusals: this.refusals({ institutionId: id, runId: filter?.runId }),
      };
      if (shown.order !== undefined) summary.order = shown.order;
      return summary;
    });
  }

  /**
   * Checks the whole chain; names the first bad row's seq. Never throws on a damaged file. With `receipts`
   * (heads of this ledger signed by its countersigner and held by the other party), also fails when the ledger
   * no longer holds a row a receipt names: the tail was truncated to an older head, the rows were wiped, or the
   * chain was rebuilt without a row. Receipts for other ledgers (another key) are skipped; when receipts are
   * given and none is for this ledger's key, verification fails (the ledger was replaced, or the wrong file).
   */
  verify(opts: { countersignerPublicKey?: Uint8Array; receipts?: readonly LedgerReceipt[] } = {}): VerifyResult {
    const chain = this.verifyChain(opts);
    if (!chain.ok || opts.receipts === undefined) return chain;
    const key = hex(this.countersignerPublicKey);
    const mine = opts.receipts.filter((r) => r.ledgerKey === key);
    if (mine.length === 0) {
      return { ok: false, badRow: 0, reason: `none of the ${opts.receipts.length} receipts is for this ledger's countersigner ${key.slice(0, 16)}… (a ledger replaced under another key, or receipts of another ledger)` };
    }
    for (const receipt of [...mine].sort((a, b) => b.seq - a.seq)) {
      try {
        validateReceipt(receipt);
      } catch (error) {
        return { ok: false, badRow: receipt.seq, reason: `receipt for seq ${receipt.seq}: ${(error as Error).message}` };
      }
      if (receipt.seq > chain.rows) {
        return {
          ok: false, badRow: receipt.seq,
          reason: `row ${receipt.seq} is missing: a receipt signed by this ledger's key (held by the other party, for ${receipt.subject}) names head seq ${receipt.seq}, hash ${receipt.hash.slice(0, 16)}…, but the ledger holds ${chain.rows} rows (tail truncated to an older head, or wiped)`,
        };
      }
      const actual = this.rowHashAt(receipt.seq);
      if (actual !== receipt.hash) {
        return {
          ok: false, badRow: receipt.seq,
          reason: `row ${receipt.seq} does not match the receipt signed by this ledger's key (hash ${receipt.hash.slice(0, 16)}…, found ${String(actual).slice(0, 16)}…): the ledger was rewritten or re-chained after the receipt`,
        };
      }
    }
    return chain;
  }

  private verifyChain(opts: { countersignerPublicKey?: Uint8Array }): VerifyResult {
    const key = this.countersignerPublicKey;
    if (opts.countersignerPublicKey && hex(opts.countersignerPublicKey) !== hex(key)) {
      return { ok: false, badRow: 0, reason: `ledger_meta names countersigner ${hex(key)}, not the trusted key ${hex(opts.countersignerPublicKey)}` };
    }
    let rows: AnyRow[];
    try {
      rows = [
        ...(this.db.prepare('SELECT * FROM ledger_institutions').all() as Row[]).map((r) => ({ kind: 'institution' as const, row: toInstitutionRow(r) })),
        ...(this.db.prepare('SELECT * FROM ledger_events').all() as Row[]).map((r) => ({ kind: 'event' as const, row: toLedgerRow(r) })),
        ...(this.db.prepare('SELECT * FROM ledger_refusals').all() as Row[]).map((r) => ({ kind: 'refusal' as const, row: toRefusalRow(r) })),
      ];
    } catch (error) {
      return { ok: false, badRow: 0, reason: `cannot read the ledger tables: ${(error as Error).message}` };
    }
    rows.sort((a, b) => a.row.seq - b.row.seq);
    const keys = new Map<string, Uint8Array>();
    let prev = genesisHash(key);
    for (let i = 0; i < rows.length; i++) {
      const entry = rows[i];
      const expected = i + 1;
      const seq = entry.row.seq;
      if (seq !== expected) {
        if (seq < expected) return { ok: false, badRow: seq, reason: `row ${seq} appears more than once (inserted row)` };
        return { ok: false, badRow: expected, reason: `row ${expected} is missing (the next row found is ${seq})` };
      }
      const where = `row ${seq} (${entry.kind})`;
      try {
        if (entry.row.prevHash !== hex(prev)) return { ok: false, badRow: seq, reason: `${where}: prev_hash does not match ${seq === 1 ? 'the genesis hash of the countersigner key' : `row ${seq - 1}`} (deleted, inserted or reordered rows, or a replaced key)` };
        if (entry.kind === 'event') validateLedgerEvent(entry.row.event);
        const rowHash = rowHashOf(entry, prev);
        if (entry.row.rowHash !== hex(rowHash)) return { ok: false, badRow: seq, reason: `${where}: row_hash does not match its contents (altered row)` };
        if (!verifySignature(key, countersignBytes(rowHash), unhex(entry.row.countersignature, 'countersignature', 64))) {
          return { ok: false, badRow: seq, reason: `${where}: bad countersignature` };
        }
        if (entry.kind === 'institution') {
          const known = keys.get(entry.row.institutionId);
          if (known && hex(known) !== entry.row.publicKey) return { ok: false, badRow: seq, reason: `${where}: institution ${entry.row.institutionId} changes its public key` };
          keys.set(entry.row.institutionId, unhex(entry.row.publicKey, 'public_key', 32));
        } else if (entry.kind === 'event') {
          const institutionKey = keys.get(entry.row.event.institutionId);
          if (!institutionKey) return { ok: false, badRow: seq, reason: `${where}: institution ${entry.row.event.institutionId} has no key registered before this row` };
          if (!verifyEventSignature(entry.row.event, unhex(entry.row.institutionSignature, 'institution_signature', 64), institutionKey)) {
            return { ok: false, badRow: seq, reason: `${where}: bad institution signature` };
          }
        }
        prev = rowHash;
      } catch (error) {
        return { ok: false, badRow: seq, reason: `${where}: ${(error as Error).message}` };
      }
    }
    const last = rows.length;
    const headSeq = this.meta('head_seq');
    if (headSeq === undefined) {
      if (last === 0) return { ok: true, rows: 0, headHash: hex(prev) };
      return { ok: false, badRow: last, reason: 'ledger_meta has no head although rows exist' };
    }
    if (Number(headSeq) !== last) {
      const n = Number(headSeq);
      return n > last
        ? { ok: false, badRow: last + 1, reason: `rows ${last + 1}..${n} are missing (the head says ${n} rows)` }
        : { ok: false, badRow: n + 1, reason: `row ${n + 1} lies beyond the countersigned head (${n} rows)` };
    }
    try {
      if (this.meta('head_hash') !== hex(prev) || !verifySignature(key, headBytes(last, prev), unhex(this.meta('head_signature') ?? '', 'head_signature', 64))) {
        return { ok: false, badRow: last, reason: `row ${last}: the countersigned head does not match the last row` };
      }
    } catch (error) {
      return { ok: false, badRow: last, reason: `head: ${(error as Error).message}` };
    }
    return { ok: true, rows: last, headHash: hex(prev) };
  }

  /** Event rows as CSV (header + one line per event, chain order). */
  exportCsv(filter?: LedgerFilter): string {
    const lines = [CSV_COLUMNS.join(',')];
    for (const r of this.events(filter)) {
      const e = r.event;
      lines.push(
        [r.seq, e.institutionId, e.runId, e.round, e.mode, e.sampleRate, e.noiseMultiplier, e.steps, e.clipNorm, e.delta, e.modelVersion, e.time,
          r.institutionSignature, r.prevHash, r.rowHash, r.countersignature].map(csvCell).join(','),
      );
    }
    return lines.join('\n') + '\n';
  }
}
