// `dpfed coordinator` and `dpfed client` as processes with --metrics-port 0: the coordinator prints
// the bound metrics address, which serves /metrics, /healthz and /readyz; both write JSON log lines
// with their context to stderr; bad observability flags exit 2 naming the flag.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { bankSlices, DPFED_BIN, ROOT, tempDir, writeBankCsv } from './helpers/federation-fixture.ts';
import { fetchText, parseMetrics, sample } from './helpers/prometheus-text.ts';

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function dpfed(...args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DPFED_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 90_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

let dir: string;
beforeAll(() => {
  dir = tempDir('dpfed-observability-cli-');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dpfed observability flags', () => {
  it('coordinator --metrics-port 0 prints its metrics address; both sides log JSON lines with their context', async () => {
    const ROWS = 417;
    const csv = join(dir, 'bank-a.csv');
    writeBankCsv(csv, bankSlices(1, { rowsPerBank: ROWS, seed: 'observability-cli' })[0]);
    const identity = join(dir, 'bank-a.identity');
    const { publicKey } = JSON.parse((await dpfed('identity', 'init', '--identity', identity, '--json')).stdout) as { publicKey: string };
    const enrolFile = join(dir, 'enrol.json');
    writeFileSync(enrolFile, JSON.stringify([{ institution: 'bank-a', publicKey }]));

    const coordinator = spawn(
      process.execPath,
      [
        DPFED_BIN,
        'coordinator',
        '--insecure',
        '--port',
        '0',
        '--db',
        join(dir, 'fed.sqlite'),
        '--json',
        '--rounds',
        '2',
        '--min-clients',
        '1',
        '--privacy',
        'off',
        '--aggregation',
        'plain',
        '--model',
        'logistic',
        '--enrol-file',
        enrolFile,
        '--metrics-port',
        '0',
        '--log-format',
        'json',
        '--exit-when-done=false',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let coordinatorErr = '';
    coordinator.stderr!.on('data', (d: Buffer) => (coordinatorErr += d.toString()));
    const exited = new Promise<number | null>((resolve) => coordinator.on('exit', resolve));
    const lines = createInterface({ input: coordinator.stdout! });
    const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
      lines.on('line', (line) => {
        const event = JSON.parse(line) as Record<string, unknown>;
        if (event.event === 'listening') resolve(event);
      });
      void exited.then((code) => reject(new Error(`coordinator exited ${code}: ${coordinatorErr}`)));
    });
    try {
      expect(String(listening.metrics)).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const metricsUrl = String(listening.metrics);
      const root = metricsUrl.replace(/\/metrics$/, '');
      const before = await fetchText(metricsUrl);
      expect(before.status).toBe(200);
      expect(before.contentType).toContain('text/plain');
      expect(sample(parseMetrics(before.body), 'dpfed_rounds_committed_total')).toBe(0);
      expect((await fetchText(`${root}/healthz`)).status).toBe(200);
      expect((await fetchText(`${root}/readyz`)).status).toBe(200);
      expect((await fetchText(`${root}/nothing`)).status).toBe(404);

      const client = await dpfed(
        'client',
        '--insecure',
        '--coordinator',
        `127.0.0.1:${listening.port}`,
        '--institution',
        'bank-a',
        '--data',
        csv,
        '--identity',
        identity,
        '--ledger',
        join(dir, 'bank-a.ledger.sqlite'),
        '--metrics-port',
        '0',
        '--log-format',
        'json',
        '--json',
      );
      expect(client.code, client.stderr).toBe(0);
      // the coordinator keeps serving after the run (--exit-when-done=false)
      const after = parseMetrics((await fetchText(metricsUrl)).body);
      expect(sample(after, 'dpfed_rounds_committed_total')).toBe(2);
      expect(sample(after, 'dpfed_round_participants')).toBe(1);
      expect(sample(after, 'dpfed_bytes_received_total')).toBeGreaterThan(0);
      expect(sample(after, 'dpfed_bytes_sent_total')).toBeGreaterThan(0);
      coordinator.kill('SIGTERM');
      expect(await exited).toBe(130);

      const clientRecords = client.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(clientRecords.length).toBeGreaterThan(3);
      for (const r of clientRecords) expect(r.institution).toBe('bank-a');
      expect(String(clientRecords.find((r) => r.metrics)?.metrics)).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      expect(clientRecords.filter((r) => r.msg === 'update sent').map((r) => [r.round, r.phase, typeof r.run])).toEqual([
        [1, 'train', 'string'],
        [2, 'train', 'string'],
      ]);
      // no row count of the institution (all rows, or a split of them) in any field
      for (const r of clientRecords) for (const [k, v] of Object.entries(r)) if (k !== 'time' && k !== 'pid') expect(JSON.stringify(v)).not.toMatch(new RegExp(`(^|[^0-9.])${ROWS}([^0-9.]|$)`));

      const coordinatorRecords = coordinatorErr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(coordinatorRecords.filter((r) => r.msg === 'round committed').map((r) => [r.round, r.phase, r.run])).toEqual([
        [1, 'commit', listening.runId],
        [2, 'commit', listening.runId],
      ]);
    } finally {
      if (coordinator.exitCode === null) coordinator.kill('SIGTERM');
    }
  }, 120_000);

  it('bad observability flags exit 2 naming the flag; --help lists them', async () => {
    const usage = await Promise.all([
      dpfed('coordinator', '--insecure', '--db', join(dir, 'x.sqlite'), '--metrics-port', '70000'),
      dpfed('coordinator', '--insecure', '--db', join(dir, 'x.sqlite'), '--log-level', 'loud'),
      dpfed('client', '--insecure', '--coordinator', '127.0.0.1:1', '--institution', 'bank-a', '--data', 'x.csv', '--log-format', 'xml'),
    ]);
    expect(usage.map((u) => u.code)).toEqual([2, 2, 2]);
    expect(usage[0].stderr).toContain('--metrics-port');
    expect(usage[1].stderr).toContain('--log-level');
    expect(usage[2].stderr).toContain('--log-format');
    const help = await dpfed('coordinator', '--help');
    for (const flag of ['--metrics-port', '--metrics-host', '--log-level', '--log-format']) expect(help.stdout + help.stderr).toContain(flag);
  }, 60_000);
});
