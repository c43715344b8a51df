// Every process dpfed starts carries the same V8 heap flags (cli/node-heap.ts): the launcher's shebang,
// and the npm scripts (the demo's and the bench's children take the constant itself).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NODE_HEAP_FLAGS } from '../cli/node-heap.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('V8 heap flags', () => {
  it('the dpfed launcher passes them to node in its shebang', () => {
    const firstLine = readFileSync(join(ROOT, 'bin/dpfed.js'), 'utf8').split('\n')[0];
    expect(firstLine).toBe(`#!/usr/bin/env -S node ${NODE_HEAP_FLAGS.join(' ')}`);
  });

  it('npm run demo and npm run bench start node with them', () => {
    const scripts = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
    for (const name of ['demo', 'bench']) expect(scripts[name]).toBe(`node ${NODE_HEAP_FLAGS.join(' ')} bin/dpfed.js ${name}`);
  });

  it('the launcher runs as an executable with that shebang', () => {
    const out = execFileSync(join(ROOT, 'bin/dpfed.js'), ['--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(out).toMatch(/coordinator/);
  });
});
