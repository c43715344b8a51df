// `dpfed coordinator --console-port`: the console serves the same database read-only while the
// coordinator process keeps it open for writing (WAL), and logging in through the HTTP form works
// end to end against that separate process.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DPFED_BIN, ROOT, tempDir, within } from './helpers/federation-fixture.ts';

const dir = tempDir('dpfed-console-coordinator-');
let coordinator: ChildProcess | undefined;

afterAll(() => {
  if (coordinator && coordinator.exitCode === null) coordinator.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

/** The session cookie after logging in through the form, as a browser would. */
async function login(url: string, username: string, password: string): Promise<string> {
  const page = await fetch(`${url}/login`);
  const anonymous = (page.headers.get('set-cookie') ?? '').split(';')[0];
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1] ?? '';
  const answer = await fetch(`${url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: anonymous, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, username, password }).toString(),
  });
  expect(answer.status).toBe(303);
  return (answer.headers.get('set-cookie') ?? '').split(';')[0];
}

describe('dpfed coordinator --console-port', () => {
  it("serves the running coordinator's database read-only", async () => {
    const db = join(dir, 'fed.sqlite');
    const add = spawnSync(process.execPath, [DPFED_BIN, 'console', 'users', 'add', '--db', db, '--username', 'alice'], { cwd: ROOT, input: 'alice password\n', encoding: 'utf8' });
    expect(add.status, add.stderr).toBe(0);
    coordinator = spawn(
      process.execPath,
      [DPFED_BIN, 'coordinator', '--insecure', '--port', '0', '--db', db, '--console-port', '0', '--rounds', '3', '--min-clients', '3', '--privacy', 'record', '--exit-when-done=false', '--json'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    const url = await within(
      new Promise<string>((resolve, reject) => {
        coordinator!.stderr!.on('data', (d: Buffer) => {
          stderr += d.toString();
          const m = /compliance console on (http:\/\/\S+)/.exec(stderr);
          if (m) resolve(m[1]);
        });
        coordinator!.on('exit', (code) => reject(new Error(`coordinator exited with ${code}: ${stderr}`)));
      }),
      60_000,
      'the console URL on stderr',
    );
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/api/runs`)).status).toBe(401);
    const cookie = await login(url, 'alice', 'alice password');
    const runs = await (await fetch(`${url}/api/runs`, { headers: { cookie } })).json();
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ status: 'running', roundsPlanned: 3, privacyMode: 'record', aggregation: 'secagg' });
    const verify = await (await fetch(`${url}/api/verify`, { headers: { cookie } })).json();
    expect(verify).toMatchObject({ ok: true, rows: 0 });
    const overview = await fetch(`${url}/`, { headers: { cookie } });
    expect(await overview.text()).toContain(runs[0].id);
    coordinator.kill('SIGTERM');
    await new Promise((r) => coordinator!.once('exit', r));
  });

  it('refuses a console port that is taken, naming the flag, with exit 2', async () => {
    const { createServer } = await import('node:net');
    const blocker = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const port = (blocker.address() as { port: number }).port;
    const r = spawnSync(process.execPath, [DPFED_BIN, 'coordinator', '--insecure', '--port', '0', '--db', join(dir, 'other.sqlite'), '--console-port', String(port), '--json'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    blocker.close();
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--console-port: cannot start the console/);
  });
});
