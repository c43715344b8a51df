// The coordinator's state in one SQLite file (better-sqlite3): runs, institutions, rounds, participants,
// metrics, each round's global model, and the enrolment allow-list (read and written by enrolment.ts).
// A round is committed in one transaction, so a restart with the same file resumes at the last committed
// round and nothing is counted twice.
import { reusePreparedStatements } from '@dpfed/privacy/prepared-statements';
import Database from 'better-sqlite3';
import { describeStorageFault, StorageFaultError } from './storage-fault.ts';

export interface RunRow {
  id: string;
  createdAt: string;
  configJson: string;
  modelSpecJson: string;
  status: 'running' | 'done' | 'stopped';
  roundsPlanned: number;
}

export interface ParticipantRecord {
  institutionId: string;
  status: 'reported' | 'dropped' | 'rejected' | 'declined' | 'refused';
  numExamples: number;
  detail: string;
}

export interface RoundCommit {
  runId: string;
  round: number;
  modelVersion: number;
  startedAt: string;
  seconds: number;
  aggregation: string;
  model: Float32Array;
  strategyState: Uint8Array | null;
  participants: ParticipantRecord[];
  /** name → value for the global model ('' institution) and per institution. */
  metrics: { institutionId: string; name: string; value: number }[];
}

export interface RoundRow {
  round: number;
  modelVersion: number;
  participants: number;
  seconds: number;
  committedAt: string;
  aggregation: string;
  auc: number | null;
  loss: number | null;
  accuracy: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, created_at TEXT NOT NULL, config_json TEXT NOT NULL, model_spec_json TEXT NOT NULL,
  status TEXT NOT NULL, rounds_planned INTEGER NOT NULL, finished_at TEXT);
CREATE TABLE IF NOT EXISTS institutions (
  id TEXT PRIMARY KEY, public_key BLOB NOT NULL, budget_epsilon REAL, budget_delta REAL,
  num_train_examples INTEGER, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rounds (
  run_id TEXT NOT NULL REFERENCES runs(id), round INTEGER NOT NULL, model_version INTEGER NOT NULL,
  started_at TEXT NOT NULL, committed_at TEXT NOT NULL, seconds REAL NOT NULL, participants INTEGER NOT NULL,
  aggregation TEXT NOT NULL, PRIMARY KEY (run_id, round));
CREATE TABLE IF NOT EXISTS participants (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, institution_id TEXT NOT NULL, status TEXT NOT NULL,
  num_examples INTEGER NOT NULL, detail TEXT NOT NULL, PRIMARY KEY (run_id, round, institution_id));
CREATE TABLE IF NOT EXISTS metrics (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, institution_id TEXT NOT NULL, name TEXT NOT NULL, value REAL,
  PRIMARY KEY (run_id, round, institution_id, name));
CREATE TABLE IF NOT EXISTS models (
  run_id TEXT NOT NULL, version INTEGER NOT NULL, parameter_bytes INTEGER NOT NULL, strategy_state BLOB,
  PRIMARY KEY (run_id, version));
CREATE TABLE IF NOT EXISTS model_parts (
  run_id TEXT NOT NULL, version INTEGER NOT NULL, part INTEGER NOT NULL, bytes BLOB NOT NULL,
  PRIMARY KEY (run_id, version, part));
CREATE TABLE IF NOT EXISTS round_failures (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, at TEXT NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scheduling_refusals (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, institution_id TEXT NOT NULL, at TEXT NOT NULL,
  reason TEXT NOT NULL, projected_epsilon REAL, budget_epsilon REAL);
CREATE TABLE IF NOT EXISTS enrolments (
  institution_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, status TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
  enrolled_at TEXT NOT NULL, revoked_at TEXT);
`;

/** A model is stored in parts of at most this many bytes (SQLite refuses very large single values). */
const MODEL_PART_BYTES = 64 * 1024 * 1024;

function blobOf(values: Float32Array, from = 0, to = values.byteLength): Buffer {
  return Buffer.from(values.buffer, values.byteOffset + from, to - from);
}

/** How long a write waits for another connection's lock before SQLITE_BUSY. */
export const STORE_BUSY_TIMEOUT_MS = 1000;

export class CoordinatorStore {
  readonly db: Database.Database;

  constructor(path: string) {
    let db: Database.Database | undefined;
    try {
      db = reusePreparedStatements(new Database(path));
      // 64 KiB pages (takes effect when the file is created): each round writes its whole model as blobs,
      // and a 4 MB blob commits in about 4 ms with 64 KiB pages against 25 ms with the default 4 KiB.
      db.pragma('page_size = 65536');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      // a write waits this long for another connection's lock (e.g. `dpfed enrol` in another process)
      // before failing with SQLITE_BUSY; short, since a wait blocks the coordinator's event loop
      db.pragma(`busy_timeout = ${STORE_BUSY_TIMEOUT_MS}`);
      db.exec(SCHEMA);
    } catch (error) {
      db?.close();
      const fault = describeStorageFault(path, error);
      throw fault ? new StorageFaultError(`cannot open the coordinator database ${fault}`, error) : error;
    }
    this.db = db;
  }

  /** The database file's path (as opened). */
  get path(): string {
    return this.db.name;
  }

  close(): void {
    this.db.close();
  }

  createRun(run: RunRow): void {
    this.db
      .prepare('INSERT INTO runs (id, created_at, config_json, model_spec_json, status, rounds_planned) VALUES (?, ?, ?, ?, ?, ?)')
      .run(run.id, run.createdAt, run.configJson, run.modelSpecJson, run.status, run.roundsPlanned);
  }

  getRun(id: string): RunRow | undefined {
    const row = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as Record<string, unknown> | undefined;
    return row ? toRun(row) : undefined;
  }

  /** The most recent run that has not finished, if any. */
  latestUnfinishedRun(): RunRow | undefined {
    const row = this.db.prepare("SELECT * FROM runs WHERE status = 'running' ORDER BY created_at DESC, rowid DESC LIMIT 1").get() as Record<string, unknown> | undefined;
    return row ? toRun(row) : undefined;
  }

  setRunStatus(id: string, status: RunRow['status'], roundsPlanned?: number): void {
    this.db
      .prepare("UPDATE runs SET status = ?, rounds_planned = COALESCE(?, rounds_planned), finished_at = CASE WHEN ? = 'running' THEN NULL ELSE ? END WHERE id = ?")
      .run(status, roundsPlanned ?? null, status, new Date().toISOString(), id);
  }

  upsertInstitution(id: string, publicKey: Uint8Array, budget: { epsilon: number; delta: number } | null, declaredExamples: number | null): void {
    const now = new Date().toISOString();
    this.db
      .prepare(`INSERT INTO institutions (id, public_key, budget_epsilon, budget_delta, num_train_examples, first_seen, last_seen)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET budget_epsilon = excluded.budget_epsilon, budget_delta = excluded.budget_delta,
                  num_train_examples = excluded.num_train_examples, last_seen = excluded.last_seen`)
      .run(id, Buffer.from(publicKey), budget?.epsilon ?? null, budget?.delta ?? null, declaredExamples, now, now);
  }

  institutionKey(id: string): Uint8Array | undefined {
    const row = this.db.prepare('SELECT public_key FROM institutions WHERE id = ?').get(id) as { public_key: Buffer } | undefined;
    return row ? new Uint8Array(row.public_key) : undefined;
  }

  /** The last committed round of a run (0 when none). */
  lastCommittedRound(runId: string): number {
    const row = this.db.prepare('SELECT MAX(round) AS r FROM rounds WHERE run_id = ?').get(runId) as { r: number | null };
    return row.r ?? 0;
  }

  /** The global model of a version and the strategy state saved with it. */
  model(runId: string, version: number): { parameters: Float32Array; strategyState: Uint8Array | null } | undefined {
    const row = this.db.prepare('SELECT parameter_bytes, strategy_state FROM models WHERE run_id = ? AND version = ?').get(runId, version) as
      | { parameter_bytes: number; strategy_state: Buffer | null }
      | undefined;
    if (!row) return undefined;
    const parameters = new Float32Array(row.parameter_bytes / 4);
    const bytes = new Uint8Array(parameters.buffer);
    let offset = 0;
    for (const part of this.db.prepare('SELECT bytes FROM model_parts WHERE run_id = ? AND version = ? ORDER BY part').iterate(runId, version) as Iterable<{ bytes: Buffer }>) {
      if (offset + part.bytes.length > bytes.length) throw new Error(`model ${runId} v${version}: stored parts exceed ${row.parameter_bytes} bytes`);
      bytes.set(part.bytes, offset);
      offset += part.bytes.length;
    }
    if (offset !== bytes.length) throw new Error(`model ${runId} v${version}: stored parts hold ${offset} of ${row.parameter_bytes} bytes`);
    return { parameters, strategyState: row.strategy_state ? new Uint8Array(row.strategy_state) : null };
  }

  private writeModel(runId: string, version: number, parameters: Float32Array, strategyState: Uint8Array | null): void {
    this.db
      .prepare('INSERT INTO models (run_id, version, parameter_bytes, strategy_state) VALUES (?, ?, ?, ?)')
      .run(runId, version, parameters.byteLength, strategyState ? Buffer.from(strategyState) : null);
    const part = this.db.prepare('INSERT INTO model_parts (run_id, version, part, bytes) VALUES (?, ?, ?, ?)');
    for (let from = 0, index = 0; from < parameters.byteLength || index === 0; from += MODEL_PART_BYTES, index++) {
      part.run(runId, version, index, blobOf(parameters, from, Math.min(parameters.byteLength, from + MODEL_PART_BYTES)));
    }
  }

  saveInitialModel(runId: string, parameters: Float32Array): void {
    this.db.transaction(() => {
      if (!this.db.prepare('SELECT 1 FROM models WHERE run_id = ? AND version = 0').get(runId)) this.writeModel(runId, 0, parameters, null);
    })();
  }

  /**
   * Commits a round: round row, participants, metrics and model together, plus whatever `extra` writes
   * (the ledger's events) inside the same transaction. Refuses a round that is already committed.
   */
  commitRound(commit: RoundCommit, extra?: () => void): void {
    const tx = this.db.transaction(() => {
      const exists = this.db.prepare('SELECT 1 FROM rounds WHERE run_id = ? AND round = ?').get(commit.runId, commit.round);
      if (exists) throw new Error(`round ${commit.round} of run ${commit.runId} is already committed`);
      this.db
        .prepare('INSERT INTO rounds (run_id, round, model_version, started_at, committed_at, seconds, participants, aggregation) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
        .run(
          commit.runId,
          commit.round,
          commit.modelVersion,
          commit.startedAt,
          new Date().toISOString(),
          commit.seconds,
          commit.participants.filter((p) => p.status === 'reported').length,
          commit.aggregation,
        );
      const participant = this.db.prepare('INSERT INTO participants (run_id, round, institution_id, status, num_examples, detail) VALUES (?, ?, ?, ?, ?, ?)');
      for (const p of commit.participants) participant.run(commit.runId, commit.round, p.institutionId, p.status, p.numExamples, p.detail);
      const metric = this.db.prepare('INSERT INTO metrics (run_id, round, institution_id, name, value) VALUES (?, ?, ?, ?, ?)');
      for (const m of commit.metrics) metric.run(commit.runId, commit.round, m.institutionId, m.name, Number.isFinite(m.value) ? m.value : null);
      this.writeModel(commit.runId, commit.modelVersion, commit.model, commit.strategyState);
      extra?.();
    });
    tx();
  }

  recordRoundFailure(runId: string, round: number, reason: string): void {
    this.db.prepare('INSERT INTO round_failures (run_id, round, at, reason) VALUES (?, ?, ?, ?)').run(runId, round, new Date().toISOString(), reason);
  }

  roundFailures(runId: string): { round: number; reason: string }[] {
    return this.db.prepare('SELECT round, reason FROM round_failures WHERE run_id = ? ORDER BY rowid').all(runId) as { round: number; reason: string }[];
  }

  recordSchedulingRefusal(runId: string, round: number, institutionId: string, reason: string, projectedEpsilon: number | null, budgetEpsilon: number | null): void {
    this.db
      .prepare('INSERT INTO scheduling_refusals (run_id, round, institution_id, at, reason, projected_epsilon, budget_epsilon) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(runId, round, institutionId, new Date().toISOString(), reason, projectedEpsilon, budgetEpsilon);
  }

  schedulingRefusals(runId: string): { round: number; institutionId: string; reason: string }[] {
    return this.db.prepare('SELECT round, institution_id AS institutionId, reason FROM scheduling_refusals WHERE run_id = ? ORDER BY rowid').all(runId) as {
      round: number;
      institutionId: string;
      reason: string;
    }[];
  }

  rounds(runId: string): RoundRow[] {
    const rows = this.db
      .prepare(`SELECT r.round, r.model_version AS modelVersion, r.participants, r.seconds, r.committed_at AS committedAt, r.aggregation,
                  (SELECT value FROM metrics m WHERE m.run_id = r.run_id AND m.round = r.round AND m.institution_id = '' AND m.name = 'auc') AS auc,
                  (SELECT value FROM metrics m WHERE m.run_id = r.run_id AND m.round = r.round AND m.institution_id = '' AND m.name = 'loss') AS loss,
                  (SELECT value FROM metrics m WHERE m.run_id = r.run_id AND m.round = r.round AND m.institution_id = '' AND m.name = 'accuracy') AS accuracy
                FROM rounds r WHERE r.run_id = ? ORDER BY r.round`)
      .all(runId) as RoundRow[];
    return rows;
  }

  participants(runId: string, round: number): ParticipantRecord[] {
    return this.db
      .prepare('SELECT institution_id AS institutionId, status, num_examples AS numExamples, detail FROM participants WHERE run_id = ? AND round = ? ORDER BY institution_id')
      .all(runId, round) as ParticipantRecord[];
  }

  metric(runId: string, round: number, institutionId: string, name: string): number | null {
    const row = this.db.prepare('SELECT value FROM metrics WHERE run_id = ? AND round = ? AND institution_id = ? AND name = ?').get(runId, round, institutionId, name) as
      | { value: number | null }
      | undefined;
    return row?.value ?? null;
  }
}

function toRun(row: Record<string, unknown>): RunRow {
  return {
    id: row.id as string,
    createdAt: row.created_at as string,
    configJson: row.config_json as string,
    modelSpecJson: row.model_spec_json as string,
    status: row.status as RunRow['status'],
    roundsPlanned: row.rounds_planned as number,
  };
}
