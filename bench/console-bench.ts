// The compliance console's ε page over a large ledger (100 institutions × 1,000 events, written by the
// project's own CoordinatorStore and PrivacyLedger with real signatures): server time of GET /epsilon
// through fastify's request injection (routing, session check, report, charts, HTML; no network), median
// of repeated requests at one ledger head (goal ≤ 50 ms), and the first request, which composes every
// institution's ε once and renders the charts, beside it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConsole } from '@dpfed/console/console-server';
import { buildConsoleFixture } from './console-fixture.ts';
import { median, roundTo } from './statistics.ts';

export async function benchConsole(o: { institutions?: number; events?: number; repeats?: number } = {}): Promise<Record<string, number>> {
  const institutions = o.institutions ?? 100;
  const events = o.events ?? 1000;
  const dir = mkdtempSync(join(tmpdir(), 'dpfed-console-bench-'));
  try {
    const path = join(dir, 'coordinator.sqlite');
    const t0 = performance.now();
    buildConsoleFixture({ path, institutions, rounds: events, dropouts: false });
    const buildSeconds = (performance.now() - t0) / 1000;
    const server = await createConsole({ dbPath: path, usersPath: join(dir, 'users.sqlite') });
    try {
      await server.users.add('bench', 'compliance', 'bench password');
      const loginPage = await server.app.inject({ url: '/login' });
      const anonymous = String(loginPage.headers['set-cookie']).split(';')[0];
      const csrf = /name="_csrf" value="([^"]+)"/.exec(loginPage.body)?.[1] ?? '';
      const login = await server.app.inject({
        method: 'POST',
        url: '/login',
        headers: { cookie: anonymous, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ _csrf: csrf, username: 'bench', password: 'bench password' }).toString(),
      });
      if (login.statusCode !== 303) throw new Error(`console bench: login failed with ${login.statusCode}`);
      const cookie = String(login.headers['set-cookie']).split(';')[0];
      const get = async () => {
        const start = performance.now();
        const r = await server.app.inject({ url: '/epsilon', headers: { cookie } });
        const ms = performance.now() - start;
        if (r.statusCode !== 200 || !r.body.includes('epsilon-table')) throw new Error(`console bench: GET /epsilon answered ${r.statusCode}`);
        return ms;
      };
      const cold = await get();
      const times: number[] = [];
      for (let i = 0; i < (o.repeats ?? 30); i++) times.push(await get());
      return {
        consoleLedgerPageMs: roundTo(median(times), 2),
        consoleLedgerPageColdMs: roundTo(cold, 1),
        consoleLedgerEvents: institutions * events,
        consoleLedgerBuildSeconds: roundTo(buildSeconds, 1),
      };
    } finally {
      await server.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
