// The compliance console in a real headless Chromium (the system's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded), over a coordinator database written by the project's own
// CoordinatorStore and PrivacyLedger with real signatures. Checks: login and the session cookie's flags;
// the ε figures on the page and from the API equal `dpfed ledger --json`; a tampered database shows the
// chain broken and names the row; requests without a session or with the wrong role are refused; writes
// without the CSRF token are refused; logins, failed logins, reports and exports are audited; the login
// rate limit. Screenshots of every page go to artifacts/console/ (ignored by git).
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConsoleFixture, type ConsoleFixture } from '@dpfed/bench/console-fixture';
import { startConsole, type ConsoleServer } from '@dpfed/console/console-server';
import { generateIdentity } from '@dpfed/privacy/identity';
import { signEvent, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { DPFED_BIN, ROOT, tempDir, within } from './helpers/federation-fixture.ts';

const ARTIFACTS = join(ROOT, 'artifacts', 'console');
const PASSWORD = 'correct horse battery';
const OPERATOR_PASSWORD = 'operator staple 42';

let dir: string;
let db: string;
let browser: Browser;
let server: ConsoleServer & { url: string };
let fixture: ConsoleFixture;

function dpfed(args: string[], input?: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [DPFED_BIN, ...args], { cwd: ROOT, encoding: 'utf8', input, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function newContext(): Promise<BrowserContext> {
  return browser.newContext({ viewport: { width: 1280, height: 900 } });
}

async function login(context: BrowserContext, url: string, username: string, password: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${url}/login`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return page;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  dir = tempDir('dpfed-console-');
  db = join(dir, 'coordinator.sqlite');
  fixture = buildConsoleFixture({ path: db, institutions: 4, rounds: 6, runs: ['run-a', 'run-b'] });
  // users through the command line: the password from stdin, and from --password-file
  expect(dpfed(['console', 'users', 'add', '--db', db, '--username', 'alice', '--role', 'compliance'], `${PASSWORD}\n`).code).toBe(0);
  writeFileSync(join(dir, 'op-password'), OPERATOR_PASSWORD);
  expect(dpfed(['console', 'users', 'add', '--db', db, '--username', 'olivia', '--role', 'operator', '--password-file', join(dir, 'op-password')]).code).toBe(0);
  server = await startConsole({ dbPath: db, port: 0, loginRateLimit: { max: 20, timeWindowMs: 60_000 } });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('dpfed console and dpfed console users', () => {
  it('lists the users; refuses a short password, a duplicate, an unknown action and a missing user with exit 2 naming the problem', () => {
    const list = dpfed(['console', 'users', 'list', '--db', db, '--json']);
    expect(list.code).toBe(0);
    expect(JSON.parse(list.stdout).map((u: { username: string; role: string }) => `${u.username}:${u.role}`)).toEqual(['alice:compliance', 'olivia:operator']);
    const short = dpfed(['console', 'users', 'add', '--db', db, '--username', 'bob'], 'short\n');
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/password: must be at least 8 characters/);
    const twice = dpfed(['console', 'users', 'add', '--db', db, '--username', 'alice'], `${PASSWORD}\n`);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/--username: alice already exists/);
    expect(dpfed(['console', 'users', 'rename', '--db', db]).stderr).toMatch(/unknown action "rename"/);
    expect(dpfed(['console', 'users', 'remove', '--db', db, '--username', 'nobody']).stderr).toMatch(/--username: nobody does not exist/);
    const hashes = new Database(`${db}.console.sqlite`, { readonly: true }).prepare('SELECT password_hash AS h FROM console_users').all() as { h: string }[];
    expect(hashes.every((r) => r.h.startsWith('scrypt$') && !r.h.includes(PASSWORD))).toBe(true);
  });

  it('dpfed console --db serves the file on the printed URL and stops on SIGTERM with exit 0', async () => {
    const child = spawn(process.execPath, [DPFED_BIN, 'console', '--db', db, '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const url = await within(
      new Promise<string>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /serving (http:\/\/\S+) on /.exec(out);
          if (m) resolve(m[1]);
        });
        child.on('exit', (code) => reject(new Error(`dpfed console exited with ${code}`)));
      }),
      60_000,
      'the console URL',
    );
    expect(out).toContain(`users and audit log in ${db}.console.sqlite`);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/api/ledger`)).status).toBe(401);
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('dpfed console refuses a missing --db and a file that is not a ledger with exit 2', () => {
    expect(dpfed(['console', '--db', join(dir, 'missing.sqlite')]).stderr).toMatch(/--db: no such file/);
    const other = join(dir, 'other.sqlite');
    new Database(other).exec('CREATE TABLE t (x)');
    const r = dpfed(['console', '--db', other, '--port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--db: .*not a dpfed ledger/);
  });
});

describe('access control', () => {
  it('without a session only /healthz, the login page and the stylesheet answer', async () => {
    const healthz = await fetch(`${server.url}/healthz`);
    expect(healthz.status).toBe(200);
    expect(await healthz.json()).toEqual({ ok: true });
    for (const path of ['/api/ledger', '/api/verify', '/api/events', '/api/runs', '/docs', '/api/audit']) {
      expect((await fetch(`${server.url}${path}`)).status, path).toBe(401);
    }
    for (const path of ['/', '/epsilon', '/events', '/report?institution=bank-001', '/export/events.csv', '/no-such-page']) {
      const r = await fetch(`${server.url}${path}`, { redirect: 'manual' });
      expect(r.status, path).toBe(303);
      expect(r.headers.get('location')).toBe('/login');
    }
    // a forged (unsigned) cookie is no session either
    expect((await fetch(`${server.url}/api/ledger`, { headers: { cookie: 'dpfed_console=abc' } })).status).toBe(401);
  });

  it('logs in through the form; the cookie is httpOnly, Secure, SameSite=Strict and signed; headers carry a CSP without inline scripts', async () => {
    const context = await newContext();
    const page = await context.newPage();
    const response = await page.goto(`${server.url}/login`);
    const csp = response!.headers()['content-security-policy'];
    expect(csp).toMatch(/script-src 'self'/);
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(response!.headers()['x-content-type-options']).toBe('nosniff');
    await shot(page, 'login');
    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', PASSWORD);
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(new URL(page.url()).pathname).toBe('/');
    const [cookie] = (await context.cookies()).filter((c) => c.name === 'dpfed_console');
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Strict' });
    expect(cookie.value).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9+/_-]+/);
    expect(await page.textContent('nav .who')).toContain('alice (compliance)');
    await context.close();
  });

  it('a wrong password is refused, audited and rate-limited per address', async () => {
    const limited = await startConsole({ dbPath: db, port: 0, loginRateLimit: { max: 3, timeWindowMs: 60_000 } });
    try {
      const context = await newContext();
      const page = await context.newPage();
      await page.goto(`${limited.url}/login`);
      await page.fill('input[name=username]', 'alice');
      await page.fill('input[name=password]', 'not the password');
      const [answer] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
      expect(answer!.status()).toBe(401);
      expect(await page.textContent('#login-error')).toMatch(/Wrong user name or password/);
      const csrf = await page.getAttribute('input[name=_csrf]', 'value');
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await page.request.post(`${limited.url}/login`, { form: { _csrf: csrf!, username: 'alice', password: 'still wrong' } });
        statuses.push(r.status());
      }
      expect(statuses).toEqual([401, 401, 429]);
      const failed = limited.users.auditLog().filter((e) => e.action === 'login' && e.outcome === 'failed' && e.username === 'alice');
      expect(failed.length).toBeGreaterThanOrEqual(3);
      await context.close();
    } finally {
      await limited.close();
    }
  });

  it('a compliance user is refused operator routes (403); an operator gets them', async () => {
    const context = await newContext();
    const page = await login(context, server.url, 'alice', PASSWORD);
    expect((await page.request.get(`${server.url}/audit`)).status()).toBe(403);
    expect((await page.request.get(`${server.url}/api/users`)).status()).toBe(403);
    expect((await page.request.get(`${server.url}/api/audit`)).status()).toBe(403);
    const me = await (await page.request.get(`${server.url}/api/me`)).json();
    const add = await page.request.post(`${server.url}/api/users`, { data: { username: 'mallory', role: 'operator', password: 'long enough pw' }, headers: { 'x-csrf-token': me.csrfToken } });
    expect(add.status()).toBe(403);
    await context.close();

    const opContext = await newContext();
    const op = await login(opContext, server.url, 'olivia', OPERATOR_PASSWORD);
    await op.goto(`${server.url}/audit`);
    const audit = await op.textContent('#audit');
    expect(audit).toMatch(/alice/);
    expect(audit).toMatch(/login/);
    await shot(op, 'audit');
    expect((await op.request.get(`${server.url}/api/users`)).status()).toBe(200);
    await opContext.close();
  });

  it("every write without the session's CSRF token is refused with 403 and changes nothing", async () => {
    const context = await newContext();
    const page = await login(context, server.url, 'olivia', OPERATOR_PASSWORD);
    const me = await (await page.request.get(`${server.url}/api/me`)).json();
    const user = { username: 'carol', role: 'compliance', password: 'carol password 1' };
    const noToken = await page.request.post(`${server.url}/api/users`, { data: user });
    expect(noToken.status()).toBe(403);
    expect((await noToken.json()).message).toMatch(/CSRF/);
    expect((await page.request.post(`${server.url}/api/users`, { data: user, headers: { 'x-csrf-token': 'x'.repeat(43) } })).status()).toBe(403);
    expect(server.users.list().map((u) => u.username)).not.toContain('carol');
    const ok = await page.request.post(`${server.url}/api/users`, { data: user, headers: { 'x-csrf-token': me.csrfToken } });
    expect(ok.status()).toBe(201);
    expect((await page.request.delete(`${server.url}/api/users/carol`)).status()).toBe(403);
    expect((await page.request.delete(`${server.url}/api/users/carol`, { headers: { 'x-csrf-token': me.csrfToken } })).status()).toBe(204);
    // logout without the token: refused, the session survives; with the form (which carries it): logged out
    expect((await page.request.post(`${server.url}/logout`, { form: {} })).status()).toBe(403);
    expect((await page.request.get(`${server.url}/api/me`)).status()).toBe(200);
    await page.goto(`${server.url}/`);
    await Promise.all([page.waitForNavigation(), page.click('nav form button')]);
    expect(new URL(page.url()).pathname).toBe('/login');
    expect((await page.request.get(`${server.url}/api/me`)).status()).toBe(401);
    // login itself needs the token of the login page's session
    expect((await fetch(`${server.url}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'username=alice&password=x' })).status).toBe(403);
    await context.close();
  });
});

describe('the pages show the ledger as dpfed ledger --json computes it', () => {
  it('ε per institution on the page and from /api/ledger equal the CLI, for all runs and for one run', async () => {
    const context = await newContext();
    const page = await login(context, server.url, 'alice', PASSWORD);
    for (const [query, flags] of [
      ['', []],
      ['?run=run-a', ['--run', 'run-a']],
      ['?accountant=rdp&run=run-b', ['--accountant', 'rdp', '--run', 'run-b']],
    ] as [string, string[]][]) {
      const cli = dpfed(['ledger', '--db', db, '--json', ...flags]);
      expect(cli.code).toBe(0);
      const expected = JSON.parse(cli.stdout);
      const api = await (await page.request.get(`${server.url}/api/ledger${query}`)).json();
      expect(api).toEqual(expected);
      await page.goto(`${server.url}/epsilon${query}`);
      for (const inst of expected.institutions) {
        const row = page.locator('#epsilon-table tr', { has: page.locator(`[data-institution="${inst.institutionId}"]`) });
        for (const field of ['epsilon', 'epsilonTotal', 'delta', 'remaining', 'projectedRoundsLeft'] as const) {
          const value = await row.locator(`[data-field="${field}"]`).getAttribute('data-value');
          expect(value === '' ? null : Number(value), `${inst.institutionId} ${field} ${query}`).toBe(inst[field]);
        }
        expect(Number(await row.locator('[data-field="budget"]').getAttribute('data-value'))).toBe(inst.budget.epsilon);
      }
      expect(await page.locator('#spent-chart svg').count()).toBe(1);
      expect(await page.locator('#burn-down-chart svg').count()).toBe(1);
    }
    await page.goto(`${server.url}/epsilon`);
    await shot(page, 'epsilon');
    // the burn-down's last point is the institution's ε over all runs
    const burn = await (await page.request.get(`${server.url}/api/burn-down?institution=bank-002`)).json();
    const all = JSON.parse(dpfed(['ledger', '--db', db, '--json', '--institution', 'bank-002']).stdout).institutions[0];
    expect(burn.points.at(-1).epsilon).toBe(all.epsilonTotal);
    expect((await page.request.get(`${server.url}/api/ledger?accountant=xyz`)).status()).toBe(400);
    expect((await (await page.request.get(`${server.url}/api/ledger?accountant=xyz`)).json()).message).toMatch(/accountant/);
    await context.close();
  });

  it('overview, events, round detail, report, API docs: content and screenshots', async () => {
    const context = await newContext();
    const page = await login(context, server.url, 'alice', PASSWORD);
    await page.goto(`${server.url}/?run=run-a`);
    expect(await page.getAttribute('#chain-status', 'data-ok')).toBe('true');
    expect(await page.locator('#runs tbody tr').count()).toBe(2);
    expect(await page.locator('#rounds tbody tr').count()).toBe(6);
    expect(await page.locator('#auc-chart svg').count()).toBe(1);
    expect(await page.textContent('#auc-chart')).toMatch(/±1\.96 standard errors/);
    await shot(page, 'overview');

    await page.goto(`${server.url}/events?institution=bank-001&run=run-a`);
    expect(await page.locator('#events tbody tr').count()).toBe(6);
    expect(await page.locator('#events [data-chain="ok"]').count()).toBe(6);
    expect(await page.textContent('#receipts-none')).toMatch(/None/);
    await shot(page, 'events');

    await page.goto(`${server.url}/runs/run-a/rounds/3`);
    expect(await page.textContent('#participants')).toMatch(/dropped/);
    expect(await page.textContent('#privacy')).toMatch(/record/);
    expect(await page.textContent('#failures')).toBe('none');
    await shot(page, 'round');
    await page.goto(`${server.url}/runs/run-a/rounds/2`);
    expect(await page.textContent('#failures')).toMatch(/only 1 of 2 institutions reported/);

    const cli = JSON.parse(dpfed(['ledger', '--db', db, '--json', '--institution', 'bank-003', '--run', 'run-b']).stdout);
    await page.goto(`${server.url}/reports`);
    await shot(page, 'reports');
    await page.goto(`${server.url}/report?institution=bank-003&run=run-b`);
    expect(await page.textContent('#report-head-hash')).toBe(cli.head.hash);
    expect(Number(await page.getAttribute('#report-facts [data-field="epsilon"]', 'data-value'))).toBe(cli.institutions[0].epsilon);
    expect(await page.textContent('#report-facts')).toMatch(/DP-SGD/);
    expect(await page.textContent('#report-facts')).toMatch(/Rényi DP accountant/);
    expect(await page.textContent('#report-verification')).toMatch(/^verified/);
    await shot(page, 'report');
    const pdf = await page.pdf({ path: join(ARTIFACTS, 'report.pdf'), format: 'A4' });
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');

    const csv = await page.request.get(`${server.url}/export/events.csv?institution=bank-001`);
    expect(await csv.text()).toBe(dpfed(['ledger', '--db', db, '--export', 'csv', '--institution', 'bank-001']).stdout);
    const audited = server.users
      .auditLog()
      .filter((e) => e.username === 'alice')
      .map((e) => e.action);
    expect(audited).toContain('report');
    expect(audited).toContain('export');

    const docs = await (await page.request.get(`${server.url}/docs`)).json();
    expect(docs.openapi).toMatch(/^3\./);
    expect(Object.keys(docs.paths)).toEqual(expect.arrayContaining(['/api/ledger', '/api/verify', '/api/events', '/api/runs', '/api/runs/{runId}/rounds/{round}']));
    expect(docs.paths['/api/ledger'].get.responses['200'].content['application/json'].schema.properties.institutions).toBeDefined();
    await context.close();
  });

  it('shows the rows of a receipts table when the ledger has one', async () => {
    // The receipts table is added to the ledger by other work; its columns are unknown here, so the page
    // shows whatever table named like "receipt" it finds, column by column.
    const withReceipts = join(dir, 'receipts.sqlite');
    copyFileSync(db, withReceipts);
    const raw = new Database(withReceipts);
    const head = raw.prepare("SELECT value FROM ledger_meta WHERE key = 'head_hash'").get() as { value: string };
    raw.exec('CREATE TABLE ledger_receipts (head_seq INTEGER, head_hash TEXT, anchor TEXT, receipt TEXT)');
    raw.prepare('INSERT INTO ledger_receipts VALUES (?, ?, ?, ?)').run(50, head.value, 'transparency-log.example', 'receipt-0001');
    raw.close();
    const server2 = await startConsole({ dbPath: withReceipts, usersPath: `${db}.console.sqlite`, port: 0 });
    try {
      const context = await newContext();
      const page = await login(context, server2.url, 'alice', PASSWORD);
      await page.goto(`${server2.url}/events`);
      expect(await page.locator('#receipts-none').count()).toBe(0);
      expect(await page.textContent('#receipts')).toContain(head.value);
      expect(await page.textContent('#receipts')).toContain('receipt-0001');
      const api = await (await page.request.get(`${server2.url}/api/receipts`)).json();
      expect(api).toMatchObject({ present: true, table: 'ledger_receipts', columns: ['head_seq', 'head_hash', 'anchor', 'receipt'] });
      await context.close();
    } finally {
      await server2.close();
    }
  });

  it('a tampered database shows the chain broken on the page and names the row', async () => {
    const tampered = join(dir, 'tampered.sqlite');
    copyFileSync(db, tampered);
    const raw = new Database(tampered);
    const victim = raw.prepare("SELECT seq FROM ledger_events WHERE institution_id = 'bank-002' AND run_id = 'run-a' AND round = 4").get() as { seq: number };
    raw.exec('DROP TRIGGER ledger_events_no_update');
    raw.prepare('UPDATE ledger_events SET noise_multiplier = 3.5 WHERE seq = ?').run(victim.seq);
    raw.close();
    const verify = dpfed(['ledger', '--db', tampered, '--verify', '--json']);
    expect(verify.code).toBe(1);
    expect(JSON.parse(verify.stdout).badRow).toBe(victim.seq);

    const broken = await startConsole({ dbPath: tampered, usersPath: `${db}.console.sqlite`, port: 0 });
    try {
      const context = await newContext();
      const page = await login(context, broken.url, 'alice', PASSWORD);
      expect(await page.getAttribute('#chain-status', 'data-ok')).toBe('false');
      expect(await page.textContent('#chain-status')).toContain(`BROKEN at row ${victim.seq}`);
      await page.goto(`${broken.url}/events?institution=bank-002&run=run-a`);
      const row = page.locator('#events tr', { has: page.locator(`[data-seq="${victim.seq}"]`) });
      expect(await row.locator('[data-chain="broken"]').textContent()).toMatch(/altered row/);
      expect(await page.locator('#events [data-chain="unverified"]').count()).toBeGreaterThan(0);
      await shot(page, 'events-tampered');
      const api = await (await page.request.get(`${broken.url}/api/verify`)).json();
      expect(api).toEqual(JSON.parse(verify.stdout));
      await page.goto(`${broken.url}/report?institution=bank-002`);
      expect(await page.textContent('#report-verification')).toContain(`NOT verified: chain broken at row ${victim.seq}`);
      await context.close();
    } finally {
      await broken.close();
    }
  });

  it('follows a file another connection appends to (the cache is keyed by the database version) and never writes it', async () => {
    const context = await newContext();
    const page = await login(context, server.url, 'alice', PASSWORD);
    const before = await (await page.request.get(`${server.url}/api/ledger`)).json();
    expect(before.institutions.map((i: { institutionId: string }) => i.institutionId)).not.toContain('bank-new');
    const writer = new Database(db);
    const ledger = new PrivacyLedger(writer, { countersigner: fixture.coordinator });
    const key = generateIdentity();
    ledger.registerInstitution('bank-new', key.publicKey, { epsilon: 2, delta: 1e-5 });
    const event: LedgerEvent = {
      institutionId: 'bank-new',
      runId: 'run-b',
      round: 1,
      mode: 'record',
      sampleRate: 0.02,
      noiseMultiplier: 1.3,
      steps: 50,
      clipNorm: 1,
      delta: 1e-5,
      modelVersion: 0,
      time: new Date().toISOString(),
    };
    ledger.append(event, signEvent(event, key));
    // a cross-site evaluation release of the same institution: the events page filters by every mode
    const crossSite: LedgerEvent = { ...event, mode: 'cross-site', sampleRate: 1, steps: 1, noiseMultiplier: 4 };
    ledger.append(crossSite, signEvent(crossSite, key));
    writer.close();
    const after = await (await page.request.get(`${server.url}/api/ledger`)).json();
    expect(after).toEqual(JSON.parse(dpfed(['ledger', '--db', db, '--json']).stdout));
    expect(after.head.seq).toBe(before.head.seq + 3);
    await page.goto(`${server.url}/events?mode=cross-site`);
    expect(await page.locator('select[name="mode"] option').allTextContents()).toEqual(['all', 'record', 'client', 'evaluation', 'cross-site']);
    expect(await page.locator('select[name="mode"] option[selected]').textContent()).toBe('cross-site');
    expect(await page.locator('#events tbody tr').count()).toBe(1);
    expect(await page.textContent('#events tbody tr')).toMatch(/bank-new.*cross-site/);
    await page.goto(`${server.url}/epsilon`);
    expect(await page.locator('[data-institution="bank-new"]').count()).toBe(1);
    expect((await (await page.request.get(`${server.url}/api/verify`)).json()).ok).toBe(true);
    const bytes = readFileSync(db);
    await page.goto(`${server.url}/events`);
    await page.goto(`${server.url}/`);
    expect(readFileSync(db).equals(bytes)).toBe(true);
    await context.close();
  });
});
