// Login, logout, the current user, and user administration for operators. Every login (ok or failed),
// logout and user change is written to the audit log. Login is rate-limited per client address.
import type { FastifyInstance } from 'fastify';
import { clearSessionCookie, setSessionCookie } from './access-control.ts';
import { meSchema, newUserSchema, userSchema, usernameParamsSchema, errorSchema, auditEntrySchema } from './api-schemas.ts';
import { layout } from './html.ts';
import { loginBody } from './pages/login-page.ts';
import type { SessionStore } from './sessions.ts';
import type { Role, UsersStore } from './users-store.ts';

export interface AuthDeps {
  users: UsersStore;
  sessions: SessionStore;
  /** Login attempts allowed per client address and window. */
  loginRateLimit: { max: number; timeWindowMs: number };
}

export function registerAuthRoutes(app: FastifyInstance, d: AuthDeps): void {
  const { users, sessions } = d;

  app.get('/login', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    let session = request.consoleSession;
    if (session?.user) return reply.redirect('/', 303);
    if (!session) {
      session = sessions.create();
      setSessionCookie(reply, session);
    }
    return reply.type('text/html; charset=utf-8').send(layout({ title: 'Log in', active: 'login', body: loginBody(session.csrfToken) }));
  });

  app.post<{ Body: { username?: string; password?: string } }>(
    '/login',
    {
      config: { public: true, rateLimit: { max: d.loginRateLimit.max, timeWindow: d.loginRateLimit.timeWindowMs } },
      schema: {
        hide: true,
        body: { type: 'object', properties: { username: { type: 'string', maxLength: 200 }, password: { type: 'string', maxLength: 1024 }, _csrf: { type: 'string' } } },
      },
    },
    async (request, reply) => {
      const username = String(request.body?.username ?? '');
      const user = await users.authenticate(username, String(request.body?.password ?? ''));
      users.audit({ username: username.slice(0, 64), action: 'login', outcome: user ? 'ok' : 'failed', detail: user ? `role ${user.role}` : 'wrong user name or password', ip: request.ip });
      const anonymous = request.consoleSession!;
      if (!user) {
        return reply
          .code(401)
          .type('text/html; charset=utf-8')
          .send(layout({ title: 'Log in', active: 'login', body: loginBody(anonymous.csrfToken, 'Wrong user name or password.') }));
      }
      sessions.destroy(anonymous.id);
      const session = sessions.create({ username: user.username, role: user.role });
      setSessionCookie(reply, session);
      return reply.redirect('/', 303);
    },
  );

  app.post('/logout', { schema: { hide: true } }, async (request, reply) => {
    const session = request.consoleSession!;
    users.audit({ username: session.user!.username, action: 'logout', outcome: 'ok', detail: '', ip: request.ip });
    sessions.destroy(session.id);
    clearSessionCookie(reply);
    return reply.redirect('/login', 303);
  });

  app.get('/api/me', { schema: { summary: 'the logged-in user, role and the CSRF token to send with writes', response: { 200: meSchema } } }, async (request) => {
    const s = request.consoleSession!;
    return { username: s.user!.username, role: s.user!.role, csrfToken: s.csrfToken };
  });

  const operator = { roles: ['operator'] as Role[] };
  app.get('/api/users', { config: operator, schema: { summary: 'console users (operators only)', response: { 200: { type: 'array', items: userSchema } } } }, async () => users.list());

  app.post<{ Body: { username: string; role: Role; password: string } }>(
    '/api/users',
    { config: operator, schema: { summary: 'add a console user (operators only; CSRF token required)', body: newUserSchema, response: { 201: userSchema, 409: errorSchema } } },
    async (request, reply) => {
      const { username, role, password } = request.body;
      const actor = request.consoleSession!.user!.username;
      try {
        const user = await users.add(username, role, password);
        users.audit({ username: actor, action: 'user-add', outcome: 'ok', detail: `${username} (${role})`, ip: request.ip });
        return reply.code(201).send(user);
      } catch (error) {
        users.audit({ username: actor, action: 'user-add', outcome: 'failed', detail: `${username}: ${(error as Error).message}`, ip: request.ip });
        return reply.code(409).send({ statusCode: 409, error: 'Conflict', message: (error as Error).message });
      }
    },
  );

  app.delete<{ Params: { username: string } }>(
    '/api/users/:username',
    {
      config: operator,
      schema: { summary: 'remove a console user and end their sessions (operators only; CSRF token required)', params: usernameParamsSchema, response: { 204: { type: 'null' }, 404: errorSchema } },
    },
    async (request, reply) => {
      const { username } = request.params;
      const removed = users.remove(username);
      users.audit({ username: request.consoleSession!.user!.username, action: 'user-remove', outcome: removed ? 'ok' : 'failed', detail: username, ip: request.ip });
      if (!removed) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `username: ${username} does not exist` });
      sessions.destroyUser(username);
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: { limit: number } }>(
    '/api/audit',
    {
      config: operator,
      schema: {
        summary: 'the audit log, newest first (operators only)',
        querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 1, maximum: 10000, default: 500 } }, additionalProperties: false },
        response: { 200: { type: 'array', items: auditEntrySchema } },
      },
    },
    async (request) => users.auditLog(request.query.limit),
  );
}
