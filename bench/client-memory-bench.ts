// clientMemoryMB1MRows: peak resident memory of a process that loads a 1M-row × 30-feature CSV of the
// card-fraud shape as an institution does (schema, streaming loader, split, scaling). The load runs in a
// child process of its own so that its peak is not this process's. Goal: ≤ 400 MB.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { benchScriptArgs } from './bench-paths.ts';
import { SAMPLE_SCHEMA, writeCardFraudCsv } from './card-fraud-csv.ts';
import { roundTo } from './statistics.ts';

export interface ClientLoadReport {
  rows: number;
  train: number;
  validation: number;
  dim: number;
  positives: number;
  seconds: number;
  peakRssMB: number;
}

/** Loads `csv` in a fresh node process as the client does; its report (peak RSS in MB among it). */
export async function loadInChildProcess(csv: string, schema = SAMPLE_SCHEMA): Promise<ClientLoadReport> {
  const { stdout } = await promisify(execFile)(process.execPath, [...benchScriptArgs('client-load-child'), csv, schema], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').pop()!) as ClientLoadReport;
}

export async function benchClientMemory(o: { rows?: number } = {}): Promise<Record<string, number>> {
  const rows = o.rows ?? 1_000_000;
  const dir = mkdtempSync(join(tmpdir(), 'dpfed-client-memory-'));
  try {
    const csv = join(dir, 'card-fraud.csv');
    await writeCardFraudCsv(csv, rows);
    const report = await loadInChildProcess(csv);
    if (report.rows !== rows) throw new Error(`the loader read ${report.rows} rows of ${rows}`);
    return {
      // the key of the goal is the 1M-row figure; a --quick run reports its smaller load under another name
      [rows === 1_000_000 ? 'clientMemoryMB1MRows' : 'clientMemoryMB']: roundTo(report.peakRssMB, 0),
      clientMemoryRows: rows,
      clientMemoryCsvMB: roundTo(statSync(csv).size / 2 ** 20, 0),
      clientLoadSeconds: roundTo(report.seconds, 1),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
