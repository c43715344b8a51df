// The processes dpfed starts itself carry the V8 heap flags (cli/node-heap.ts): the npm scripts (the
// demo's and the bench's children take the constant itself); the launcher stays portable.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { NODE_HEAP_FLAGS } from 'dpfed/node-heap';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('V8 heap flags', () => {
  it('the dpfed launcher keeps a plain node shebang (portable: no env -S)', () => {
    expect(readFileSync(join(ROOT, 'bin/dpfed.js'), 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
  });

  it('npm run demo and npm run bench start node with them', () => {
    const scripts = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts as Record<string, string>;
    for (const name of ['demo', 'bench']) expect(scripts[name]).toBe(`node ${NODE_HEAP_FLAGS.join(' ')} bin/dpfed.js ${name}`);
  });

  it('the launcher runs as an executable', () => {
    const out = execFileSync(join(ROOT, 'bin/dpfed.js'), ['--help'], { cwd: ROOT, encoding: 'utf8' });
    expect(out).toMatch(/coordinator/);
  });
});
