// The checked-in generated code (proto/generated/) is what `npm run proto:generate` produces from
// proto/dpfed/v1/federation.proto: the test regenerates it with the pinned buf and ts-proto into a
// temporary folder and fails, naming the file, when the two differ (edit the .proto, then regenerate).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanUp, ROOT, tempDir } from './helpers/federation-fixture.ts';

const GENERATED = join(ROOT, 'proto', 'generated');

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
}

describe('proto/generated', () => {
  const out = tempDir('dpfed-generated-');
  afterAll(() => cleanUp({ dir: out }));

  it('is exactly what buf generate makes of federation.proto now', () => {
    execFileSync(join(ROOT, 'node_modules', '.bin', 'buf'), ['generate', '--template', 'buf.gen.yaml', '-o', out], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const fresh = join(out, 'proto', 'generated');
    const files = filesUnder(GENERATED);
    expect(filesUnder(fresh), 'the generated files').toEqual(files);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const same = readFileSync(join(fresh, file), 'utf8') === readFileSync(join(GENERATED, file), 'utf8');
      expect(same, `proto/generated/${file} differs from a fresh generation: run npm run proto:generate`).toBe(true);
    }
  });
});
