import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('..', import.meta.url).pathname;

function dpfed(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('node', ['bin/dpfed.js', ...args], { cwd: ROOT, timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const vectors = JSON.parse(readFileSync('/work/shared/reference/dp_vectors.json', 'utf8')) as {
  epsilon: { sampleRate: number; noiseMultiplier: number; steps: number; delta: number; conversion: string; epsilon: number }[];
};

describe('dpfed privacy', () => {
  it('epsilon --json prints the contract shape', async () => {
    const v = vectors.epsilon[0];
    const r = await dpfed(['privacy', 'epsilon', '--event', `${v.sampleRate}:${v.noiseMultiplier}:${v.steps}`, '--delta', String(v.delta), '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.accountant).toBe('rdp');
    expect(out.delta).toBe(v.delta);
    expect(typeof out.order).toBe('number');
    expect(out.events).toEqual([{ sampleRate: v.sampleRate, noiseMultiplier: v.noiseMultiplier, steps: v.steps }]);
    // the default grid is finer than tf_privacy's: at most the reference, within 2 %
    expect(out.epsilon).toBeLessThanOrEqual(v.epsilon + 1e-9);
    expect(out.epsilon).toBeGreaterThan(v.epsilon * 0.98);
  });

  it('epsilon composes several --event flags and prints a readable line without --json', async () => {
    const r = await dpfed(['privacy', 'epsilon', '--event', '0.01:1.1:500', '--event', '0.02:0.9:200', '--delta', '1e-5']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/epsilon = [\d.]+ at delta = 0?\.?0*1e?-?0?5? ?\(rdp accountant, best order [\d.]+\) for 2 event\(s\), 700 steps/);
  });

  it('calibrate --json prints the contract shape within the bounds', async () => {
    const r = await dpfed(['privacy', 'calibrate', '--epsilon', '8', '--delta', '1e-5', '--sample-rate', '0.04', '--steps', '2250', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Math.abs(out.noiseMultiplier - 1.416)).toBeLessThan(1e-3);
    expect(out.epsilon).toBeLessThanOrEqual(8);
    expect(out.epsilon).toBeGreaterThanOrEqual(7.99);
    expect(out.delta).toBe(1e-5);
  });

  it('epsilon --accountant pld prints the contract shape, below the RDP figure', async () => {
    const r = await dpfed(['privacy', 'epsilon', '--event', '0.01:1.0:1000', '--delta', '1e-5', '--accountant', 'pld', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.accountant).toBe('pld');
    expect(out.epsilon).toBeGreaterThan(1.5);
    expect(out.epsilon).toBeLessThan(2.1077530755);
    expect(out.method).toBe('pld');
  });

  it('--help lists every flag of both subcommands', async () => {
    const top = await dpfed(['privacy', '--help']);
    expect(top.code).toBe(0);
    for (const flag of ['--event', '--delta', '--accountant', '--json', '--epsilon', '--sample-rate', '--steps', '--tolerance']) expect(top.stdout).toContain(flag);
    const eps = await dpfed(['privacy', 'epsilon', '--help']);
    expect(eps.code).toBe(0);
    for (const flag of ['--event', '--delta', '--accountant', '--json']) expect(eps.stdout).toContain(flag);
    const cal = await dpfed(['privacy', 'calibrate', '--help']);
    expect(cal.code).toBe(0);
    for (const flag of ['--epsilon', '--delta', '--sample-rate', '--steps', '--accountant', '--json']) expect(cal.stdout).toContain(flag);
  });

  const invalid: [string[], RegExp][] = [
    [['epsilon', '--event', '0:1:100', '--delta', '1e-5'], /--event.*sample rate/],
    [['epsilon', '--event', '1.5:1:100', '--delta', '1e-5'], /--event.*sample rate/],
    [['epsilon', '--event', '0.01:-1:100', '--delta', '1e-5'], /--event.*noise multiplier/],
    [['epsilon', '--event', '0.01:0:100', '--delta', '1e-5'], /--event.*noise multiplier/],
    [['epsilon', '--event', '0.01:1:0', '--delta', '1e-5'], /--event.*STEPS/],
    [['epsilon', '--event', '0.01:1:2.5', '--delta', '1e-5'], /--event.*STEPS/],
    [['epsilon', '--event', 'NaN:1:100', '--delta', '1e-5'], /--event/],
    [['epsilon', '--event', '0.01:1', '--delta', '1e-5'], /--event.*Q:SIGMA:STEPS/],
    [['epsilon', '--event', '0.01:1:100', '--delta', '2'], /--delta/],
    [['epsilon', '--event', '0.01:1:100', '--delta', '0'], /--delta/],
    [['epsilon', '--event', '0.01:1:100', '--delta', 'NaN'], /--delta/],
    [['epsilon', '--event', '0.01:1:100'], /--delta/],
    [['epsilon', '--event', '0.01:1:100', '--delta', '1e-5', '--accountant', 'xyz'], /--accountant/],
    [['calibrate', '--epsilon', '0', '--delta', '1e-5', '--sample-rate', '0.01', '--steps', '100'], /--epsilon/],
    [['calibrate', '--epsilon', '1e-4', '--delta', '1e-5', '--sample-rate', '0.01', '--steps', '100'], /--epsilon.*unreachable/],
    [['calibrate', '--epsilon', '1', '--delta', '1e-5', '--sample-rate', '0', '--steps', '100'], /--sample-rate/],
    [['calibrate', '--epsilon', '1', '--delta', '1e-5', '--sample-rate', '0.01', '--steps', '1.5'], /--steps/],
    [['calibrate', '--epsilon', '1', '--delta', '1e-5', '--sample-rate', '0.01', '--steps', '0'], /--steps/],
    [['calibrate', '--epsilon', '1', '--delta', '-1', '--sample-rate', '0.01', '--steps', '10'], /--delta/],
    [['frobnicate'], /subcommand/],
  ];
  it('refuses every invalid input with exit code 2 and a message naming the argument', async () => {
    // four processes at a time: the machine is shared
    for (let start = 0; start < invalid.length; start += 4) {
      const batch = invalid.slice(start, start + 4);
      const results = await Promise.all(batch.map(([args]) => dpfed(['privacy', ...args, '--json'])));
      batch.forEach(([args, message], k) => {
        expect(results[k].code, args.join(' ')).toBe(2);
        expect(results[k].stderr, args.join(' ')).toMatch(message);
        expect(results[k].stdout).toBe('');
      });
    }
  });
});
