// `dpfed sim` as a user calls it: bad input refused with exit 2 and the flag named, a sweep's --json
// summary, and `dpfed sim merge` of two shards giving the rows of the whole sweep.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from 'dpfed/sim-command';
import { readResults } from '@dpfed/simulations/sim-results-file';
import { FRAUD_CSV, FRAUD_SCHEMA, ROOT, tempDir } from './helpers/federation-fixture.ts';

function dpfed(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', ['bin/dpfed.js', ...args], { cwd: ROOT, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Runs `dpfed sim ARGS` through the command's main in this process; its stdout and stderr are collected. */
async function simInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const writes = { stdout: process.stdout.write, stderr: process.stderr.write };
  process.stdout.write = ((chunk: string) => {
    out.stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => {
    out.stderr += chunk;
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(args), ...out };
  } finally {
    process.stdout.write = writes.stdout;
    process.stderr.write = writes.stderr;
  }
}

const dir = tempDir('dpfed-sim-cli-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A one-round logistic sweep without DP: the settings of a quick run, whatever the data. */
const QUICK = ['--epsilons', 'inf', '--rounds', '1', '--models', 'logistic', '--aggregation', 'plain', '--local-steps', '5', '--workers', '1'];

const SMALL = ['--data', 'synthetic:fraud:6000:5', '--institutions', '3', ...QUICK];

describe('dpfed sim', () => {
  it('refuses bad input with exit 2 and a message naming the flag', async () => {
    const existing = join(dir, 'existing');
    mkdirSync(existing);
    writeFileSync(join(existing, 'results.csv'), 'x\n');
    const cases: [string[], RegExp][] = [
      [['--out', dir], /--data is required/],
      [['--data', FRAUD_CSV], /--out is required/],
      [[...SMALL, '--epsilons', '0', '--out', dir], /--epsilons: expected positive numbers or inf, got "0"/],
      [[...SMALL, '--models', 'cnn', '--out', dir], /--models: expected logistic or mlp/],
      [[...SMALL, '--shard', '2/2', '--out', dir], /--shard: .*0-based/],
      [[...SMALL, '--rounds', '0', '--out', dir], /--rounds: expected positive integers/],
      [[...SMALL, '--privacy', 'local', '--out', dir], /--privacy: expected record\|client/],
      [[...SMALL, '--aggregation', 'ckks', '--out', dir], /--aggregation: expected plain\|secagg/],
      [[...SMALL, '--split', 'dirichlet:x', '--out', dir], /--split: dirichlet:ALPHA needs a positive ALPHA/],
      [[...SMALL, '--aggregation', 'secagg', '--dropout', '0.5', '--out', dir], /--dropout: 0.5 of 3 institutions leaves 1 per round; secure aggregation needs at least 3/],
      [[...SMALL, '--setting-timeout', '0', '--out', dir], /--setting-timeout: must be a positive number of seconds/],
      [[...SMALL, '--institutions', '0', '--out', dir], /--institutions: expected integers in 1\.\.1000, got "3,0"/],
      [[...SMALL, '--institutions', '3,5', '--out', dir], /--institutions: synthetic:fraud makes one bank per institution, so it takes one value, got "3,5"/],
      [['--data', FRAUD_CSV, '--split-column', 'Time', '--institutions', '3,5', '--out', dir], /--institutions: --split-column fixes the institutions \(one per value\), so it takes one value/],
      [['--data', FRAUD_CSV, '--institutions', '4,2', '--aggregation', 'secagg', '--out', dir], /--institutions: secure aggregation needs at least 3 institutions, the split gives 2/],
      [['--data', join(dir, 'missing.csv'), '--out', dir], /--data: cannot read/],
      [['--data', FRAUD_CSV, '--label-column', 'fraud', '--out', dir], /--label-column: "fraud" is not a column/],
      [['--data', FRAUD_CSV, '--schema', FRAUD_SCHEMA, '--split-column', 'Time', '--out', dir], /--schema: the columns of .* \(without the split column "Time"\) do not match/],
      [['--data', FRAUD_CSV, '--split-column', 'Time', '--split', 'iid', '--out', dir], /--split-column: the natural split replaces --split/],
      [['--data', 'synthetic:fraud', '--schema', FRAUD_SCHEMA, '--out', dir], /--schema: synthetic:fraud has its own public schema/],
      [[...SMALL, '--batch-size', '0', '--out', dir], /--batch-size: must be positive/],
      [[...SMALL, '--test-share', '0.001', '--out', dir], /--test-share: the 6 test rows hold only one class/],
      [[...SMALL, '--out', existing], /--out: .* already holds results.csv; pass --resume/],
      [['merge', '--out', dir], /SHARD_DIR: give at least one shard directory/],
      [['merge', '--out', dir, join(dir, 'nowhere')], /SHARD_DIR: .*nowhere has no results.csv/],
    ];
    // the command's main in this process (as bin/dpfed.js calls it), its stderr collected
    for (const [args, message] of cases) {
      const r = await simInProcess(args);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(message);
    }
    const spawned = await dpfed(['sim', '--epsilons', '0', '--out', dir, '--data', FRAUD_CSV]);
    expect(spawned.code).toBe(2);
    expect(spawned.stderr).toMatch(/--epsilons: expected positive numbers or inf/);
  });

  it('prints a --json summary, and merges shards into the rows of the whole sweep', async () => {
    const whole = await dpfed(['sim', ...SMALL, '--seeds', '2', '--json', '--out', join(dir, 'whole')]);
    expect(whole.code).toBe(0);
    const summary = JSON.parse(whole.stdout);
    expect(summary).toMatchObject({ settings: 6, run: 6, skipped: 0, failed: [], outDir: join(dir, 'whole'), rows: 2 * (1 + 6 + 1) });
    expect(summary.files.slice(0, 2)).toEqual([join(dir, 'whole', 'results.csv'), join(dir, 'whole', 'results.json')]);
    // the plots of the sweep (privacy off: no privacy-utility curve or ε burn-down), each a non-empty PNG
    const pngs = summary.files.filter((file: string) => file.endsWith('.png'));
    expect(pngs.map((file: string) => file.slice(file.lastIndexOf('/') + 1)).sort()).toEqual(['auc-per-round.png', 'federated-vs-local.png']);
    for (const png of pngs) expect(readFileSync(png).subarray(1, 4).toString()).toBe('PNG');
    expect(whole.stderr).toMatch(/sim 6\/6 settings · elapsed/);
    const federated = summary.bySetting.find((s: { baseline: string }) => s.baseline === 'federated');
    expect(federated).toMatchObject({ seeds: 2, privacy: 'off', epsilon: null });
    expect(federated.aucMean).toBeGreaterThan(0);
    expect(federated.aucCi95).toBeGreaterThan(0);
    for (const index of [0, 1]) {
      const shard = await dpfed(['sim', ...SMALL, '--seeds', '2', '--shard', `${index}/2`, '--out', join(dir, `shard-${index}`)]);
      expect(shard.code).toBe(0);
    }
    const merged = await dpfed(['sim', 'merge', '--json', '--out', join(dir, 'merged'), join(dir, 'shard-0'), join(dir, 'shard-1')]);
    expect(merged.code).toBe(0);
    expect(JSON.parse(merged.stdout)).toMatchObject({ shards: 2, rows: summary.rows, settings: 6 });
    const strip = (dirName: string) => readResults(join(dir, dirName)).map(({ seconds: _, ...r }) => r);
    expect(strip('merged')).toEqual(strip('whole'));
    const resumed = await dpfed(['sim', ...SMALL, '--seeds', '2', '--resume', '--json', '--out', join(dir, 'whole')]);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ settings: 6, run: 0, skipped: 6 });
  });

  it('sweeps a list of institution counts: the same rows dealt out to each, every baseline per count', async () => {
    const out = join(dir, 'counts');
    const r = await simInProcess(['--data', FRAUD_CSV, '--schema', FRAUD_SCHEMA, '--institutions', '2,3', ...QUICK, '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const rows = readResults(out);
    for (const count of [2, 3]) {
      const mine = rows.filter((row) => row.institutions === count);
      expect(mine.filter((row) => row.baseline === 'federated' && row.scoredOn === 'test')).toHaveLength(1);
      expect(mine.filter((row) => row.baseline === 'centralised' && row.scoredOn === 'test')).toHaveLength(1);
      // local-only: each institution alone, one row per institution scored on the common test rows
      expect(new Set(mine.filter((row) => row.baseline === 'local' && row.scoredOn === 'test').map((row) => row.institution)).size).toBe(count);
    }
    // every setting is scored on the same held-out rows, whatever the count
    expect(new Set(rows.filter((row) => row.scoredOn === 'test').map((row) => row.scoredRows)).size).toBe(1);
  });

  it('--setting-timeout stops a setting that runs past it, records it as failed and goes on with the next on a fresh thread', async () => {
    const out = join(dir, 'timeout');
    const r = await simInProcess([...SMALL, '--rounds', '3', '--setting-timeout', '0.001', '--json', '--out', out]);
    expect(r.code).toBe(1);
    const summary = JSON.parse(r.stdout);
    // every setting of the sweep (centralised, local, federated) takes longer than 1 ms
    expect(summary.failed.length).toBe(summary.settings);
    expect(summary.settings).toBeGreaterThanOrEqual(3);
    for (const f of summary.failed) expect(f.error).toBe('the setting ran longer than its time limit of 0.001 s (--setting-timeout) and was stopped');
    expect(r.stderr).toMatch(/failed: the setting ran longer than its time limit of 0\.001 s/);
    expect(readResults(out)).toEqual([]);
    // a limit the settings meet changes nothing
    const ok = await simInProcess([...SMALL, '--setting-timeout', '600', '--json', '--out', join(dir, 'timeout-ok')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).failed).toEqual([]);
  });

  it('--emit-k8s-job writes an Indexed Job running the sweep as shards, without running it', async () => {
    const file = join(dir, 'sim-job.yaml');
    const r = await dpfed(['sim', '--data', '/data/fraud.csv', '--epsilons', '1,inf', '--seeds', '3', '--out', '/results', '--emit-k8s-job', file, '--k8s-shards', '5', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ manifest: file, shards: 5, outDir: '/results' });
    const yaml = readFileSync(file, 'utf8');
    expect(yaml).toContain('completionMode: Indexed');
    expect(yaml).toContain('completions: 5');
    expect(yaml).toMatch(
      /- sim\n\s+- --data\n\s+- \/data\/fraud.csv\n\s+- --epsilons\n\s+- 1,inf\n\s+- --seeds\n\s+- "?3"?\n\s+- --resume\n\s+- --shard=\$\(JOB_COMPLETION_INDEX\)\/5\n\s+- --out=\/results\/shard-\$\(JOB_COMPLETION_INDEX\)/,
    );
    const bad = await dpfed(['sim', '--data', 'x.csv', '--out', 'relative', '--emit-k8s-job', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--out: outDir must be an absolute path/);
  });

  it('--help names every input and shows the bundled-data sweep as its example', async () => {
    const r = await dpfed(['sim', '--help']);
    expect(r.code).toBe(0);
    for (const flag of [
      '--data',
      '--split-column',
      '--split',
      '--epsilons',
      '--rounds',
      '--dropout',
      '--models',
      '--seeds',
      '--privacy',
      '--aggregation',
      '--shard',
      '--resume',
      '--workers',
      '--transport',
      '--json',
      '--test-share',
    ]) {
      expect(r.stdout).toContain(flag);
    }
    expect(r.stdout).toContain('--data data/creditcard_fraud_ulb_sample.csv --label-column label --schema data/creditcard_fraud_ulb_sample.schema.json');
    expect(r.stdout).toContain('inferred from the pooled rows');
  });
});
