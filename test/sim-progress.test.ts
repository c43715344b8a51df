// The sweep's progress on stderr (simulations/sim-progress.ts): one plain line per finished setting when
// the stream is not a terminal, a cli-progress bar redrawn in place when it is.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createSimProgress, formatDuration } from '@dpfed/simulations/sim-progress';

class Collect extends Writable {
  text = '';
  constructor(
    readonly isTTY: boolean,
    readonly columns = 120,
  ) {
    super();
  }
  override _write(chunk: Buffer, _enc: string, done: () => void) {
    this.text += chunk.toString();
    done();
  }
}

describe('createSimProgress', () => {
  it('not a terminal: one line per tick with the count, the ETA and the label; nothing after stop', () => {
    const stream = new Collect(false);
    const progress = createSimProgress(3, { stream });
    progress.tick('logistic ε=1 seed 0');
    progress.tick();
    progress.tick('centralised seed 1');
    progress.stop();
    progress.tick('late');
    const lines = stream.text.split('\n');
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^sim 1\/3 settings · elapsed \d+s · ETA \d+s · done: logistic ε=1 seed 0$/);
    expect(lines[1]).toMatch(/^sim 2\/3 settings · elapsed \d+s · ETA \d+s$/);
    expect(lines[2]).toMatch(/^sim 3\/3 settings · elapsed \d+s · ETA 0s · done: centralised seed 1$/);
    expect(stream.text).not.toContain('\r');
  });

  it('a terminal: a bar redrawn in place with the count and the last label', () => {
    const stream = new Collect(true);
    const progress = createSimProgress(2, { stream });
    progress.tick('federated ε=0.5');
    progress.tick('federated ε=inf');
    progress.stop();
    expect(stream.text).toContain('2/2 settings');
    expect(stream.text).toContain('done: federated ε=inf');
    expect(stream.text).toMatch(/ETA/);
    // the bar is redrawn on one line with cursor movements, not one line per tick
    expect(stream.text).toContain('\x1b[');
    expect(stream.text.split('\n').filter((l) => l.includes('settings')).length).toBeLessThan(2);
  });

  it('refuses a negative or fractional total', () => {
    expect(() => createSimProgress(-1)).toThrow(/number of settings must be a whole number/);
    expect(() => createSimProgress(1.5)).toThrow(/number of settings must be a whole number/);
  });

  it('formats durations for the ETA', () => {
    expect(formatDuration(42)).toBe('42s');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(3720)).toBe('1h02m');
    expect(formatDuration(Infinity)).toBe('?');
  });
});
