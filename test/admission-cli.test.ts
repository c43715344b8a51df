// `dpfed enrol`, `dpfed certs`, `dpfed identity` and the transport flags of `dpfed coordinator` and
// `dpfed client` as an operator and an institution run them: real processes, real files. Bad input exits
// with code 2 and a message naming the flag; --insecure works and warns.
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certifiedInstitutionId } from '@dpfed/proto/tls-credentials';
import { bankSlices, DPFED_BIN, ROOT, tempDir, writeBankCsv } from './helpers/federation-fixture.ts';

type Outcome = { code: number | null; stdout: string; stderr: string };

/** Runs `dpfed ARGS` as a process (asynchronously: the test worker keeps answering while it runs). */
function dpfed(...args: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DPFED_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

/** Expects exit code 2 with a message on stderr naming `flag`. */
async function usageError(pending: Outcome | Promise<Outcome>, flag: string): Promise<void> {
  const result = await pending;
  expect(result.code, result.stderr).toBe(2);
  expect(result.stderr).toContain(flag);
}

let dir: string;
beforeAll(() => {
  dir = tempDir('dpfed-admission-cli-');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('dpfed certs', () => {
  it('creates a CA and issues bound client and server certificates with 0600 keys; refuses bad input naming the flag', async () => {
    const ca = join(dir, 'ca');
    const init = await dpfed('certs', 'init', '--out', ca, '--json');
    expect(init.code, init.stderr).toBe(0);
    expect(JSON.parse(init.stdout)).toEqual({ certificate: join(ca, 'ca.crt'), key: join(ca, 'ca.key') });
    expect(statSync(join(ca, 'ca.key')).mode & 0o777).toBe(0o600);
    const caCert = new X509Certificate(readFileSync(join(ca, 'ca.crt')));
    expect(caCert.ca).toBe(true);

    expect((await dpfed('certs', 'issue', '--ca', ca, '--name', 'bank-a', '--out', join(dir, 'bank-a'))).code).toBe(0);
    const client = new X509Certificate(readFileSync(join(dir, 'bank-a', 'bank-a.crt')));
    expect(statSync(join(dir, 'bank-a', 'bank-a.key')).mode & 0o777).toBe(0o600);
    expect(client.subject).toBe('CN=bank-a');
    expect(certifiedInstitutionId(client)).toBe('bank-a');
    expect(client.verify(caCert.publicKey)).toBe(true);
    expect(client.checkIssued(caCert)).toBe(true);

    expect((await dpfed('certs', 'issue', '--ca', ca, '--name', 'coordinator', '--server', '--hosts', '127.0.0.1,localhost', '--out', join(dir, 'server'))).code).toBe(0);
    const server = new X509Certificate(readFileSync(join(dir, 'server', 'coordinator.crt')));
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(certifiedInstitutionId(server)).toBeNull(); // a server certificate is no institution's

    // refused independently of one another, so they run side by side
    await Promise.all([
      usageError(dpfed('certs', 'init', '--out', ca), '--out'), // never overwrites a CA
      usageError(dpfed('certs', 'init'), '--out'),
      usageError(dpfed('certs', 'issue', '--ca', ca, '--name', 'bank-a', '--out', join(dir, 'bank-a')), '--out'),
      usageError(dpfed('certs', 'issue', '--ca', ca, '--name', 'not an id', '--out', dir), '--name'),
      usageError(dpfed('certs', 'issue', '--ca', join(dir, 'nowhere'), '--name', 'bank-b', '--out', dir), '--ca'),
      usageError(dpfed('certs', 'issue', '--ca', ca, '--name', 'coordinator2', '--server', '--out', dir), '--hosts'),
      usageError(dpfed('certs', 'issue', '--ca', ca, '--name', 'bank-b', '--hosts', 'localhost', '--out', dir), '--hosts'),
      usageError(dpfed('certs', 'issue', '--ca', ca, '--name', 'coordinator3', '--server', '--hosts', 'bad host!', '--out', dir), '--hosts'),
      usageError(dpfed('certs', 'issue', '--ca', ca, '--name', 'bank-c', '--out', dir, '--days', '0'), '--days'),
      usageError(dpfed('certs', 'rotate'), 'rotate'),
    ]);
    expect((await dpfed('certs', '--help')).stdout).toContain('--hosts');
  });
});

describe('dpfed identity and dpfed enrol', () => {
  it("prints an identity's public key, and adds, lists and revokes enrolments; bad input names the flag", async () => {
    const identity = join(dir, 'bank-a.identity');
    const created = await dpfed('identity', 'init', '--identity', identity, '--json');
    expect(created.code, created.stderr).toBe(0);
    const { publicKey } = JSON.parse(created.stdout) as { publicKey: string };
    expect(publicKey).toMatch(/^[0-9a-f]{64}$/);
    expect(statSync(identity).mode & 0o777).toBe(0o600);
    const shown = await dpfed('identity', 'show', '--identity', identity);
    expect(shown.stdout.trim()).toBe(publicKey);
    expect(JSON.parse((await dpfed('identity', 'init', '--identity', identity, '--json')).stdout)).toMatchObject({ publicKey, created: false }); // not replaced
    await usageError(await dpfed('identity', 'show', '--identity', join(dir, 'none.identity')), '--identity');

    const db = join(dir, 'fed.sqlite');
    const added = await dpfed('enrol', 'add', '--db', db, '--institution', 'bank-a', '--identity-file', identity, '--json');
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({ institution: 'bank-a', publicKey, status: 'active', outcome: 'enrolled' });
    const other = 'ab'.repeat(32);
    expect((await dpfed('enrol', 'add', '--db', db, '--institution', 'bank-b', '--public-key', other)).code).toBe(0);
    expect(JSON.parse((await dpfed('enrol', 'add', '--db', db, '--institution', 'bank-b', '--public-key', other, '--json')).stdout).outcome).toBe('unchanged');
    // an enrolled id cannot be given another key (no silent replacement): revoke it first
    await usageError(await dpfed('enrol', 'add', '--db', db, '--institution', 'bank-a', '--public-key', other), '--public-key');

    expect((await dpfed('enrol', 'revoke', '--db', db, '--institution', 'bank-b')).stdout).toContain('bank-b: revoked');
    const list = JSON.parse((await dpfed('enrol', 'list', '--db', db, '--json')).stdout) as { institution: string; status: string; publicKey: string }[];
    expect(list.map((r) => [r.institution, r.status, r.publicKey])).toEqual([
      ['bank-a', 'active', publicKey],
      ['bank-b', 'revoked', other],
    ]);
    expect((await dpfed('enrol', 'list', '--db', db)).stdout).toContain('bank-b\trevoked');

    // refused independently of one another, so they run side by side
    await Promise.all([
      usageError(dpfed('enrol', 'add', '--institution', 'bank-c', '--public-key', other), '--db'),
      usageError(dpfed('enrol', 'add', '--db', db, '--institution', 'bank-c', '--public-key', 'xyz'), '--public-key'),
      usageError(dpfed('enrol', 'add', '--db', db, '--institution', 'bank c', '--public-key', other), '--institution'),
      usageError(dpfed('enrol', 'add', '--db', db, '--institution', 'bank-c'), '--public-key or --identity-file'),
      usageError(dpfed('enrol', 'add', '--db', db, '--institution', 'bank-c', '--public-key', other, '--identity-file', identity), '--public-key or --identity-file'),
      usageError(dpfed('enrol', 'add', '--db', db, '--institution', 'bank-c', '--identity-file', join(dir, 'missing')), '--identity-file'),
      usageError(dpfed('enrol', 'revoke', '--db', db, '--institution', 'bank-z'), '--institution'),
      usageError(dpfed('enrol', 'revoke', '--db', db), '--institution'),
      usageError(dpfed('enrol', 'list', '--db', join(dir, 'no.sqlite')), '--db'),
      usageError(dpfed('enrol', 'remove'), 'remove'),
    ]);
    expect((await dpfed('enrol', 'add', '--help')).stdout).toContain('--identity-file');
  });
});

describe('transport flags of dpfed coordinator and dpfed client', () => {
  it('TLS is the default: missing or mismatched TLS files exit 2 naming the flag', async () => {
    const ca = join(dir, 'ca2');
    expect((await dpfed('certs', 'init', '--out', ca)).code).toBe(0);
    expect((await dpfed('certs', 'issue', '--ca', ca, '--name', 'coordinator', '--server', '--hosts', '127.0.0.1', '--out', ca)).code).toBe(0);
    expect((await dpfed('certs', 'issue', '--ca', ca, '--name', 'bank-a', '--out', ca)).code).toBe(0);
    const db = join(dir, 'transport.sqlite');
    const base = ['coordinator', '--port', '0', '--db', db, '--privacy', 'off', '--aggregation', 'plain'];
    // refused independently of one another, so they run side by side
    await Promise.all([
      usageError(dpfed(...base), '--tls-ca'),
      usageError(dpfed(...base, '--tls-ca', join(ca, 'ca.crt')), '--tls-cert'),
      usageError(dpfed(...base, '--insecure', '--tls-ca', join(ca, 'ca.crt')), '--insecure'),
      usageError(dpfed(...base, '--tls-ca', join(ca, 'missing.crt'), '--tls-cert', join(ca, 'coordinator.crt'), '--tls-key', join(ca, 'coordinator.key')), '--tls-ca'),
      usageError(dpfed(...base, '--tls-ca', join(ca, 'ca.crt'), '--tls-cert', join(ca, 'coordinator.crt'), '--tls-key', join(ca, 'bank-a.key')), '--tls-key'),
      usageError(dpfed(...base, '--tls-ca', join(ca, 'ca.crt'), '--tls-cert', join(ca, 'ca.key'), '--tls-key', join(ca, 'coordinator.key')), '--tls-cert'),
    ]);
    writeFileSync(join(dir, 'enrol.json'), JSON.stringify([{ institution: 'bank-a', publicKey: 'nothex' }]));
    await usageError(dpfed(...base, '--insecure', '--enrol-file', join(dir, 'enrol.json')), '--enrol-file');

    const csv = join(dir, 'bank-a.csv');
    writeBankCsv(csv, bankSlices(1, { rowsPerBank: 100 })[0]);
    const client = ['client', '--coordinator', '127.0.0.1:1', '--institution', 'bank-a', '--data', csv, '--identity', join(dir, 'client.identity'), '--ledger', join(dir, 'client.ledger.sqlite')];
    await usageError(dpfed(...client), '--tls-ca');
    // a certificate bound to another institution than --institution, a server certificate, --insecure with TLS files
    await Promise.all([
      usageError(dpfed(...client.map((a) => (a === 'bank-a' ? 'bank-b' : a)), '--tls-ca', join(ca, 'ca.crt'), '--tls-cert', join(ca, 'bank-a.crt'), '--tls-key', join(ca, 'bank-a.key')), '--tls-cert'),
      usageError(dpfed(...client, '--tls-ca', join(ca, 'ca.crt'), '--tls-cert', join(ca, 'coordinator.crt'), '--tls-key', join(ca, 'coordinator.key')), '--tls-cert'),
      usageError(dpfed(...client, '--insecure', '--tls-cert', join(ca, 'bank-a.crt')), '--insecure'),
    ]);
  });

  /**
   * A `dpfed coordinator` process (1 round, 1 institution needed, `bank-a` enrolled with --enrol-file) and
   * `dpfed client` processes with the given transport flags; resolves with their exit codes and output.
   */
  async function federationOfProcesses(name: string, coordinatorTransport: string[], clients: { id: string; identity: string; transport: string[]; exitsFirst?: boolean }[]) {
    const csv = join(dir, `${name}-bank.csv`);
    writeBankCsv(csv, bankSlices(1, { rowsPerBank: 400, seed: name })[0]);
    const { publicKey } = JSON.parse((await dpfed('identity', 'init', '--identity', join(dir, `${name}-bank-a.identity`), '--json')).stdout) as { publicKey: string };
    const enrolFile = join(dir, `${name}-enrol.json`);
    writeFileSync(enrolFile, JSON.stringify([{ institution: 'bank-a', publicKey }]));

    const coordinator = spawn(
      process.execPath,
      [
        DPFED_BIN,
        'coordinator',
        ...coordinatorTransport,
        '--port',
        '0',
        '--db',
        join(dir, `${name}.sqlite`),
        '--json',
        '--rounds',
        '1',
        '--min-clients',
        '1',
        '--privacy',
        'off',
        '--aggregation',
        'plain',
        '--model',
        'logistic',
        '--enrol-file',
        enrolFile,
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const out = { coordinator: { err: '', events: [] as Record<string, unknown>[], code: null as number | null }, clients: [] as { id: string; out: string; err: string; code: number | null }[] };
    coordinator.stderr!.on('data', (d: Buffer) => (out.coordinator.err += d.toString()));
    const lines = createInterface({ input: coordinator.stdout! });
    const port = await new Promise<number>((resolve, reject) => {
      lines.on('line', (line) => {
        const event = JSON.parse(line) as Record<string, unknown>;
        out.coordinator.events.push(event);
        if (event.event === 'listening') resolve(Number(event.port));
      });
      coordinator.on('exit', (code) => reject(new Error(`the coordinator exited with ${code}: ${out.coordinator.err}`)));
    });
    // A client marked exitsFirst runs to its end before the next starts: a refused one must meet a
    // coordinator that is still running (the run ends once the enrolled client's one round commits).
    const children: Promise<void>[] = [];
    for (const c of clients) {
      const child = spawn(
        process.execPath,
        [
          DPFED_BIN,
          'client',
          ...c.transport,
          '--coordinator',
          `127.0.0.1:${port}`,
          '--institution',
          c.id,
          '--data',
          csv,
          '--identity',
          c.identity,
          '--ledger',
          join(dir, `${name}-${c.id}.ledger.sqlite`),
          '--backend',
          'wasm',
          '--json',
        ],
        { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const record = { id: c.id, out: '', err: '', code: null as number | null };
      out.clients.push(record);
      child.stderr!.on('data', (d: Buffer) => (record.err += d.toString()));
      child.stdout!.on('data', (d: Buffer) => (record.out += d.toString()));
      const exited = new Promise<void>((r) => child.on('exit', (code) => r(void (record.code = code)))).finally(() => child.exitCode === null && child.kill('SIGKILL'));
      children.push(exited);
      if (c.exitsFirst) await exited;
    }
    try {
      await Promise.all([new Promise<void>((r) => coordinator.on('exit', (code) => r(void (out.coordinator.code = code)))), ...children]);
    } finally {
      if (coordinator.exitCode === null) coordinator.kill('SIGKILL');
    }
    return out;
  }

  it('a `dpfed coordinator` with mutual TLS runs the enrolled client process; an unenrolled one with a valid certificate is refused and exits', async () => {
    const ca = join(dir, 'ca3');
    expect((await dpfed('certs', 'init', '--out', ca)).code).toBe(0);
    await Promise.all([
      dpfed('certs', 'issue', '--ca', ca, '--name', 'coordinator', '--server', '--hosts', '127.0.0.1', '--out', ca),
      dpfed('certs', 'issue', '--ca', ca, '--name', 'bank-a', '--out', ca),
      dpfed('certs', 'issue', '--ca', ca, '--name', 'bank-x', '--out', ca),
    ]);
    const tls = (id: string) => ['--tls-ca', join(ca, 'ca.crt'), '--tls-cert', join(ca, `${id}.crt`), '--tls-key', join(ca, `${id}.key`)];
    const result = await federationOfProcesses('mtls', tls('coordinator'), [
      { id: 'bank-x', identity: join(dir, 'mtls-bank-x.identity'), transport: tls('bank-x'), exitsFirst: true },
      { id: 'bank-a', identity: join(dir, 'mtls-bank-a.identity'), transport: tls('bank-a') },
    ]);
    expect(result.coordinator.code, result.coordinator.err).toBe(0);
    expect(result.coordinator.events.filter((e) => e.event === 'round').map((e) => e.participants)).toEqual([1]);
    const [stranger, enrolled] = result.clients;
    expect(enrolled.code, enrolled.err).toBe(0);
    expect(JSON.parse(enrolled.out.trim().split('\n').pop()!)).toMatchObject({ institution: 'bank-a', roundsTrained: 1 });
    expect(stranger.code).toBe(1);
    expect(stranger.err).toContain('PERMISSION_DENIED');
    expect(stranger.err).toContain('"bank-x" is not enrolled');
    for (const side of [result.coordinator.err, enrolled.err, stranger.err]) expect(side).not.toContain('--insecure');
  }, 120_000);

  it('--insecure runs a plaintext federation of a coordinator and a client process, and both warn on stderr', async () => {
    const result = await federationOfProcesses('insecure', ['--insecure'], [{ id: 'bank-a', identity: join(dir, 'insecure-bank-a.identity'), transport: ['--insecure'] }]);
    expect(result.coordinator.code, result.coordinator.err).toBe(0);
    expect(result.clients[0].code, result.clients[0].err).toBe(0);
    expect(result.coordinator.err).toContain('WARNING: --insecure');
    expect(result.clients[0].err).toContain('WARNING: --insecure');
    expect(result.coordinator.events.filter((e) => e.event === 'round').length).toBe(1);
    expect(JSON.parse(result.clients[0].out.trim().split('\n').pop()!)).toMatchObject({ institution: 'bank-a', roundsTrained: 1 });
  }, 120_000);
});
