// `dpfed console`: the compliance console, a web server read-only on a coordinator database or an
// institution's ledger, and `dpfed console users add|remove|list` to manage who may log in.
import { existsSync, readFileSync } from 'node:fs';
import { defaultUsersPath, startConsole } from '@dpfed/console/console-server';
import { ROLES, UsersStore, type Role } from '@dpfed/console/users-store';
import { renderHelp, runCommand, UsageError, type CommandSpec, type FlagValues } from '@dpfed/proto/command-flags';

const port = (v: number | string) => (Number(v) >= 0 && Number(v) < 65536 ? undefined : 'must be 0..65535');

export const command: CommandSpec = {
  name: 'console',
  summary: 'the compliance console: a web page over the epsilon ledger, budgets, rounds and the audit chain (read-only)',
  usage: 'dpfed console --db FILE [--port P] [--host H] [--users FILE]    |    dpfed console users add|remove|list --users FILE …',
  flags: [
    { name: 'db', type: 'string', required: true, help: 'coordinator database or institution ledger to show (opened read-only; a running coordinator may keep writing it)' },
    { name: 'port', type: 'int', default: 8080, help: 'HTTP port (0 = any free port)', check: port },
    {
      name: 'host',
      type: 'string',
      default: '127.0.0.1',
      help: 'address to bind (session cookies are Secure: browsers send them to 127.0.0.1/localhost over http, elsewhere only over https via a TLS proxy)',
    },
    { name: 'users', type: 'string', help: "the console's users and audit log file (default: <db>.console.sqlite)" },
    { name: 'login-rate', type: 'int', default: 10, help: 'login attempts allowed per client address and minute', check: (v) => (Number(v) >= 1 ? undefined : 'must be >= 1') },
  ],
  examples: [
    'dpfed console users add --users fed.sqlite.console.sqlite --username alice --role compliance < password.txt',
    'dpfed console --db fed.sqlite --port 8080',
    'dpfed console users --help     (the flags of users add, remove and list)',
  ],
};

export const usersCommand: CommandSpec = {
  name: 'console users',
  summary: 'add, remove or list console users (scrypt password hashes in the users file)',
  usage: 'dpfed console users add|remove|list (--users FILE | --db FILE) [--username NAME] [--role compliance|operator] [--password-file FILE]',
  flags: [
    { name: 'users', type: 'string', help: "the console's users file (created if absent)" },
    { name: 'db', type: 'string', help: 'instead of --users: the ledger database, whose users file is <db>.console.sqlite' },
    { name: 'username', type: 'string', help: 'with add/remove: the user name (1-64 of A-Z a-z 0-9 . _ @ -)' },
    { name: 'role', type: 'string', choices: ROLES, default: 'compliance', help: 'with add: compliance (read-only) or operator (also the audit log and user administration)' },
    { name: 'password-file', type: 'string', help: 'with add: read the password (at least 8 characters) from this file instead of stdin' },
    { name: 'json', type: 'boolean', help: 'with list: one JSON array' },
  ],
  examples: ['printf %s "$PASSWORD" | dpfed console users add --db fed.sqlite --username alice --role compliance', 'dpfed console users list --db fed.sqlite'],
};

function readPassword(f: FlagValues): string {
  let text: string;
  if (f.passwordFile !== undefined) {
    if (!existsSync(String(f.passwordFile))) throw new UsageError(`--password-file: no such file: ${f.passwordFile}`);
    text = readFileSync(String(f.passwordFile), 'utf8');
  } else {
    try {
      text = readFileSync(0, 'utf8');
    } catch (error) {
      throw new UsageError(`password: could not read stdin (${(error as Error).message}); use --password-file`);
    }
  }
  const password = text.replace(/\r?\n$/, '');
  if (password.length < 8) throw new UsageError(`password: must be at least 8 characters (from ${f.passwordFile !== undefined ? '--password-file' : 'stdin'})`);
  return password;
}

async function usersMain(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') {
    process.stdout.write(renderHelp(usersCommand));
    return action === undefined ? 2 : 0;
  }
  return runCommand(usersCommand, rest, async (f) => {
    if (!['add', 'remove', 'list'].includes(action)) throw new UsageError(`unknown action "${action}": expected add, remove or list`);
    if (f.users === undefined && f.db === undefined) throw new UsageError('--users (or --db) is required');
    if (f.users !== undefined && f.db !== undefined) throw new UsageError('--users and --db cannot be combined');
    const path = f.users !== undefined ? String(f.users) : defaultUsersPath(String(f.db));
    if (action !== 'list' && f.username === undefined) throw new UsageError(`--username is required with ${action}`);
    if (action !== 'add' && f.passwordFile !== undefined) throw new UsageError('--password-file goes with add only');
    const password = action === 'add' ? readPassword(f) : '';
    const store = new UsersStore(path);
    try {
      if (action === 'list') {
        const users = store.list();
        if (f.json) process.stdout.write(JSON.stringify(users) + '\n');
        else if (users.length === 0) process.stdout.write(`no users in ${path}\n`);
        else for (const u of users) process.stdout.write(`${u.username}\t${u.role}\t${u.createdAt}\n`);
        return 0;
      }
      const username = String(f.username);
      if (action === 'add') {
        try {
          await store.add(username, f.role as Role, password);
        } catch (error) {
          throw new UsageError((error as Error).message.replace(/^username:/, '--username:'));
        }
        store.audit({ username: '(command line)', action: 'user-add', outcome: 'ok', detail: `${username} (${f.role})`, ip: 'local' });
        process.stdout.write(`added ${username} (${f.role}) to ${path}\n`);
        return 0;
      }
      if (!store.remove(username)) throw new UsageError(`--username: ${username} does not exist in ${path}`);
      store.audit({ username: '(command line)', action: 'user-remove', outcome: 'ok', detail: username, ip: 'local' });
      process.stdout.write(`removed ${username} from ${path}\n`);
      return 0;
    } finally {
      store.close();
    }
  });
}

export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'users') return usersMain(argv.slice(1));
  return runCommand(command, argv, async (f) => {
    const db = String(f.db);
    if (!existsSync(db)) throw new UsageError(`--db: no such file: ${db}`);
    const usersPath = f.users !== undefined ? String(f.users) : defaultUsersPath(db);
    let server: Awaited<ReturnType<typeof startConsole>>;
    try {
      server = await startConsole({ dbPath: db, usersPath, host: String(f.host), port: Number(f.port), loginRateLimit: { max: Number(f.loginRate), timeWindowMs: 60_000 } });
    } catch (error) {
      const message = (error as Error).message;
      if (/EADDRINUSE|EACCES|EADDRNOTAVAIL/.test(message)) throw new UsageError(`--port: cannot listen on ${f.host}:${f.port}: ${message}`);
      throw new UsageError(`--db: ${message}`);
    }
    process.stdout.write(`dpfed console serving ${server.url} on ${db} (read-only); users and audit log in ${usersPath}\n`);
    if (server.users.list().length === 0)
      process.stderr.write(`dpfed console: no users yet; add one with: dpfed console users add --users ${usersPath} --username NAME --role compliance < password-file\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    return 0;
  });
}
