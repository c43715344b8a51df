// The database the console reads: a coordinator database or an institution's own ledger file, opened
// read-only (alongside a running coordinator in WAL mode). Everything computed from the ledger (the report,
// the verification, the burn-down curves) is cached under the database's version: the chain head plus
// SQLite's data_version, which changes whenever another connection commits. So a page costs one
// composition per institution only after the ledger changed, and a tampered file is re-verified
// (in a worker thread: console/chain-verifier.ts).
import Database from 'better-sqlite3';
import { makeAccountant, type AccountantKind } from '@dpfed/privacy/accountant';
import { composedEpsilon } from '@dpfed/privacy/budget';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { ledgerReport, type LedgerReport, type LedgerReportOptions } from '@dpfed/privacy/ledger-report';
import { ChainVerifier } from './chain-verifier.ts';

export interface BurnDownPoint {
  /** 1-based index of the event in the institution's chain order (one event per round and mode). */
  event: number;
  runId: string;
  round: number;
  /** ε composed over the institution's events up to and including this one. */
  epsilon: number;
  /** budget ε − epsilon, never below 0. */
  remaining: number;
}

export interface ReceiptsTable {
  table: string;
  columns: string[];
  rows: Record<string, unknown>[];
}

/** Most points a burn-down curve is composed at (the last event is always one of them). */
const BURN_DOWN_POINTS = 60;
const CACHE_ENTRIES = 64;

export class LedgerSource {
  readonly path: string;
  readonly db: Database.Database;
  readonly ledger: PrivacyLedger;
  /** The whole chain checked (hashes, order, every signature and countersignature, the signed head), in a worker. */
  readonly verifier: ChainVerifier;
  private cacheVersion = '';
  private readonly cache = new Map<string, unknown>();

  constructor(path: string) {
    this.path = path;
    this.db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      this.ledger = new PrivacyLedger(this.db);
    } catch (error) {
      this.db.close();
      throw new Error(`${path}: ${(error as Error).message}`);
    }
    this.verifier = new ChainVerifier(path, () => this.version());
  }

  async close(): Promise<void> {
    await this.verifier.close();
    this.db.close();
  }

  /** Changes whenever the file changes: another connection's commit, or a new chain head. */
  version(): string {
    const dataVersion = this.db.pragma('data_version', { simple: true }) as number;
    const head = this.ledger.head();
    return `${dataVersion}:${head.seq}:${head.hash}`;
  }

  /** `compute()` once per database version and key (a promise is cached as it is, so async work runs once). */
  cached<T>(key: string, compute: () => T): T {
    const version = this.version();
    if (version !== this.cacheVersion) {
      this.cache.clear();
      this.cacheVersion = version;
    }
    if (this.cache.has(key)) return this.cache.get(key) as T;
    const value = compute();
    if (this.cache.size >= CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, value);
    return value;
  }

  hasTable(name: string): boolean {
    return this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
  }

  /** The same report `dpfed ledger --json` prints (privacy/ledger-report.ts). */
  report(opts: LedgerReportOptions): LedgerReport {
    return this.cached(`report:${opts.accountant}:${opts.institutionId ?? ''}:${opts.runId ?? ''}`, () => ledgerReport(this.ledger, opts));
  }

  /** ε spent by one institution after each of its events (all runs, chain order), composed by the accountant
   * at up to BURN_DOWN_POINTS evenly spread events; the last point equals the report's epsilonTotal. */
  burnDown(institutionId: string, accountant: AccountantKind): BurnDownPoint[] {
    return this.cached(`burn:${accountant}:${institutionId}`, () => {
      const institution = this.ledger.institution(institutionId);
      if (!institution) return [];
      const events = this.ledger.events({ institutionId });
      const mechanisms = events.map((r) => ({ sampleRate: r.event.sampleRate, noiseMultiplier: r.event.noiseMultiplier, steps: r.event.steps }));
      const kept = new Set<number>();
      for (let i = 1; i <= BURN_DOWN_POINTS; i++) kept.add(Math.ceil((i * events.length) / BURN_DOWN_POINTS));
      const acc = makeAccountant(accountant);
      const points: BurnDownPoint[] = [];
      for (const n of [...kept].filter((n) => n > 0).sort((a, b) => a - b)) {
        const { epsilon } = composedEpsilon(mechanisms.slice(0, n), institution.budget.delta, acc);
        const e = events[n - 1].event;
        points.push({ event: n, runId: e.runId, round: e.round, epsilon, remaining: Math.max(0, institution.budget.epsilon - epsilon) });
      }
      return points;
    });
  }

  /** Anchored head receipts, when this ledger has a receipts table (any table whose name contains
   * "receipt"); its rows are shown as stored, newest first. */
  receipts(limit = 200): ReceiptsTable | null {
    const row = this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%receipt%' ORDER BY name LIMIT 1").get() as { name: string } | undefined;
    if (!row) return null;
    const table = row.name;
    const quoted = `"${table.replace(/"/g, '""')}"`;
    const columns = (this.db.prepare(`PRAGMA table_info(${quoted})`).all() as { name: string }[]).map((c) => c.name);
    const rows = this.db.prepare(`SELECT * FROM ${quoted} ORDER BY rowid DESC LIMIT ?`).all(limit) as Record<string, unknown>[];
    return { table, columns, rows };
  }
}
