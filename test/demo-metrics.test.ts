// The operator's view of a running demo: `dpfed demo --metrics-port 0` prints the coordinator's metrics
// address, and /metrics there serves the named series while the federation runs (a real demo: coordinator
// and banks as processes over mutual TLS).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanUp, DPFED_BIN, tempDir } from './helpers/federation-fixture.ts';

let dir: string | undefined;
afterEach(async () => {
  await cleanUp({ institutions: [], coordinators: [], dir });
  dir = undefined;
});

const SERIES = [
  'dpfed_rounds_committed_total',
  'dpfed_rounds_failed_total',
  'dpfed_round_participants',
  'dpfed_round_phase_seconds',
  'dpfed_bytes_received_total',
  'dpfed_bytes_sent_total',
  'dpfed_dropouts_total',
  'dpfed_epsilon_spent',
  'dpfed_refused_requests_total',
];

describe('dpfed demo --metrics-port', () => {
  it('prints the metrics address, and /metrics serves every named series while the demo runs', async () => {
    dir = tempDir('dpfed-demo-metrics-');
    const demo = spawn(process.execPath, [DPFED_BIN, 'demo', '--db', join(dir, 'demo.sqlite'), '--rounds', '6', '--metrics-port', '0'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const exited = new Promise<number | null>((resolve) => demo.on('exit', resolve));
    try {
      const address = await new Promise<string>((resolve, reject) => {
        createInterface({ input: demo.stdout! }).on('line', (line) => {
          const m = /coordinator metrics at (http:\/\/[^ ]+\/metrics)/.exec(line);
          if (m) resolve(m[1]);
        });
        void exited.then((code) => reject(new Error(`the demo exited (${code}) before printing its metrics address`)));
      });
      let body = '';
      // the series exist from the start; poll until a round is counted too
      for (let i = 0; i < 200 && !/^dpfed_rounds_committed_total(\{[^}]*\})? [1-9]/m.test(body); i++) {
        body = await (await fetch(address)).text();
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const name of SERIES) expect(body, name).toMatch(new RegExp(`^# HELP ${name} `, 'm'));
      expect(body).toMatch(/^dpfed_rounds_committed_total(\{[^}]*\})? [1-9]/m);
      expect((await fetch(address.replace('/metrics', '/healthz'))).status).toBe(200);
      expect(await exited).toBe(0);
    } finally {
      if (demo.exitCode === null) demo.kill('SIGTERM');
    }
  }, 180_000);
});
