// Who may see what. Every request is resolved to its server-side session (signed cookie → SessionStore);
// without a logged-in session only routes marked `public` answer (/healthz, the login page and form, the
// stylesheet): pages redirect to /login, the API answers 401. A route may name the roles allowed
// (`config.roles`); others get 403. Every request that can change something (not GET/HEAD) must carry the
// session's CSRF token (form field `_csrf` or header `x-csrf-token`), or it is refused with 403 before
// its handler runs.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { csrfMatches, type Session, type SessionStore } from './sessions.ts';
import type { Role } from './users-store.ts';

export const SESSION_COOKIE = 'dpfed_console';

declare module 'fastify' {
  interface FastifyRequest {
    consoleSession: Session | null;
  }
  interface FastifyContextConfig {
    /** Reachable without a logged-in session. */
    public?: boolean;
    /** Only these roles (default: any logged-in user). */
    roles?: Role[];
  }
}

export function setSessionCookie(reply: FastifyReply, session: Session): void {
  reply.setCookie(SESSION_COOKIE, session.id, { signed: true, httpOnly: true, secure: true, sameSite: 'strict', path: '/' });
}

export function clearSessionCookie(reply: FastifyReply): void {
  reply.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, secure: true, sameSite: 'strict' });
}

function sessionOf(request: FastifyRequest, sessions: SessionStore): Session | null {
  const raw = request.cookies?.[SESSION_COOKIE];
  if (!raw) return null;
  const unsigned = request.unsignCookie(raw);
  if (!unsigned.valid || !unsigned.value) return null;
  return sessions.get(unsigned.value) ?? null;
}

const isApi = (request: FastifyRequest) => request.url === '/api' || request.url.startsWith('/api/') || request.url.startsWith('/docs');

export function installAccessControl(app: FastifyInstance, sessions: SessionStore): void {
  app.decorateRequest('consoleSession', null);

  app.addHook('onRequest', async (request, reply) => {
    request.consoleSession = sessionOf(request, sessions);
    const config = request.routeOptions.config ?? {};
    if (config.public) return;
    const user = request.consoleSession?.user;
    if (!user) {
      if (isApi(request) || request.method !== 'GET') return reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'log in first (no valid session)' });
      return reply.redirect('/login', 303);
    }
    if (config.roles && !config.roles.includes(user.role)) {
      return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: `role ${user.role} may not use ${request.method} ${request.routeOptions.url}; needs ${config.roles.join(' or ')}` });
    }
  });

  // After the body is parsed, so a form's _csrf field can be read.
  app.addHook('preHandler', async (request, reply) => {
    if (request.method === 'GET' || request.method === 'HEAD') return;
    const session = request.consoleSession;
    const body = request.body as Record<string, unknown> | undefined;
    const presented = request.headers['x-csrf-token'] ?? (body && typeof body === 'object' ? body._csrf : undefined);
    if (!session || !csrfMatches(session, presented)) {
      return reply.code(403).send({ statusCode: 403, error: 'Forbidden', message: 'CSRF token missing or wrong (_csrf field or x-csrf-token header)' });
    }
  });
}
