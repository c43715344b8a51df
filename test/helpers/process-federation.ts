// A federation of real processes for the fault tests (test/faults-*.test.ts): `dpfed coordinator` and
// `dpfed client` started as `node bin/dpfed.js …`, as cli/demo-command.ts starts them, with mutual TLS
// (one CA per test file), enrolled identity keys in a key dir, and each bank's own ledger file. A process
// can be given DPFED_TEST_EXIT_AT (proto/test-exit-hook.ts) so it SIGKILLs itself at one point of a round,
// and started again with the same identity, key dir, ledger and database.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { institutionKeyPath, loadOrCreateIdentity } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { featureColumns, readSchemaFile } from '@dpfed/proto/data-schema';
import { SeededRandom } from '@dpfed/proto/seeded-random';
import { NODE_HEAP_FLAGS } from 'dpfed/node-heap';
import { DPFED_BIN, FRAUD_CSV, FRAUD_SCHEMA, ROOT, testPki } from './federation-fixture.ts';

export type Outcome = { code: number | null; stdout: string; stderr: string };

/** Runs `dpfed ARGS` to its end (asynchronously, so the test worker keeps serving while it runs). */
export function dpfed(args: string[], env: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(process.execPath, [DPFED_BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

export interface ProcessHandle {
  child: ChildProcess;
  /** stdout lines parsed as JSON (the coordinator's --json events, the client's --json summary). */
  events: Record<string, any>[];
  /** stderr lines (the processes' logs). */
  logs: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first event (already seen or to come) that `match` accepts; rejects after `ms` or when the process exits first. */
  waitFor(match: (e: Record<string, any>) => boolean, ms: number, what: string): Promise<Record<string, any>>;
}

/** Follows `child`'s output; every line also goes to `logFile` (kept for a failed test's diagnosis). */
function track(child: ChildProcess, logFile: string): ProcessHandle {
  const events: Record<string, any>[] = [];
  const logs: string[] = [];
  const keep = (stream: string, line: string) => appendFileSync(logFile, `${new Date().toISOString()} ${stream} ${line}\n`);
  const listeners = new Set<() => void>();
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    keep('out', line);
    try {
      events.push(JSON.parse(line));
    } catch {
      logs.push(line);
    }
    for (const l of listeners) l();
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    keep('err', line);
    logs.push(line);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      keep('exit', `${code ?? signal}`);
      resolve(exit);
      for (const l of listeners) l();
    }),
  );
  return {
    child,
    events,
    logs,
    exited,
    waitFor(match, ms, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.find(match);
          if (found) return done(() => resolve(found));
          if (exit) return done(() => reject(new Error(`${what}: the process exited (${exit!.code ?? exit!.signal}) first; its log:\n${logs.slice(-30).join('\n')}`)));
        };
        const timer = setTimeout(() => done(() => reject(new Error(`${what}: not within ${ms} ms; its log:\n${logs.slice(-30).join('\n')}`))), ms);
        const done = (settle: () => void) => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
  };
}

export interface ProcessFederation {
  dir: string;
  db: string;
  keyDir: string;
  banks: string[];
  ledgerOf(id: string): string;
  /** Starts `dpfed coordinator` (port 0 the first time, then the same port); `exitAt` sets DPFED_TEST_EXIT_AT. */
  startCoordinator(o?: { exitAt?: string; port?: number }): ProcessHandle;
  /** Starts `dpfed client` for bank `id` with its identity, key dir and ledger. */
  startBank(id: string, port: number, o?: { exitAt?: string }): ProcessHandle;
  /** Every process started and still running gets SIGKILL. */
  killAll(): void;
}

/**
 * Lays out a federation in `dir`: the bundled card-fraud CSV split across `banks` files, their identity
 * keys (in `dir`/keys) enrolled in an enrolment file, and the coordinator's run flags `runFlags`; the
 * coordinator's database is `o.db` (default `dir`/coordinator.sqlite).
 */
export async function processFederation(dir: string, banks: number, runFlags: string[], o: { db?: string } = {}): Promise<ProcessFederation> {
  const pki = await testPki();
  const ids = Array.from({ length: banks }, (_, i) => `bank-${i + 1}`);
  for (const id of ids) await pki.issue(id);
  const keyDir = join(dir, 'keys');
  const db = o.db ?? join(dir, 'coordinator.sqlite');
  const lines = readFileSync(FRAUD_CSV, 'utf8')
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '');
  const [header, ...rows] = lines;
  new SeededRandom('faults:split').shuffle(rows);
  ids.forEach((id, b) => writeFileSync(join(dir, `${id}.csv`), [header, ...rows.filter((_, i) => i % banks === b)].join('\n') + '\n'));
  const enrolFile = join(dir, 'enrolment.json');
  writeFileSync(
    enrolFile,
    JSON.stringify(
      ids.map((id) => ({
        institution: id,
        publicKey: Buffer.from(loadOrCreateIdentity(institutionKeyPath(keyDir, id)).publicKey).toString('hex'),
      })),
    ),
  );
  const features = featureColumns(readSchemaFile(FRAUD_SCHEMA)).length;
  const running: ChildProcess[] = [];
  let launched = 0;
  const launch = (args: string[], exitAt?: string): ProcessHandle => {
    const env = { ...process.env };
    if (exitAt) env.DPFED_TEST_EXIT_AT = exitAt;
    else delete env.DPFED_TEST_EXIT_AT;
    const child = spawn(process.execPath, [...NODE_HEAP_FLAGS, DPFED_BIN, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.push(child);
    return track(child, join(dir, `${String(++launched).padStart(2, '0')}-${args[0]}${args[0] === 'client' ? `-${args[args.indexOf('--institution') + 1]}` : ''}.log`));
  };
  const serverTls = ['--tls-ca', pki.caPath, '--tls-cert', join(pki.dir, 'coordinator.crt'), '--tls-key', join(pki.dir, 'coordinator.key')];
  const ledgerOf = (id: string) => join(dir, `${id}.ledger.sqlite`);
  return {
    dir,
    db,
    keyDir,
    banks: ids,
    ledgerOf,
    startCoordinator: (o = {}) =>
      launch(
        [
          'coordinator',
          '--port',
          String(o.port ?? 0),
          '--db',
          db,
          '--key-dir',
          keyDir,
          '--json',
          '--log-format',
          'json',
          '--features',
          String(features),
          '--enrol-file',
          enrolFile,
          ...serverTls,
          ...runFlags,
        ],
        o.exitAt,
      ),
    startBank: (id, port, o = {}) =>
      launch(
        [
          'client',
          '--coordinator',
          `127.0.0.1:${port}`,
          '--institution',
          id,
          '--data',
          join(dir, `${id}.csv`),
          '--schema',
          FRAUD_SCHEMA,
          '--backend',
          'wasm',
          '--key-dir',
          keyDir,
          '--ledger',
          ledgerOf(id),
          '--budget-epsilon',
          '10',
          '--log-format',
          'json',
          '--json',
          ...pki.clientFlags(id),
        ],
        o.exitAt,
      ),
    killAll: () => running.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')),
  };
}

/** The ledger events of `file` as "institution/run/round/mode" keys, in ledger order. */
export function ledgerKeys(file: string, institutionId?: string): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return new PrivacyLedger(db).events(institutionId ? { institutionId } : {}).map((r) => `${r.event.institutionId}/${r.event.runId}/${r.event.round}/${r.event.mode}`);
  } finally {
    db.close();
  }
}

/** The keys of `keys` that occur more than once. */
export function repeated(keys: string[]): string[] {
  return keys.filter((k, i) => keys.indexOf(k) !== i);
}
