// The coordinator's own tables (coordinator/coordinator-store.ts: runs, rounds, participants, metrics,
// round_failures, scheduling_refusals), read with plain queries on the console's read-only connection.
// An institution's ledger file has none of them: `available` is false and every list is empty.
import type Database from 'better-sqlite3';
import type { RoundRow } from '@dpfed/coordinator/coordinator-store';

export interface RunSummary {
  id: string;
  createdAt: string;
  status: string;
  roundsPlanned: number;
  roundsCommitted: number;
  participants: number;
  strategy: string;
  aggregation: string;
  privacyMode: string;
}

/** A committed round as the coordinator's store reads it, with the standard error of its AUC. */
export interface RoundMetrics extends RoundRow {
  /** Standard error of the global AUC, when the evaluation records an `auc_stderr` metric. */
  aucStderr: number | null;
}

export interface RoundDetail extends RoundMetrics {
  runId: string;
  startedAt: string;
  strategy: string;
  config: Record<string, unknown>;
  participantsList: { institutionId: string; status: string; numExamples: number; detail: string }[];
  metrics: { institutionId: string; name: string; value: number | null }[];
  failures: { at: string; reason: string }[];
  schedulingRefusals: { institutionId: string; at: string; reason: string; projectedEpsilon: number | null; budgetEpsilon: number | null }[];
}

const TABLES = ['runs', 'rounds', 'participants', 'metrics'];

function parseConfig(json: string): Record<string, unknown> {
  try {
    const value = JSON.parse(json) as unknown;
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const METRIC = (name: string) => `(SELECT value FROM metrics m WHERE m.run_id = r.run_id AND m.round = r.round AND m.institution_id = '' AND m.name = '${name}')`;

export class CoordinatorRecords {
  readonly available: boolean;
  private readonly optional: Set<string>;

  constructor(private readonly db: Database.Database) {
    const names = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name));
    this.available = TABLES.every((t) => names.has(t));
    this.optional = new Set(['round_failures', 'scheduling_refusals'].filter((t) => names.has(t)));
  }

  runs(): RunSummary[] {
    if (!this.available) return [];
    const rows = this.db
      .prepare(`SELECT id, created_at AS createdAt, status, rounds_planned AS roundsPlanned, config_json AS configJson,
                  (SELECT COUNT(*) FROM rounds r WHERE r.run_id = runs.id) AS roundsCommitted,
                  (SELECT COUNT(DISTINCT institution_id) FROM participants p WHERE p.run_id = runs.id) AS participants
                FROM runs ORDER BY created_at, rowid`)
      .all() as (Omit<RunSummary, 'strategy' | 'aggregation' | 'privacyMode'> & { configJson: string })[];
    return rows.map(({ configJson, ...r }) => {
      const config = parseConfig(configJson);
      const task = (config.task ?? {}) as { aggregation?: string; privacy?: { mode?: string } };
      return { ...r, strategy: String(config.strategy ?? '-'), aggregation: String(task.aggregation ?? '-'), privacyMode: String(task.privacy?.mode ?? '-') };
    });
  }

  rounds(runId: string): RoundMetrics[] {
    if (!this.available) return [];
    return this.db
      .prepare(`SELECT r.round, r.model_version AS modelVersion, r.participants, r.seconds, r.committed_at AS committedAt, r.aggregation,
                  ${METRIC('auc')} AS auc, ${METRIC('auc_stderr')} AS aucStderr, ${METRIC('loss')} AS loss, ${METRIC('accuracy')} AS accuracy
                FROM rounds r WHERE r.run_id = ? ORDER BY r.round`)
      .all(runId) as RoundMetrics[];
  }

  round(runId: string, round: number): RoundDetail | undefined {
    if (!this.available) return undefined;
    const run = this.db.prepare('SELECT config_json AS configJson FROM runs WHERE id = ?').get(runId) as { configJson: string } | undefined;
    const row = this.db
      .prepare(`SELECT r.round, r.model_version AS modelVersion, r.participants, r.seconds, r.committed_at AS committedAt, r.started_at AS startedAt, r.aggregation,
                  ${METRIC('auc')} AS auc, ${METRIC('auc_stderr')} AS aucStderr, ${METRIC('loss')} AS loss, ${METRIC('accuracy')} AS accuracy
                FROM rounds r WHERE r.run_id = ? AND r.round = ?`)
      .get(runId, round) as (RoundMetrics & { startedAt: string }) | undefined;
    if (!run || !row) return undefined;
    const config = parseConfig(run.configJson);
    return {
      ...row,
      runId,
      strategy: String(config.strategy ?? '-'),
      config,
      participantsList: this.db
        .prepare('SELECT institution_id AS institutionId, status, num_examples AS numExamples, detail FROM participants WHERE run_id = ? AND round = ? ORDER BY institution_id')
        .all(runId, round) as RoundDetail['participantsList'],
      metrics: this.db
        .prepare('SELECT institution_id AS institutionId, name, value FROM metrics WHERE run_id = ? AND round = ? ORDER BY institution_id, name')
        .all(runId, round) as RoundDetail['metrics'],
      failures: this.optional.has('round_failures')
        ? (this.db.prepare('SELECT at, reason FROM round_failures WHERE run_id = ? AND round = ? ORDER BY rowid').all(runId, round) as RoundDetail['failures'])
        : [],
      schedulingRefusals: this.optional.has('scheduling_refusals')
        ? (this.db
            .prepare(`SELECT institution_id AS institutionId, at, reason, projected_epsilon AS projectedEpsilon, budget_epsilon AS budgetEpsilon
                      FROM scheduling_refusals WHERE run_id = ? AND round = ? ORDER BY rowid`)
            .all(runId, round) as RoundDetail['schedulingRefusals'])
        : [],
    };
  }
}
