// dpfed sim's engine end to end (worker threads, real federations over the in-memory and gRPC
// transports, real SQLite ledgers): shards merged equal the unsharded sweep, every result scored on the
// common test rows is scored on the same rows, --resume runs only what is missing, the transport changes
// no figure, and DP settings report the ε each institution's own ledger holds.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SweepSpec } from '@dpfed/simulations/sim-grid';
import { loadSimInputs } from '@dpfed/simulations/sim-inputs';
import type { SimData } from '@dpfed/simulations/sim-data';
import { mergeRows, readResults, writeResults } from '@dpfed/simulations/sim-results-file';
import type { SimRecord } from '@dpfed/simulations/sim-result';
import { runSweep } from '@dpfed/simulations/sim-sweep';
import { tempDir } from './helpers/federation-fixture.ts';

const dir = tempDir('dpfed-sim-sweep-');
let data: SimData;
let identity: string;

const spec = (o: Partial<SweepSpec> = {}): SweepSpec => ({
  data: identity,
  split: 'column:bank',
  institutions: [4],
  testShare: 0.25,
  epsilons: [null],
  delta: 1e-5,
  rounds: [2],
  dropout: [0, 0.25],
  models: ['logistic'],
  seeds: [1, 2],
  privacy: ['record'],
  aggregation: ['plain', 'secagg'],
  trainingArgs: ['--local-steps', '20', '--batch-size', '32', '--learning-rate', '0.1'],
  ...o,
});

const withoutSeconds = (rows: SimRecord[]) => rows.map(({ seconds: _, ...r }) => r);

beforeAll(async () => {
  ({ data, identity } = await loadSimInputs({ data: 'synthetic:fraud:4000:3', labelColumn: 'label', institutions: 4 }));
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dpfed sim sweep', () => {
  let whole: SimRecord[];

  it('runs every setting of the grid with the baselines, all scored on the same test rows per seed', async () => {
    const summary = await runSweep({ data, spec: spec(), outDir: join(dir, 'whole'), workers: 2, transport: 'memory' });
    expect(summary.failed).toEqual([]);
    expect(summary.settings).toBe(12);
    expect(summary.run).toBe(12);
    whole = readResults(join(dir, 'whole'));
    expect(summary.rows).toBe(whole.length);
    // per seed: centralised 1 row, local 4 institutions × 2 scorings, federated 4 settings
    expect(whole.length).toBe(2 * (1 + 8 + 4));
    for (const seed of [1, 2]) {
      const onTest = whole.filter((r) => r.seed === seed && r.scoredOn === 'test');
      expect(new Set(onTest.map((r) => r.baseline))).toEqual(new Set(['centralised', 'local', 'federated']));
      expect(new Set(onTest.map((r) => r.scoredRows)).size).toBe(1);
      const own = whole.filter((r) => r.seed === seed && r.scoredOn === 'own');
      expect(own.map((r) => r.institution).sort()).toEqual(['bank-1', 'bank-2', 'bank-3', 'bank-4']);
      expect(new Set(own.map((r) => r.scoredRows)).size).toBe(4);
      expect(own.some((r) => r.scoredRows === onTest[0].scoredRows)).toBe(false);
    }
    expect(new Set(whole.filter((r) => r.scoredOn === 'test').map((r) => r.scoredRows)).size).toBe(2);
    for (const r of whole.filter((x) => x.baseline === 'federated')) {
      expect(r.aucPerRound.length).toBe(2);
      expect(r.aucPerRound[1]).toBe(r.auc);
      expect(r.epsilonSpent).toEqual({});
    }
    // an institution alone may hold a handful of frauds; the federation (2 short rounds) and the pooled rows
    // do better than chance, the pooled rows most (privacy off: these figures are the same on every run)
    for (const r of whole.filter((x) => x.baseline === 'federated')) expect(r.auc).toBeGreaterThan(0.55);
    for (const r of whole.filter((x) => x.baseline === 'centralised')) expect(r.auc).toBeGreaterThan(0.75);
  });

  it('gives the same rows when run as 3 shards and merged', async () => {
    const shards = [];
    for (let index = 0; index < 3; index++) {
      const out = join(dir, `shard-${index}`);
      const summary = await runSweep({ data, spec: spec(), outDir: out, shard: { index, count: 3 }, workers: 2, transport: 'memory' });
      expect(summary.settings).toBe(4);
      shards.push(readResults(out));
    }
    const ids = shards.map((rows) => new Set(rows.map((r) => r.settingId)));
    for (let a = 0; a < 3; a++) for (let b = a + 1; b < 3; b++) expect([...ids[a]].filter((id) => ids[b].has(id))).toEqual([]);
    expect(withoutSeconds(mergeRows(shards))).toEqual(withoutSeconds(whole));
  });

  it('--resume runs only the settings without rows, and refuses to overwrite results without it', async () => {
    const out = join(dir, 'resume');
    const kept = whole.filter((r) => r.baseline !== 'federated' || r.aggregation === 'plain');
    writeResults(out, kept);
    await expect(runSweep({ data, spec: spec(), outDir: out, workers: 2, transport: 'memory' })).rejects.toThrow(/already holds results.csv; pass --resume/);
    const ran: string[] = [];
    const summary = await runSweep({ data, spec: spec(), outDir: out, resume: true, workers: 2, transport: 'memory', onJob: (job) => ran.push(job.id) });
    expect(summary.skipped).toBe(8);
    expect(summary.run).toBe(4);
    expect(new Set(ran)).toEqual(new Set(whole.filter((r) => r.aggregation === 'secagg').map((r) => r.settingId)));
    expect(withoutSeconds(readResults(out))).toEqual(withoutSeconds(whole));
    const again = await runSweep({ data, spec: spec(), outDir: out, resume: true, workers: 2, transport: 'memory' });
    expect(again.run).toBe(0);
    expect(again.skipped).toBe(12);
  });

  it('over gRPC commits the same models as in memory (privacy off): identical figures', async () => {
    const out = join(dir, 'grpc');
    const summary = await runSweep({ data, spec: spec({ seeds: [1] }), outDir: out, workers: 2, transport: 'grpc' });
    expect(summary.failed).toEqual([]);
    const grpcRows = readResults(out).filter((r) => r.baseline === 'federated');
    expect(grpcRows.length).toBe(4);
    const memory = new Map(whole.map((r) => [r.settingId, r]));
    for (const r of grpcRows) {
      const m = memory.get(r.settingId)!;
      expect([r.auc, r.prAuc, r.accuracy, r.aucPerRound]).toEqual([m.auc, m.prAuc, m.accuracy, m.aucPerRound]);
    }
  });

  it('records the ε each institution spent from its own ledger, within the target', async () => {
    const out = join(dir, 'dp');
    const summary = await runSweep({
      data,
      spec: spec({ seeds: [1], epsilons: [2], aggregation: ['secagg'], dropout: [0.25], privacy: ['record', 'client'] }),
      outDir: out,
      workers: 2,
      transport: 'memory',
    });
    expect(summary.failed).toEqual([]);
    const dp = readResults(out).filter((r) => r.privacy !== 'off');
    expect(dp.map((r) => r.privacy).sort()).toEqual(['client', 'record']);
    for (const r of dp) {
      expect(r.epsilon).toBe(2);
      expect(Object.keys(r.epsilonSpent).sort()).toEqual(['bank-1', 'bank-2', 'bank-3', 'bank-4']);
      // ε after each committed round: one figure per round, never falling, the last one what was spent in all
      // (under client-level DP a release recorded for a round the coordinator then refused counts in all only)
      for (const [id, perRound] of Object.entries(r.epsilonPerRound)) {
        expect(perRound).toHaveLength(r.aucPerRound.length);
        for (let k = 1; k < perRound.length; k++) expect(perRound[k]).toBeGreaterThanOrEqual(perRound[k - 1]);
        if (r.privacy === 'record') expect(perRound.at(-1)).toBe(r.epsilonSpent[id]);
        else expect(perRound.at(-1)).toBeLessThanOrEqual(r.epsilonSpent[id]);
      }
      for (const spent of Object.values(r.epsilonSpent)) expect(spent).toBeLessThanOrEqual(2 * 1.0001);
      expect(Math.max(...Object.values(r.epsilonSpent))).toBeGreaterThan(0);
    }
    // client level: a round with an institution missing carries less distributed noise, so the run's ε
    // target can stop the run before its planned rounds (the coordinator refuses the round that would pass it)
    expect(dp.find((r) => r.privacy === 'client')!.aucPerRound.length).toBeGreaterThanOrEqual(1);
    // record level: an institution that sat a round out spent less than one that trained in both
    const record = dp.find((r) => r.privacy === 'record')!;
    expect(record.aucPerRound.length).toBe(2);
    for (const spent of Object.values(record.epsilonSpent)) expect(spent).toBeGreaterThan(0);
    expect(new Set(Object.values(record.epsilonSpent).map((e) => e.toFixed(6))).size).toBeGreaterThan(1);
  });
});
