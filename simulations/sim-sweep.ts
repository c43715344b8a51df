// A sweep of `dpfed sim`: expands the grid, keeps this shard's slice, skips what --resume finds already
// in results.csv, runs the rest on worker threads, and rewrites results.csv / results.json after every
// finished job (so an interrupted sweep resumes where it stopped).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BackendName } from '@dpfed/client/tf-backend';
import type { TransportName } from './federation-transport.ts';
import { expandGrid, shardJobs, type SimJob, type SweepSpec } from './sim-grid.ts';
import type { SimData } from './sim-data.ts';
import { parseSplit } from './institution-split.ts';
import { partitionData } from './sim-partition.ts';
import { mergeRows, readResults, RESULTS_CSV, writeResults } from './sim-results-file.ts';
import type { SimRecord } from './sim-result.ts';
import { summariseBySetting, type SettingSummary } from './sim-summary.ts';
import { runOnWorkers } from './sim-worker-pool.ts';

export interface SweepOptions {
  data: SimData;
  spec: SweepSpec;
  outDir: string;
  shard?: { index: number; count: number };
  resume?: boolean;
  workers?: number;
  /** A setting still running after this many milliseconds is stopped and failed (default: no limit). */
  settingTimeoutMs?: number;
  transport: TransportName;
  /** The TensorFlow.js backend the institutions train with (default wasm). */
  backend?: BackendName;
  /** Told the jobs about to run, before the first starts. */
  onStart?: (jobs: SimJob[]) => void;
  /** Told each finished job (rows empty and `error` set when it failed). */
  onJob?: (job: SimJob, rows: SimRecord[], error?: string) => void;
}

export interface SweepSummary {
  /** Settings in this shard's slice of the grid. */
  settings: number;
  run: number;
  skipped: number;
  failed: { settingId: string; error: string }[];
  refused: string[];
  outDir: string;
  files: string[];
  rows: number;
  seconds: number;
  bySetting: SettingSummary[];
}

export class ExistingResultsError extends Error {}

export async function runSweep(o: SweepOptions): Promise<SweepSummary> {
  const started = performance.now();
  const grid = expandGrid(o.spec);
  const jobs = o.shard ? shardJobs(grid.jobs, o.shard) : grid.jobs;
  if (!o.resume && existsSync(join(o.outDir, RESULTS_CSV))) {
    throw new ExistingResultsError(`${o.outDir} already holds ${RESULTS_CSV}; pass --resume to continue that sweep, or choose another --out`);
  }
  // every partition the jobs need, checked here once (a bad split or test share is refused before any thread starts)
  const seen = new Set<string>();
  for (const { setting: s, testShare } of jobs) {
    const key = JSON.stringify([s.split, s.institutions, testShare, s.seed]);
    if (seen.has(key)) continue;
    seen.add(key);
    partitionData(o.data, { split: parseSplit(s.split), institutions: s.institutions, testShare, seed: String(s.seed) });
  }
  let rows = o.resume ? readResults(o.outDir) : [];
  const done = new Set(rows.map((r) => r.settingId));
  const todo = jobs.filter((j) => !done.has(j.id));
  o.onStart?.(todo);
  const failures = await runOnWorkers(todo, {
    workers: o.workers,
    settingTimeoutMs: o.settingTimeoutMs,
    data: o.data,
    transport: o.transport,
    backend: o.backend,
    onRows: (job, jobRows) => {
      rows = mergeRows([rows, jobRows]);
      writeResults(o.outDir, rows);
      o.onJob?.(job, jobRows);
    },
    onError: (job, error) => o.onJob?.(job, [], error),
  });
  const files = writeResults(o.outDir, rows);
  const inShard = new Set(jobs.map((j) => j.id));
  return {
    settings: jobs.length,
    run: todo.length - failures.length,
    skipped: jobs.length - todo.length,
    failed: failures.map((f) => ({ settingId: f.job.id, error: f.error })),
    refused: grid.refused,
    outDir: o.outDir,
    files,
    rows: rows.length,
    seconds: (performance.now() - started) / 1000,
    bySetting: summariseBySetting(rows.filter((r) => inShard.has(r.settingId))),
  };
}
