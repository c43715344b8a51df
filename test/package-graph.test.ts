// The workspace codemod (tools/workspaces/apply.mjs) and the package graph check (check.mjs, run by
// `npm test` and the build): on this repository, and on a small tree written the old way (relative imports
// across folders) that the codemod turns into packages, refusing forbidden edges.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, tempDir } from './helpers/federation-fixture.ts';

type Outcome = { code: number; stdout: string; stderr: string };

function tool(name: 'apply' | 'check', args: string[] = []): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'tools', 'workspaces', `${name}.mjs`), ...args], { cwd: ROOT, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

function write(root: string, files: Record<string, string>): void {
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
}

const read = (root: string, path: string) => readFileSync(join(root, path), 'utf8');

/** A tree before the codemod: one module per package folder, imports as relative paths. */
function oldStyleTree(): string {
  const root = tempDir('dpfed-codemod-');
  write(root, {
    'package.json': JSON.stringify({ name: 'fixture', scripts: {}, devDependencies: { typescript: '^7.0.2', tsx: '4.23.15' } }),
    'proto/wire.ts': "export const WIRE = 'dpfed.v1';\n",
    'privacy/ledger.ts': "import { WIRE } from '../proto/wire.ts';\nexport const LEDGER = `${WIRE}/ledger`;\n",
    'privacy/ckks.ts': "export const SEAL = 'node-seal';\n",
    'privacy/ckks-plugin.ts': "export const PLUGIN = '@dpfed/ckks';\n",
    'client-sdk/federation-client.ts': [
      "import { LEDGER } from '../privacy/ledger.ts';",
      "import { SEAL } from '../privacy/ckks.ts';",
      "import type { WIRE } from '../proto/wire.ts';",
      "import { helper } from './helper.ts';",
      "// an example in a comment is not an import: import { x } from '../coordinator/server.ts';",
      "export const message = `data from '../coordinator/server.ts' is only text`;",
      'export const client = [LEDGER, SEAL, helper];',
      '',
    ].join('\n'),
    'client-sdk/helper.ts': 'export const helper = 1;\n',
    'coordinator/server.ts': "import { LEDGER } from '../privacy/ledger.ts';\nexport const server = LEDGER;\n",
    'test/server.test.ts': "import { server } from '../coordinator/server.ts';\nimport { client } from '../client-sdk/federation-client.ts';\nexport const both = [server, client];\n",
  });
  return root;
}

describe('the package graph of this repository', () => {
  it('passes the check, and the codemod has nothing left to change (it is idempotent)', async () => {
    const check = await tool('check');
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    const apply = await tool('apply', ['--check']);
    expect(apply.stderr).toBe('');
    expect(apply.code).toBe(0);
  });
});

describe('the workspace codemod on a tree written the old way', () => {
  it('rewrites cross-package imports into package specifiers, moves CKKS into its plugin, and writes exact dependencies; a second run changes nothing', async () => {
    const root = oldStyleTree();
    const first = await tool('apply', ['--root', root]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const client = read(root, 'client-sdk/federation-client.ts');
    expect(client).toContain("import { LEDGER } from '@dpfed/privacy/ledger';");
    expect(client).toContain("import type { WIRE } from '@dpfed/proto/wire';");
    expect(client).toContain("import { helper } from './helper.ts';");
    // the client reaches CKKS through the plugin loader; the module itself moved to the plugin package
    expect(client).toContain("import { SEAL } from '@dpfed/privacy/ckks-plugin';");
    expect(read(root, 'ckks/ckks.ts')).toBe("export const SEAL = 'node-seal';\n");
    // comments and message text are left alone
    expect(client).toContain("// an example in a comment is not an import: import { x } from '../coordinator/server.ts';");
    expect(client).toContain("data from '../coordinator/server.ts' is only text");
    expect(read(root, 'test/server.test.ts')).toContain("import { server } from '@dpfed/coordinator/server';");
    expect(read(root, 'privacy/ledger.ts')).toContain("from '@dpfed/proto/wire'");
    const manifest = JSON.parse(read(root, 'client-sdk/package.json'));
    expect(manifest.name).toBe('@dpfed/client');
    expect(manifest.dependencies).toEqual({ '@dpfed/privacy': '0.1.0', '@dpfed/proto': '0.1.0' });
    expect(manifest.exports['./*']).toEqual({ source: './*.ts', types: './dist/*.d.ts', default: './dist/*.js' });
    expect(JSON.parse(read(root, 'client-sdk/tsconfig.json')).references).toEqual([{ path: '../privacy' }, { path: '../proto' }]);
    expect(JSON.parse(read(root, 'proto/package.json')).dependencies).toEqual({});
    const rootManifest = JSON.parse(read(root, 'package.json'));
    expect(rootManifest.private).toBe(true);
    expect(rootManifest.workspaces).toContain('client-sdk');

    const second = await tool('apply', ['--root', root]);
    expect(second.stdout).toBe('workspaces: nothing to change\n');
    expect((await tool('check', ['--root', root])).code).toBe(0);
  });

  it('refuses the client importing the coordinator, listing the import, and changes nothing', async () => {
    const root = oldStyleTree();
    write(root, { 'client-sdk/shortcut.ts': "import { server } from '../coordinator/server.ts';\nexport const s = server;\n" });
    const before = read(root, 'client-sdk/federation-client.ts');
    const out = await tool('apply', ['--root', root]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("client-sdk/shortcut.ts: import '../coordinator/server.ts' crosses a forbidden edge: @dpfed/client (client-sdk/) may not depend on @dpfed/coordinator (coordinator/)");
    expect(out.stderr).toContain('nothing was changed');
    expect(read(root, 'client-sdk/federation-client.ts')).toBe(before);
  });

  it('the check fails on a package specifier across a forbidden edge, an undeclared or refused dependency and a relative import leaving its package', async () => {
    const root = oldStyleTree();
    expect((await tool('apply', ['--root', root])).code).toBe(0);
    write(root, {
      'coordinator/peek.ts': "import { client } from '@dpfed/client/federation-client';\nexport const c = client;\n",
      'privacy/pad.ts': "import pad from 'left-pad';\nexport const p = pad;\n",
      'client-sdk/full-tfjs.ts': "import * as tf from '@tensorflow/tfjs';\nexport const t = tf;\n",
      'proto/reach.ts': "export { LEDGER } from '../privacy/ledger.ts';\n",
    });
    const out = await tool('check', ['--root', root]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(
      "coordinator/peek.ts: import '@dpfed/client/federation-client' crosses a forbidden edge: @dpfed/coordinator (coordinator/) may not depend on @dpfed/client (client-sdk/)",
    );
    expect(out.stderr).toContain("privacy/ imports left-pad, which @dpfed/privacy's package.json does not declare");
    expect(out.stderr).toContain('client-sdk/ imports @tensorflow/tfjs, which @dpfed/client must not depend on');
    expect(out.stderr).toContain("proto/reach.ts: import '../privacy/ledger.ts' crosses a forbidden edge: @dpfed/proto (proto/) may not depend on @dpfed/privacy (privacy/)");
  });
});
