// The ε ledger: an append-only, hash-chained record of privacy events in SQLite.
//
// The coordinator keeps it inside its own SQLite file (append() joins the caller's open transaction as a
// savepoint, so an event commits with its round); each institution keeps its own local ledger file with the
// same class, countersigned by its own key.
//
// Tables, the chain and what each row stores: ledger-schema.ts and ledger-hashing.ts; row types:
// ledger-rows.ts; verification: ledger-verification.ts; what an institution has spent and has left:
// ledger-summary.ts; CSV export: ledger-csv.ts.
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
import type { Accountant } from './accountant.ts';
import { checkBudget, projectedRoundsLeft, validateBudget, composedEpsilon, type PrivacyBudget } from './budget.ts';
import type { IdentityKey } from './identity.ts';
import { canonicalEventBytes, pickLedgerEvent, validateLedgerEvent, verifyEventSignature, type LedgerEvent } from './ledger-event.ts';
import { eventsCsv } from './ledger-csv.ts';
import { countersignBytes, genesisHash, headBytes, hex, rowHashOf, unhex } from './ledger-hashing.ts';
import {
  EVENT_COLUMNS,
  eventColumnValues,
  filterClause,
  toInstitutionRow,
  toLedgerRow,
  toRefusalRow,
  type AnyRow,
  type ChainFields,
  type InstitutionRow,
  type LedgerDatabase,
  type LedgerFilter,
  type LedgerRow,
  type RefusalRow,
  type Row,
} from './ledger-rows.ts';
import { FORMAT, ROW_TABLES, SCHEMA } from './ledger-schema.ts';
import { mechanismOf, summariseInstitution, type InstitutionSummary } from './ledger-summary.ts';
import { verifyLedger, type VerifyResult } from './ledger-verification.ts';
import type { MechanismEvent } from './mechanism-event.ts';
import { signReceipt, type LedgerReceipt } from './receipts.ts';

export type { ChainFields, InstitutionRow, LedgerDatabase, LedgerFilter, LedgerRow, LedgerStatement, RefusalRow } from './ledger-rows.ts';
export type { VerifyResult } from './ledger-verification.ts';
export type { InstitutionSummary } from './ledger-summary.ts';
export { CSV_COLUMNS } from './ledger-csv.ts';
export { genesisHash } from './ledger-hashing.ts';

/** appendWithinBudget() refused: the event would take the institution past its budget (nothing was appended). */
export class BudgetExceededError extends Error {
  constructor(
    message: string,
    readonly projectedEpsilon: number,
    readonly budget: PrivacyBudget,
  ) {
    super(message);
    this.name = 'BudgetExceededError';
  }
}

export interface SpentEpsilon {
  epsilon: number;
  delta: number;
  order?: number;
}

export interface LedgerOptions {
  /** The key that countersigns rows. Without it the ledger is read-only (nothing is created or appended). */
  countersigner?: IdentityKey;
  /** Clock for registration and refusal times (tests). */
  now?: () => Date;
}

function sameEvent(a: LedgerEvent, b: LedgerEvent): boolean {
  return Buffer.from(canonicalEventBytes(a)).equals(Buffer.from(canonicalEventBytes(b)));
}

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
    const row = this.db.prepare('SELECT * FROM ledger_events WHERE institution_id = ? AND run_id = ? AND round = ? AND mode = ?').get(e.institutionId, e.runId, e.round, e.mode) as Row | undefined;
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
      this.db.prepare(`INSERT INTO ledger_events (${EVENT_COLUMNS.join(', ')}) VALUES (${EVENT_COLUMNS.map(() => '?').join(', ')})`).run(...eventColumnValues(row));
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
      const row = this.chain<RefusalRow>((seq, prevHash) => ({ seq, institutionId, runId, round, reason, projectedEpsilon, time: this.now().toISOString(), prevHash }), 'refusal');
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
    return this.spentOf(this.events({ institutionId, runId: opts.runId }), this.budgetOf(institutionId).delta, accountant);
  }

  /** spent() as it stood after each of `rounds` of a run: the run's events of that round and earlier, composed. */
  spentThroughRounds(institutionId: string, accountant: Accountant, runId: string, rounds: readonly number[]): SpentEpsilon[] {
    const rows = this.events({ institutionId, runId });
    const { delta } = this.budgetOf(institutionId);
    return rounds.map((round) =>
      this.spentOf(
        rows.filter((r) => r.event.round <= round),
        delta,
        accountant,
      ),
    );
  }

  private spentOf(rows: readonly LedgerRow[], budgetDelta: number, accountant: Accountant): SpentEpsilon {
    const { epsilon, order } = composedEpsilon(
      rows.map((r) => mechanismOf(r.event)),
      budgetDelta,
      accountant,
    );
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
      return summariseInstitution(
        institution,
        { shown: this.events({ institutionId: id, runId: filter?.runId }), all: this.events({ institutionId: id }), runFiltered: filter?.runId !== undefined },
        this.refusals({ institutionId: id, runId: filter?.runId }),
        accountant,
      );
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
    return verifyLedger({ db: this.db, countersignerPublicKey: this.countersignerPublicKey, meta: (key) => this.meta(key), rowHashAt: (seq) => this.rowHashAt(seq) }, opts);
  }

  /** Event rows as CSV (header + one line per event, chain order). */
  exportCsv(filter?: LedgerFilter): string {
    return eventsCsv(this.events(filter));
  }
}
