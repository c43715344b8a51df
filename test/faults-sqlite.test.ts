// Faults of the coordinator's SQLite file, made real: the database locked by another process (an open
// BEGIN EXCLUSIVE from a second connection), the file made immutable (chattr +i: the tests run as root,
// where file modes do not stop writes; on ext4 every write then fails with EPERM, also through a file
// descriptor opened before, as on a read-only file system), and the disk full (the database on a small
// tmpfs, mounted by the test, filled to the last byte). A scenario the sandbox cannot make real (no
// chattr, no mount) is skipped, not simulated.
// At start the coordinator exits with an error naming the file and the problem; during a run the round
// that meets the fault fails whole (nothing half-written) and runs again once the fault is gone, every
// round commits once, and both sides' ledgers verify.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from './helpers/federation-fixture.ts';
import { dpfed, ledgerKeys, processFederation, repeated, type ProcessFederation } from './helpers/process-federation.ts';

/** Whether this sandbox lets the tests mount a tmpfs (root in a container that allows it). */
function canMountTmpfs(): boolean {
  const probe = tempDir('dpfed-faults-mount-probe-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Whether chattr +i works in the temp directory (root, a file system with the immutable flag). */
function canChattr(): boolean {
  const probe = tempDir('dpfed-faults-chattr-probe-');
  try {
    writeFileSync(join(probe, 'f'), 'x');
    execFileSync('chattr', ['+i', join(probe, 'f')], { stdio: 'ignore' });
    execFileSync('chattr', ['-i', join(probe, 'f')], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}
const MOUNTABLE = canMountTmpfs();
const CHATTR = canChattr();

let dir: string | undefined;
let mounted: string | undefined;
let fullDir: string | undefined;
let federation: ProcessFederation | undefined;
afterAll(() => {
  federation?.killAll();
  for (const base of [dir, mounted]) {
    for (const f of ['coordinator.sqlite', 'coordinator.sqlite-wal']) {
      if (!base) continue;
      try {
        execFileSync('chattr', ['-i', join(base, f)], { stdio: 'ignore' });
      } catch {
        /* not there */
      }
    }
  }
  if (mounted) execFileSync('umount', ['-l', mounted], { stdio: 'ignore' });
  // DPFED_TEST_KEEP=1 keeps the folders: each process's output is in its own NN-<process>.log there
  for (const d of [dir, fullDir]) if (d && !process.env.DPFED_TEST_KEEP) rmSync(d, { recursive: true, force: true });
});

const ROUNDS = 8;
const RUN = [
  '--rounds',
  String(ROUNDS),
  '--min-clients',
  '3',
  '--privacy',
  'record',
  '--epsilon',
  '3',
  '--aggregation',
  'plain',
  '--local-steps',
  '4',
  '--round-timeout',
  '10',
  '--phase-timeout',
  '10',
  '--evaluate-every',
  '1',
];

interface Fault {
  name: string;
  /** Sets the fault on the database file `db`; returns what lifts it. */
  apply: (db: string) => () => void;
  /** What the failed round's reason must say after the file's name. */
  problem: RegExp;
}

const LOCKED: Fault = {
  name: 'locked by another connection',
  apply: (db) => {
    const other = new Database(db);
    other.exec('BEGIN EXCLUSIVE');
    return () => {
      other.exec('ROLLBACK');
      other.close();
    };
  },
  problem: /the database is locked by another connection .*\(SQLITE_BUSY/,
};

// ext4 refuses every write to an immutable file, also through a descriptor opened before (tmpfs does not)
const IMMUTABLE: Fault = {
  name: 'immutable files (chattr +i)',
  apply: (db) => {
    execFileSync('chattr', ['+i', db, `${db}-wal`]);
    return () => execFileSync('chattr', ['-i', db, `${db}-wal`]);
  },
  problem: /\((SQLITE_IOERR|SQLITE_READONLY)\w*:/,
};

const DISK_FULL: Fault = {
  name: 'disk full',
  apply: (db) => {
    // written until the file system refuses (the coordinator may take some of the space meanwhile)
    const filler = join(dirname(db), 'filler');
    const fd = openSync(filler, 'w');
    const chunk = Buffer.alloc(Number(statfsSync(dirname(db)).bsize));
    try {
      for (;;) writeSync(fd, chunk);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
    } finally {
      closeSync(fd);
    }
    expect(statfsSync(dirname(db)).bavail).toBe(0);
    return () => rmSync(filler);
  },
  problem: /the disk \(or the file system holding it\) is full \(SQLITE_FULL/,
};

/**
 * Runs a federation of 3 `dpfed client` processes on a coordinator process whose database is `db`; after
 * round 1, sets each fault as soon as the round before committed and lifts it once a round failed on it.
 * Checks the failures' reasons, and that every round committed once and both sides' ledgers verify.
 */
async function runThroughFaults(fed: ProcessFederation, faults: Fault[]): Promise<void> {
  const db = fed.db;
  const coordinator = fed.startCoordinator();
  const listening = await coordinator.waitFor((e) => e.event === 'listening', 60_000, 'the coordinator to listen');
  const port = Number(listening.port);
  const runId = String(listening.runId);
  const banks = fed.banks.map((id) => fed.startBank(id, port));
  await coordinator.waitFor((e) => e.event === 'round' && e.round === 1, 120_000, 'round 1');
  for (const fault of faults) {
    const before = coordinator.events.length;
    const lift = fault.apply(db);
    let failed: Record<string, any>;
    try {
      failed = await coordinator.waitFor((e) => coordinator.events.indexOf(e) >= before && e.event === 'round-failed', 90_000, `a round to fail (${fault.name})`);
    } finally {
      lift();
    }
    expect(failed.reason, fault.name).toContain(db);
    expect(failed.reason, fault.name).toMatch(fault.problem);
    // the round that failed committed nothing: it is the one after the last committed, and is run again
    const committed = coordinator.events
      .slice(0, coordinator.events.indexOf(failed))
      .filter((e) => e.event === 'round')
      .map((e) => e.round as number);
    expect(failed.round, fault.name).toBe(Math.max(0, ...committed) + 1);
    await coordinator.waitFor((e) => e.event === 'round' && e.round === failed.round, 120_000, `round ${failed.round} after the fault was lifted (${fault.name})`);
  }
  await coordinator.waitFor((e) => e.event === 'done', 120_000, 'the run to finish');
  expect((await coordinator.exited).code).toBe(0);
  for (const bank of banks) expect((await bank.exited).code, bank.logs.slice(-10).join('\n')).toBe(0);

  const store = new Database(db, { readonly: true });
  const rounds = Array.from({ length: ROUNDS }, (_, i) => i + 1);
  expect(store.prepare('SELECT round FROM rounds WHERE run_id = ? ORDER BY round').all(runId)).toEqual(rounds.map((round) => ({ round })));
  // one participant row per institution and round, one model per committed round (and the initial one)
  expect(store.prepare('SELECT COUNT(*) AS n FROM participants WHERE run_id = ?').get(runId)).toEqual({ n: 3 * ROUNDS });
  expect(store.prepare('SELECT version FROM models WHERE run_id = ? ORDER BY version').all(runId)).toEqual([0, ...rounds].map((version) => ({ version })));
  store.close();
  const coordinatorKeys = ledgerKeys(db);
  expect(repeated(coordinatorKeys)).toEqual([]);
  for (const id of fed.banks) {
    const own = ledgerKeys(fed.ledgerOf(id), id);
    expect(repeated(own), id).toEqual([]);
    for (const k of coordinatorKeys.filter((k) => k.startsWith(`${id}/`))) expect(own, `${id}: ${k}`).toContain(k);
    for (const round of rounds) expect(coordinatorKeys, id).toContain(`${id}/${runId}/${round}/record`);
  }
  for (const file of [db, ...fed.banks.map(fed.ledgerOf)]) {
    const verified = await dpfed(['ledger', '--db', file, '--verify']);
    expect(verified.code, `${file}: ${verified.stdout}${verified.stderr}`).toBe(0);
  }
}

describe('faults: the coordinator database', () => {
  it.skipIf(!CHATTR)(
    'locked or immutable at start: the coordinator exits naming the file and the problem; during a run: the round fails whole and runs again once the fault is gone',
    async () => {
      dir = tempDir('dpfed-faults-sqlite-');
      const fed = (federation = await processFederation(dir, 3, RUN));
      const db = fed.db;
      const holder = new Database(db);
      holder.pragma('journal_mode = WAL');
      holder.exec('BEGIN EXCLUSIVE');
      const locked = fed.startCoordinator();
      expect((await locked.exited).code).toBe(1);
      expect(locked.logs.join('\n')).toMatch(new RegExp(`${regexEscape(db)}: the database is locked by another connection`));
      holder.exec('ROLLBACK');
      holder.close();
      execFileSync('chattr', ['+i', db]);
      const immutable = fed.startCoordinator();
      expect((await immutable.exited).code).toBe(1);
      expect(immutable.logs.join('\n')).toMatch(new RegExp(`${regexEscape(db)}: .*\\((SQLITE_READONLY|SQLITE_IOERR|SQLITE_CANTOPEN)\\w*:`));
      execFileSync('chattr', ['-i', db]);
      for (const suffix of ['', '-wal', '-shm']) rmSync(db + suffix, { force: true });

      await runThroughFaults(fed, [LOCKED, IMMUTABLE]);
    },
    200_000,
  );

  it.skipIf(!MOUNTABLE)(
    'on a full disk (a 32 MB tmpfs filled to its last byte) during a run: the round fails whole and runs again once space is freed',
    async () => {
      federation?.killAll();
      const base = (fullDir = tempDir('dpfed-faults-sqlite-full-'));
      mounted = join(base, 'fs');
      mkdirSync(mounted);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m', 'tmpfs', mounted]);
      const fed = (federation = await processFederation(base, 3, RUN, { db: join(mounted, 'coordinator.sqlite') }));
      await runThroughFaults(fed, [DISK_FULL]);
    },
    200_000,
  );
});

function regexEscape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
