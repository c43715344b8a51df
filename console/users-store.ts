// The console's own small SQLite file (`--users FILE`, default `<db>.console.sqlite`): console users with
// their role and scrypt password hash, and the audit log of logins and exports. It is separate from the
// ledger database because that one is opened read-only.
import Database from 'better-sqlite3';
import { hashPassword, verifyPassword, decoyHash } from './password-hash.ts';

export const ROLES = ['compliance', 'operator'] as const;
export type Role = (typeof ROLES)[number];

export interface ConsoleUser {
  username: string;
  role: Role;
  createdAt: string;
}

export interface AuditEntry {
  id: number;
  at: string;
  username: string;
  action: string;
  outcome: 'ok' | 'failed';
  detail: string;
  ip: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS console_users (
  username TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('compliance', 'operator')),
  password_hash TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, username TEXT NOT NULL, action TEXT NOT NULL,
  outcome TEXT NOT NULL, detail TEXT NOT NULL, ip TEXT NOT NULL);
`;

const USERNAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;

export function checkUsername(username: string): void {
  if (typeof username !== 'string' || !USERNAME_RE.test(username)) throw new Error(`username: expected 1-64 characters of A-Z a-z 0-9 . _ @ -, got ${JSON.stringify(username)}`);
}

export class UsersStore {
  readonly db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.exec(SCHEMA);
  }

  close(): void {
    this.db.close();
  }

  async add(username: string, role: Role, password: string): Promise<ConsoleUser> {
    checkUsername(username);
    if (!ROLES.includes(role)) throw new Error(`role: expected one of ${ROLES.join('|')}, got ${JSON.stringify(role)}`);
    const hash = await hashPassword(password);
    const createdAt = new Date().toISOString();
    const result = this.db.prepare('INSERT OR IGNORE INTO console_users (username, role, password_hash, created_at) VALUES (?, ?, ?, ?)').run(username, role, hash, createdAt);
    if (result.changes === 0) throw new Error(`username: ${username} already exists (remove it first)`);
    return { username, role, createdAt };
  }

  remove(username: string): boolean {
    return this.db.prepare('DELETE FROM console_users WHERE username = ?').run(username).changes > 0;
  }

  list(): ConsoleUser[] {
    return this.db.prepare('SELECT username, role, created_at AS createdAt FROM console_users ORDER BY username').all() as ConsoleUser[];
  }

  /** The user when the password matches; undefined otherwise (an unknown user costs the same scrypt time). */
  async authenticate(username: string, password: string): Promise<ConsoleUser | undefined> {
    const row = (
      typeof username === 'string' && USERNAME_RE.test(username)
        ? this.db.prepare('SELECT username, role, password_hash AS hash, created_at AS createdAt FROM console_users WHERE username = ?').get(username)
        : undefined
    ) as (ConsoleUser & { hash: string }) | undefined;
    const ok = await verifyPassword(typeof password === 'string' ? password : '', row?.hash ?? (await decoyHash()));
    if (!row || !ok) return undefined;
    return { username: row.username, role: row.role, createdAt: row.createdAt };
  }

  audit(entry: Omit<AuditEntry, 'id' | 'at'>): void {
    this.db
      .prepare('INSERT INTO console_audit (at, username, action, outcome, detail, ip) VALUES (?, ?, ?, ?, ?, ?)')
      .run(new Date().toISOString(), entry.username, entry.action, entry.outcome, entry.detail, entry.ip);
  }

  auditLog(limit = 500): AuditEntry[] {
    return this.db.prepare('SELECT id, at, username, action, outcome, detail, ip FROM console_audit ORDER BY id DESC LIMIT ?').all(limit) as AuditEntry[];
  }
}
