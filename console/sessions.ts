// Server-side console sessions, kept in memory: the browser holds only a random session id (in a signed,
// httpOnly, Secure, SameSite=Strict cookie). A session starts anonymous when the login page is shown, so the
// login form already carries a CSRF token; logging in replaces it with a fresh session (new id, new token),
// so an id known before login is worthless after it.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Role } from './users-store.ts';

export interface Session {
  id: string;
  /** Sent with every non-GET request (form field `_csrf` or header `x-csrf-token`) and compared here. */
  csrfToken: string;
  user?: { username: string; role: Role };
  expiresAt: number;
}

export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly ttlMs = 8 * 3600_000,
    private readonly maxSessions = 10_000,
  ) {}

  create(user?: Session['user']): Session {
    this.sweep();
    const session: Session = { id: randomBytes(32).toString('base64url'), csrfToken: randomBytes(32).toString('base64url'), user, expiresAt: Date.now() + this.ttlMs };
    this.sessions.set(session.id, session);
    return session;
  }

  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (session.expiresAt <= Date.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return session;
  }

  destroy(id: string): void {
    this.sessions.delete(id);
  }

  /** Ends every session of a user (after the user is removed). */
  destroyUser(username: string): void {
    for (const [id, s] of this.sessions) if (s.user?.username === username) this.sessions.delete(id);
  }

  /** Drops expired sessions, then, beyond `maxSessions`, anonymous ones (cheap to make) before logged-in ones. */
  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
    if (this.sessions.size < this.maxSessions) return;
    // anonymous sessions go first, oldest first, so a flood of login-page visits does not log anyone out
    for (const [id, s] of this.sessions) {
      if (this.sessions.size < this.maxSessions) return;
      if (!s.user) this.sessions.delete(id);
    }
    while (this.sessions.size >= this.maxSessions) this.sessions.delete(this.sessions.keys().next().value as string);
  }
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function csrfMatches(session: Session, presented: unknown): boolean {
  if (typeof presented !== 'string') return false;
  const a = Buffer.from(session.csrfToken);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}
