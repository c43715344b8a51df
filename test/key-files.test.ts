// Signing keys live apart from the ledgers they sign: a key directory created 0700, key files written 0600
// and refused when group or others may read them; the commands name the flag; a coordinator key left
// beside its database (the former default) is refused with the move to make.
import { spawnSync } from 'node:child_process';
import { chmodSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startCoordinator } from '@dpfed/coordinator/coordinator-server';
import { coordinatorKeyPath, defaultKeyDir, institutionKeyPath, loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { DPFED_BIN, ROOT, runConfig, tempDir } from './helpers/federation-fixture.ts';

const dir = tempDir('dpfed-key-files-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const mode = (path: string) => statSync(path).mode & 0o777;

function dpfed(args: string[], env: Record<string, string> = {}): { code: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [DPFED_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return { code: result.status, stderr: result.stderr };
}

describe.skipIf(process.platform === 'win32')('key files', () => {
  it('are created 0600 in a 0700 key directory, loaded again unchanged, and refused once group/other may read them', () => {
    const keyDir = join(dir, 'nested', 'keys');
    const path = institutionKeyPath(keyDir, 'bank-a');
    expect(path).toBe(join(keyDir, 'bank-a.identity'));
    const key = loadOrCreateIdentity(path);
    expect(mode(keyDir)).toBe(0o700);
    expect(mode(path)).toBe(0o600);
    expect(Buffer.from(loadOrCreateIdentity(path).publicKey).equals(Buffer.from(key.publicKey))).toBe(true);
    chmodSync(path, 0o640);
    expect(() => loadOrCreateIdentity(path)).toThrow(/key file .*bank-a\.identity is accessible by group or others \(mode 0640\).*chmod 600/);
    chmodSync(path, 0o604);
    expect(() => loadOrCreateIdentity(path)).toThrow(/mode 0604/);
  });

  it('default to $DPFED_KEY_DIR, one coordinator key per database path, never beside the database', () => {
    expect(defaultKeyDir()).toBe(process.env.DPFED_KEY_DIR);
    const a = coordinatorKeyPath('/keys', '/srv/a/fed.sqlite');
    const b = coordinatorKeyPath('/keys', '/srv/b/fed.sqlite');
    expect(a).toMatch(/^\/keys\/coordinator-fed\.sqlite-[0-9a-f]{12}\.key$/);
    expect(a).not.toBe(b);
  });

  it('dpfed coordinator names --identity for a readable key file and --key-dir for a key left beside the database (exit 2)', async () => {
    const readable = join(dir, 'readable.key');
    writeFileSync(readable, '11'.repeat(32) + '\n', { mode: 0o644 });
    chmodSync(readable, 0o644);
    const db = join(dir, 'fed.sqlite');
    const identityRefused = dpfed(['coordinator', '--db', db, '--port', '0', '--insecure', '--identity', readable]);
    expect(identityRefused.code).toBe(2);
    expect(identityRefused.stderr).toMatch(/--identity: key file .*readable\.key is accessible by group or others/);

    const old = join(dir, 'old.sqlite');
    writeFileSync(`${old}.coordinator-key`, '22'.repeat(32) + '\n', { mode: 0o600 });
    const beside = dpfed(['coordinator', '--db', old, '--port', '0', '--insecure', '--key-dir', join(dir, 'k')]);
    expect(beside.code).toBe(2);
    expect(beside.stderr).toMatch(/--key-dir: the coordinator key .*old\.sqlite\.coordinator-key lies beside its database.*move it to/);
    await expect(startCoordinator({ dbPath: old, config: runConfig(), keyDir: join(dir, 'k'), insecure: true })).rejects.toThrow(/lies beside its database/);
  });
});
