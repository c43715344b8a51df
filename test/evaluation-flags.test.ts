// The private-evaluation flags as a user meets them: `--help` lists them, and a bad value exits with code
// 2 and a message naming the flag, before any database or port is opened.
import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from './helpers/federation-fixture.ts';

const ROOT = new URL('..', import.meta.url).pathname;

function dpfed(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', ['bin/dpfed.js', ...args], { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('private-evaluation flags', () => {
  it('--help of the coordinator and the demo lists the evaluation flags', async () => {
    for (const command of ['coordinator', 'demo']) {
      const r = await dpfed([command, '--help']);
      expect(r.code).toBe(0);
      for (const flag of ['--evaluate-every', '--evaluation-epsilon', '--evaluation-data', '--evaluation-label-column', '--bins']) expect(r.stdout, `${command} --help`).toContain(flag);
    }
  });

  it('refuses bad values with exit 2 naming the flag', async () => {
    const dir = tempDir('dpfed-eval-flags-');
    const db = join(dir, 'never.sqlite');
    try {
      const cases: [string[], RegExp][] = [
        [['--privacy', 'record', '--epsilon', '1', '--evaluation-epsilon', '1'], /--evaluation-epsilon: 1 must be below --epsilon 1/],
        [['--privacy', 'record', '--bins', '31'], /--bins: must be even under private evaluation/],
        [['--privacy', 'off', '--evaluation-epsilon', '0.5'], /--evaluation-epsilon: only meaningful with --privacy record/],
        [['--evaluate-every', '0'], /--evaluate-every/],
        [['--evaluation-epsilon', '-1'], /--evaluation-epsilon/],
        [['--evaluation-data', join(dir, 'missing.csv')], /--evaluation-data: .*missing\.csv/],
        [['--evaluation-data', join(dir, 'missing.csv'), '--evaluation-epsilon', '0.3'], /--evaluation-epsilon: with --evaluation-data/],
      ];
      for (const [args, message] of cases) {
        const r = await dpfed(['coordinator', '--insecure', '--port', '0', '--db', db, ...args]);
        expect(r.code, args.join(' ')).toBe(2);
        expect(r.stderr).toMatch(message);
      }
      expect(existsSync(db)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
