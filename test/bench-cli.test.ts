// `dpfed bench` as a user calls it: group selection, and a refused group name (not an empty result).
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;

function dpfed(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', ['bin/dpfed.js', ...args], { cwd: ROOT, timeout: 120_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('dpfed bench', () => {
  it('refuses an unknown group with exit 2, naming it and the groups there are', async () => {
    const r = await dpfed(['bench', '--only', 'rounds,round']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown group "round"');
    expect(r.stderr).toContain('rounds, aggregation, training');
    expect(r.stdout).toBe('');
  });

  it('runs the groups named, comma-separated or repeated, and prints one JSON object with their keys', async () => {
    for (const args of [
      ['--only', 'accountant,aggregation'],
      ['--only', 'accountant', '--only', 'aggregation'],
    ]) {
      const r = await dpfed(['bench', ...args]);
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(Object.keys(out).sort()).toEqual(['accountantMs1e5Steps', 'aggregationGBps', 'aggregationVsPlainSum', 'calibrateMs', 'machine', 'plainSumGBps']);
      expect(out.aggregationVsPlainSum).toBeGreaterThan(0);
    }
  });
});
