// The compliance console: a fastify server, read-only on a coordinator database or an institution's own
// ledger file, with its users, sessions' audit log in a separate small SQLite file. Security headers
// (helmet, a Content-Security-Policy without inline scripts), signed session cookies, CSRF tokens on every
// write, a rate limit on login, and an OpenAPI document of the JSON API at /docs.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fastifyCookie from '@fastify/cookie';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { installAccessControl } from './access-control.ts';
import { registerApiRoutes } from './api-routes.ts';
import { registerAuthRoutes } from './auth-routes.ts';
import { CoordinatorRecords } from './coordinator-records.ts';
import { LedgerSource } from './ledger-source.ts';
import { registerPageRoutes } from './page-routes.ts';
import { SessionStore } from './sessions.ts';
import { UsersStore } from './users-store.ts';

export interface ConsoleOptions {
  /** The coordinator database or institution ledger to read (opened read-only). */
  dbPath: string;
  /** The console's users and audit file (default `<db>.console.sqlite`). */
  usersPath?: string;
  /** Login attempts per client address and window (default 10 per minute). */
  loginRateLimit?: { max: number; timeWindowMs: number };
  /** Session lifetime (default 8 hours). */
  sessionTtlMs?: number;
}

export interface ConsoleServer {
  app: FastifyInstance;
  source: LedgerSource;
  users: UsersStore;
  /** Stops the server and closes both databases. */
  close(): Promise<void>;
}

export const defaultUsersPath = (dbPath: string) => `${dbPath}.console.sqlite`;

const STYLESHEET = readFileSync(new URL('./static/console.css', import.meta.url), 'utf8');

/** Builds the console (not yet listening). Throws naming the file when the database is not a dpfed ledger. */
export async function createConsole(o: ConsoleOptions): Promise<ConsoleServer> {
  const source = new LedgerSource(o.dbPath);
  let users: UsersStore;
  try {
    users = new UsersStore(o.usersPath ?? defaultUsersPath(o.dbPath));
  } catch (error) {
    await source.close();
    throw error;
  }
  const records = new CoordinatorRecords(source.db);
  const sessions = new SessionStore(o.sessionTtlMs);
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });

  // HTML forms post application/x-www-form-urlencoded; parsed into a plain object (last value wins).
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  await app.register(fastifyCookie, { secret: randomBytes(32).toString('hex') });
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        scriptSrcAttr: ["'none'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        objectSrc: ["'none'"],
        frameAncestors: ["'none'"],
        formAction: ["'self'"],
        baseUri: ["'self'"],
        upgradeInsecureRequests: null,
      },
    },
  });
  await app.register(fastifyRateLimit, { global: false });
  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'dpfed compliance console API',
        version: '1',
        description: 'Read-only view of a dpfed ε ledger and coordinator database. Every route needs a session cookie (log in at /login); writes need the x-csrf-token header from GET /api/me.',
      },
    },
  });
  installAccessControl(app, sessions);

  app.get(
    '/healthz',
    { config: { public: true }, schema: { summary: 'liveness (no session needed)', response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } } } },
    async () => ({ ok: true }),
  );
  app.get('/static/console.css', { config: { public: true }, schema: { hide: true } }, async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('cache-control', 'max-age=300').send(STYLESHEET),
  );
  app.get('/docs', { schema: { hide: true } }, async () => app.swagger());

  registerAuthRoutes(app, { users, sessions, loginRateLimit: o.loginRateLimit ?? { max: 10, timeWindowMs: 60_000 } });
  registerApiRoutes(app, { source, records });
  registerPageRoutes(app, { source, records, users });

  app.setErrorHandler((error: { statusCode?: number; message: string; validation?: unknown }, _request, reply) => {
    const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    reply.code(status).send({
      statusCode: status,
      error: status === 400 ? 'Bad Request' : status === 429 ? 'Too Many Requests' : 'Error',
      message: status === 500 ? `internal error: ${error.message}` : error.message,
    });
  });

  await app.ready();
  let closed = false;
  return {
    app,
    source,
    users,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      users.close();
      await source.close();
    },
  };
}

/** Creates the console and listens; resolves with the URL it serves. */
export async function startConsole(o: ConsoleOptions & { host?: string; port: number }): Promise<ConsoleServer & { url: string }> {
  const server = await createConsole(o);
  try {
    const address = await server.app.listen({ host: o.host ?? '127.0.0.1', port: o.port });
    return { ...server, url: address };
  } catch (error) {
    await server.close();
    throw error;
  }
}
