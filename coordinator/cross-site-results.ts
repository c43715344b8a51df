// The stored outcome of a run's cross-site evaluation (coordinator/cross-site-evaluation.ts): one row per
// institution asked, in the coordinator's SQLite, table cross_site_evaluations. Each row is that
// institution's own score of the run's final model on its own validation rows: the AUC of the noisy
// histograms it released alone (privacy record; with the AUC's standard error from that noise) or of its
// exact histograms (privacy off), or why it gave none (declined, with its reason; dropped; rejected).
import type Database from 'better-sqlite3';

export type CrossSiteStatus = 'evaluated' | 'declined' | 'dropped' | 'rejected';

export interface CrossSiteRow {
  institutionId: string;
  status: CrossSiteStatus;
  /** The AUC of the institution's own histograms; null when it gave none, or when they hold one class only. */
  auc: number | null;
  /** Private (noisy) release: the AUC's standard error due to the noise; null for exact histograms. */
  aucStderr: number | null;
  /** Exact release (privacy off): the validation rows counted; null under privacy (row counts are not released). */
  examples: number | null;
  /** Private release: the noise multiplier of the institution's recorded "cross-site" event; null otherwise. */
  noiseMultiplier: number | null;
  /** Why there is no figure (a decline's reason and detail, a drop, a refusal); '' when evaluated. */
  detail: string;
}

export interface CrossSiteSummary {
  runId: string;
  /** The round whose committed model was scored (the run's final model). */
  round: number;
  /** True when the releases were noisy (privacy record). */
  private: boolean;
  recordedAt: string;
  institutions: CrossSiteRow[];
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cross_site_evaluations (
  run_id TEXT NOT NULL, round INTEGER NOT NULL, institution_id TEXT NOT NULL, status TEXT NOT NULL,
  auc REAL, auc_stderr REAL, examples INTEGER, noise_multiplier REAL, private INTEGER NOT NULL,
  detail TEXT NOT NULL, recorded_at TEXT NOT NULL, PRIMARY KEY (run_id, institution_id));
`;

/** Creates the table when absent (a writable coordinator database). */
export function ensureCrossSiteTable(db: Database.Database): void {
  db.exec(SCHEMA);
}

/** Replaces the run's cross-site results with `summary`, in one transaction. */
export function saveCrossSiteResults(db: Database.Database, summary: CrossSiteSummary): void {
  ensureCrossSiteTable(db);
  const insert = db.prepare(`INSERT INTO cross_site_evaluations (run_id, round, institution_id, status, auc, auc_stderr, examples, noise_multiplier, private, detail, recorded_at)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  db.transaction(() => {
    db.prepare('DELETE FROM cross_site_evaluations WHERE run_id = ?').run(summary.runId);
    for (const r of summary.institutions) {
      insert.run(summary.runId, summary.round, r.institutionId, r.status, r.auc, r.aucStderr, r.examples, r.noiseMultiplier, summary.private ? 1 : 0, r.detail, summary.recordedAt);
    }
  })();
}

const finiteOrNull = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

/** The run's cross-site results, or null when it has none (also on a database from before the table, opened read-only). */
export function crossSiteResults(db: Database.Database, runId: string): CrossSiteSummary | null {
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cross_site_evaluations'").get()) return null;
  const rows = db.prepare('SELECT * FROM cross_site_evaluations WHERE run_id = ? ORDER BY institution_id').all(runId) as Record<string, unknown>[];
  if (rows.length === 0) return null;
  return {
    runId,
    round: rows[0].round as number,
    private: rows[0].private === 1,
    recordedAt: rows[0].recorded_at as string,
    institutions: rows.map((r) => ({
      institutionId: r.institution_id as string,
      status: r.status as CrossSiteStatus,
      auc: finiteOrNull(r.auc),
      aucStderr: finiteOrNull(r.auc_stderr),
      examples: finiteOrNull(r.examples),
      noiseMultiplier: finiteOrNull(r.noise_multiplier),
      detail: r.detail as string,
    })),
  };
}

/** One line per institution, for the coordinator's and the demo's output. */
export function describeCrossSite(summary: CrossSiteSummary): string[] {
  return summary.institutions.map((r) => {
    if (r.status !== 'evaluated') return `  ${r.institutionId}: no score (${r.status}${r.detail ? `: ${r.detail}` : ''})`;
    const auc = r.auc === null ? 'AUC undefined (one class only)' : `AUC ${r.auc.toFixed(4)}`;
    return `  ${r.institutionId}: ${auc}${r.aucStderr !== null ? ` ± ${r.aucStderr.toFixed(4)} (its own noisy histograms, noise multiplier ${r.noiseMultiplier?.toFixed(3)})` : ' (exact: privacy off)'}`;
  });
}
