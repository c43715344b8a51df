// The ε ledger against real SQLite files and real Ed25519 keys; tampering is done the way an attacker would:
// another connection on the same file, with the append-only triggers dropped first.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeAccountant } from '@dpfed/privacy/accountant';
import { projectedRoundsLeft } from '@dpfed/privacy/budget';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { canonicalEventBytes, encodeCanonical, signEvent, validateLedgerEvent, verifyEventSignature, type LedgerEvent } from '@dpfed/privacy/ledger-event';
import { PrivacyLedger } from '@dpfed/privacy/ledger';

const BUDGET = { epsilon: 8, delta: 1e-5 };
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function event(institutionId: string, round: number, overrides: Partial<LedgerEvent> = {}): LedgerEvent {
  return {
    institutionId,
    runId: 'run-1',
    round,
    mode: 'record',
    sampleRate: 0.01,
    noiseMultiplier: 1.1,
    steps: 100,
    clipNorm: 1,
    delta: 1e-5,
    modelVersion: round - 1,
    time: `2024-05-01T12:00:${String(round).padStart(2, '0')}.000Z`,
    ...overrides,
  };
}

let dir: string;
let file: string;
let db: Database.Database;
let coordinator: IdentityKey;
let bank: IdentityKey;
let hospital: IdentityKey;
let ledger: PrivacyLedger;

/** seq 1: bank key, seq 2: hospital key, seq 3..5: bank rounds 1..3, seq 6: hospital round 1. */
function populate(): void {
  ledger.registerInstitution('bank', bank.publicKey, BUDGET);
  ledger.registerInstitution('hospital', hospital.publicKey, { epsilon: 2, delta: 1e-6 });
  for (const round of [1, 2, 3]) ledger.append(event('bank', round), signEvent(event('bank', round), bank));
  const h = event('hospital', 1, { delta: 1e-6 });
  ledger.append(h, signEvent(h, hospital));
}

/** Runs SQL as an attacker would: a second connection, triggers dropped. */
function tamper(sql: string, ...params: unknown[]): void {
  const other = new Database(file);
  for (const t of ['ledger_institutions', 'ledger_events', 'ledger_refusals']) {
    other.exec(`DROP TRIGGER IF EXISTS ${t}_no_update; DROP TRIGGER IF EXISTS ${t}_no_delete;`);
  }
  other.prepare(sql).run(...params);
  other.close();
}

function countEvents(): number {
  return (db.prepare('SELECT COUNT(*) AS n FROM ledger_events').get() as { n: number }).n;
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpfed-ledger-'));
  file = join(dir, 'ledger.sqlite');
  db = new Database(file);
  coordinator = generateIdentity();
  bank = generateIdentity();
  hospital = generateIdentity();
  ledger = new PrivacyLedger(db, { countersigner: coordinator });
});

afterEach(() => {
  db.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ledger events', () => {
  it('encodes canonically: deterministic, domain-separated, different for every field', () => {
    const e = event('bank', 1);
    const bytes = canonicalEventBytes(e);
    expect(Buffer.from(bytes).subarray(0, 23).toString('latin1')).toBe('dpfed.v1/privacy-event\0');
    expect(hex(canonicalEventBytes({ ...e }))).toBe(hex(bytes));
    const variants: Partial<LedgerEvent>[] = [
      { institutionId: 'bank2' },
      { runId: 'run-2' },
      { round: 2 },
      { mode: 'client' },
      { sampleRate: 0.02 },
      { noiseMultiplier: 1.2 },
      { steps: 101 },
      { clipNorm: 2 },
      { delta: 1e-6 },
      { modelVersion: 7 },
      { time: '2024-05-01T12:00:02.000Z' },
    ];
    const seen = new Set([hex(bytes)]);
    for (const v of variants) seen.add(hex(canonicalEventBytes({ ...e, ...v })));
    expect(seen.size).toBe(variants.length + 1);
    // Length prefixes keep field boundaries: moving a character between the ids changes the bytes.
    expect(hex(canonicalEventBytes({ ...e, institutionId: 'ab', runId: 'c' }))).not.toBe(hex(canonicalEventBytes({ ...e, institutionId: 'a', runId: 'bc' })));
  });

  it('signs and verifies with Ed25519; any change or another key fails', () => {
    const e = event('bank', 1);
    const sig = signEvent(e, bank);
    expect(sig.length).toBe(64);
    expect(verifyEventSignature(e, sig, bank.publicKey)).toBe(true);
    expect(verifyEventSignature({ ...e, steps: 99 }, sig, bank.publicKey)).toBe(false);
    expect(verifyEventSignature(e, sig, hospital.publicKey)).toBe(false);
    expect(verifyEventSignature(e, sig.subarray(0, 63), bank.publicKey)).toBe(false);
  });

  it('validation names the bad field', () => {
    const cases: [Partial<LedgerEvent> | Record<string, unknown>, string][] = [
      [{ institutionId: '' }, 'institutionId'],
      [{ runId: 'a\nb' }, 'runId'],
      [{ round: -1 }, 'round'],
      [{ round: 1.5 }, 'round'],
      [{ mode: 'user' }, 'mode'],
      [{ sampleRate: 0 }, 'sampleRate'],
      [{ sampleRate: 1.5 }, 'sampleRate'],
      [{ noiseMultiplier: 0 }, 'noiseMultiplier'],
      [{ noiseMultiplier: Number.NaN }, 'noiseMultiplier'],
      [{ steps: 0 }, 'steps'],
      [{ steps: 2.5 }, 'steps'],
      [{ clipNorm: -1 }, 'clipNorm'],
      [{ delta: 1 }, 'delta'],
      [{ modelVersion: -3 }, 'modelVersion'],
      [{ time: 'yesterday' }, 'time'],
    ];
    for (const [override, field] of cases) {
      expect(() => validateLedgerEvent({ ...event('bank', 1), ...override }), field).toThrow(field);
    }
    expect(() => validateLedgerEvent(event('bank', 1))).not.toThrow();
  });
});

describe('PrivacyLedger: appending', () => {
  it('appends a hash-chained, countersigned chain that verifies, also after reopening the file', () => {
    populate();
    const rows = ledger.events();
    expect(rows.map((r) => r.seq)).toEqual([3, 4, 5, 6]);
    expect(rows[1].prevHash).toBe(rows[0].rowHash);
    expect(ledger.events({ institutionId: 'hospital' })).toHaveLength(1);
    expect(ledger.events({ institutionId: 'bank', runId: 'run-2' })).toHaveLength(0);
    expect(ledger.verify()).toEqual({ ok: true, rows: 6, headHash: rows[3].rowHash });
    expect(ledger.head()).toEqual({ seq: 6, hash: rows[3].rowHash });
    db.close();
    db = new Database(file);
    ledger = new PrivacyLedger(db, { countersigner: coordinator });
    ledger.append(event('bank', 4), signEvent(event('bank', 4), bank));
    expect(ledger.verify()).toMatchObject({ ok: true, rows: 7 });
    expect(() => new PrivacyLedger(db, { countersigner: generateIdentity() })).toThrow(/countersigned by key/);
    expect(new PrivacyLedger(db).verify({ countersignerPublicKey: coordinator.publicKey })).toMatchObject({ ok: true, rows: 7 });
    expect(new PrivacyLedger(db).verify({ countersignerPublicKey: bank.publicKey })).toMatchObject({ ok: false, badRow: 0 });
  });

  it('a read-only ledger refuses to append; a file without a ledger is refused', () => {
    populate();
    const reader = new PrivacyLedger(db);
    expect(() => reader.append(event('bank', 9), signEvent(event('bank', 9), bank))).toThrow(/read-only/);
    const empty = new Database(join(dir, 'empty.sqlite'));
    expect(() => new PrivacyLedger(empty)).toThrow(/ledger_meta/);
    empty.close();
  });

  it('the tables are append-only at the SQL level too', () => {
    populate();
    expect(() => db.prepare('UPDATE ledger_events SET steps = 1 WHERE seq = 3').run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM ledger_events WHERE seq = 3').run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM ledger_institutions').run()).toThrow(/append-only/);
  });

  it('an identical event appended again returns the existing row and records nothing new', () => {
    populate();
    const before = ledger.head();
    const again = ledger.append(event('bank', 2), signEvent(event('bank', 2), bank));
    expect(again.seq).toBe(4);
    expect(ledger.head()).toEqual(before);
    expect(countEvents()).toBe(4);
  });

  it('a conflicting event for the same institution, run, round and mode is refused', () => {
    populate();
    const conflicting = event('bank', 2, { steps: 50 });
    expect(() => ledger.append(conflicting, signEvent(conflicting, bank))).toThrow(/already recorded.*bank.*round 2/);
    const laterTime = event('bank', 2, { time: '2024-06-01T00:00:00.000Z' });
    expect(() => ledger.append(laterTime, signEvent(laterTime, bank))).toThrow(/already recorded/);
    expect(countEvents()).toBe(4);
    // Another mode in the same round is a different event.
    const client = event('bank', 2, { mode: 'client' });
    expect(ledger.append(client, signEvent(client, bank)).seq).toBe(7);
  });

  it('a bad signature is refused before anything is recorded', () => {
    populate();
    const before = ledger.head();
    const e = event('bank', 4);
    expect(() => ledger.append(e, signEvent(e, hospital))).toThrow(/bad signature/);
    expect(() => ledger.append(e, signEvent({ ...e, steps: 1 }, bank))).toThrow(/bad signature/);
    expect(() => ledger.append(e, new Uint8Array(64))).toThrow(/bad signature/);
    const stranger = event('stranger', 1);
    expect(() => ledger.append(stranger, signEvent(stranger, generateIdentity()))).toThrow(/stranger is not registered/);
    expect(() => ledger.append({ ...e, sampleRate: 2 }, signEvent(e, bank))).toThrow(/sampleRate/);
    expect(countEvents()).toBe(4);
    expect(ledger.head()).toEqual(before);
    expect(ledger.verify()).toMatchObject({ ok: true, rows: 6 });
  });

  it('registration: same key and budget is idempotent, a new budget is a new row, another key is refused', () => {
    const first = ledger.registerInstitution('bank', bank.publicKey, BUDGET);
    expect(ledger.registerInstitution('bank', bank.publicKey, BUDGET).seq).toBe(first.seq);
    const updated = ledger.registerInstitution('bank', bank.publicKey, { epsilon: 4, delta: 1e-5 });
    expect(updated.seq).toBe(2);
    expect(ledger.institution('bank')?.budget.epsilon).toBe(4);
    expect(() => ledger.registerInstitution('bank', hospital.publicKey, BUDGET)).toThrow(/another public key/);
    expect(() => ledger.registerInstitution('x', bank.publicKey, { epsilon: 0, delta: 1e-5 })).toThrow(/budget.epsilon/);
    expect(() => ledger.registerInstitution('x', bank.publicKey, { epsilon: 1, delta: 1 })).toThrow(/budget.delta/);
    expect(() => ledger.registerInstitution('x', new Uint8Array(31), BUDGET)).toThrow(/publicKey/);
    expect(ledger.verify()).toMatchObject({ ok: true, rows: 2 });
  });

  it("commits with the caller's transaction: rolled back with it, chained after it", () => {
    populate();
    const commitRound = db.transaction((round: number, fail: boolean) => {
      db.exec('CREATE TABLE IF NOT EXISTS rounds (round INTEGER)');
      db.prepare('INSERT INTO rounds VALUES (?)').run(round);
      ledger.append(event('bank', round), signEvent(event('bank', round), bank));
      if (fail) throw new Error('round failed');
    });
    expect(() => commitRound(4, true)).toThrow('round failed');
    expect(countEvents()).toBe(4);
    expect(ledger.head().seq).toBe(6);
    commitRound(4, false);
    expect(countEvents()).toBe(5);
    expect(ledger.verify()).toMatchObject({ ok: true, rows: 7 });
  });

  it('records refusals in the chain, once per institution, run and round', () => {
    populate();
    const refusal = ledger.recordRefusal('hospital', 'run-1', 2, 'budget: projected epsilon exceeds 2', 2.31);
    expect(refusal.seq).toBe(7);
    expect(ledger.recordRefusal('hospital', 'run-1', 2, 'again', 3).seq).toBe(7);
    expect(ledger.refusals({ institutionId: 'hospital' })).toHaveLength(1);
    expect(() => ledger.recordRefusal('hospital', 'run-1', 3, '', 1)).toThrow(/reason/);
    expect(() => ledger.recordRefusal('hospital', 'run-1', 3, 'r', Number.NaN)).toThrow(/projectedEpsilon/);
    ledger.append(event('bank', 4), signEvent(event('bank', 4), bank));
    expect(ledger.verify()).toMatchObject({ ok: true, rows: 8 });
    tamper("UPDATE ledger_refusals SET reason = 'no reason' WHERE seq = 7");
    expect(ledger.verify()).toMatchObject({ ok: false, badRow: 7 });
  });

  it('exports CSV: header and one quoted-as-needed line per event', () => {
    ledger.registerInstitution('bank, "north"', bank.publicKey, BUDGET);
    const e = event('bank, "north"', 1);
    const row = ledger.append(e, signEvent(e, bank));
    const lines = ledger.exportCsv().trimEnd().split('\n');
    expect(lines[0]).toBe('seq,institution_id,run_id,round,mode,sample_rate,noise_multiplier,steps,clip_norm,delta,model_version,time,institution_signature,prev_hash,row_hash,countersignature');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe(`2,"bank, ""north""",run-1,1,record,0.01,1.1,100,1,0.00001,0,${e.time},${row.institutionSignature},${row.prevHash},${row.rowHash},${row.countersignature}`);
    expect(ledger.exportCsv({ runId: 'other' }).trimEnd().split('\n')).toHaveLength(1);
  });
});

describe('PrivacyLedger: tamper detection', () => {
  beforeEach(() => {
    populate();
    expect(ledger.verify().ok).toBe(true);
  });

  it('an altered field names its row', () => {
    tamper('UPDATE ledger_events SET steps = 10 WHERE seq = 4');
    expect(ledger.verify()).toEqual({ ok: false, badRow: 4, reason: expect.stringMatching(/row 4.*altered/) });
  });

  it('an altered budget or key row names its row', () => {
    tamper('UPDATE ledger_institutions SET budget_epsilon = 100 WHERE seq = 2');
    expect(ledger.verify()).toMatchObject({ ok: false, badRow: 2 });
  });

  it('a deleted row names the missing row, in the middle and at the end', () => {
    tamper('DELETE FROM ledger_events WHERE seq = 4');
    expect(ledger.verify()).toEqual({ ok: false, badRow: 4, reason: expect.stringMatching(/row 4 is missing/) });
  });

  it('a deleted last row is caught by the countersigned head', () => {
    tamper('DELETE FROM ledger_events WHERE seq = 6');
    expect(ledger.verify()).toEqual({ ok: false, badRow: 6, reason: expect.stringMatching(/6.*missing/) });
  });

  it('an inserted row is caught even when its hashes are computed correctly', () => {
    // The attacker shifts rows 5.. up by one and inserts a copy of row 4 (round 9) as row 5, chained properly.
    tamper('UPDATE ledger_events SET seq = seq + 100 WHERE seq >= 5');
    tamper('UPDATE ledger_events SET seq = seq - 99 WHERE seq >= 100');
    const row4 = ledger.events().find((r) => r.seq === 4)!;
    const forged = { ...row4.event, round: 9 };
    const sig = signEvent(forged, generateIdentity());
    const rowHash = createHash('sha256')
      .update(Buffer.from(row4.rowHash, 'hex'))
      .update(encodeCanonical('dpfed.v1/ledger-row/event', [{ u: 5 }, { b: canonicalEventBytes(forged) }]))
      .update(sig)
      .digest('hex');
    tamper(
      `INSERT INTO ledger_events (seq, institution_id, run_id, round, mode, sample_rate, noise_multiplier, steps, clip_norm, delta, model_version, time,
        institution_signature, prev_hash, row_hash, countersignature) VALUES (5, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      forged.institutionId,
      forged.runId,
      forged.round,
      forged.mode,
      forged.sampleRate,
      forged.noiseMultiplier,
      forged.steps,
      forged.clipNorm,
      forged.delta,
      forged.modelVersion,
      forged.time,
      hex(sig),
      row4.rowHash,
      rowHash,
      row4.countersignature,
    );
    expect(ledger.verify()).toEqual({ ok: false, badRow: 5, reason: expect.stringMatching(/row 5.*countersignature/) });
  });

  it('a row inserted with a duplicate seq is named', () => {
    tamper(
      `INSERT INTO ledger_refusals (seq, institution_id, run_id, round, reason, projected_epsilon, time, prev_hash, row_hash, countersignature)
       SELECT 4, institution_id, run_id, 7, 'x', 1, time, prev_hash, row_hash, countersignature FROM ledger_events WHERE seq = 4`,
    );
    expect(ledger.verify()).toMatchObject({ ok: false, badRow: 4 });
  });

  it('reordered rows (two seqs swapped) name the first of them', () => {
    tamper('UPDATE ledger_events SET seq = 1000 WHERE seq = 4');
    tamper('UPDATE ledger_events SET seq = 4 WHERE seq = 5');
    tamper('UPDATE ledger_events SET seq = 5 WHERE seq = 1000');
    expect(ledger.verify()).toEqual({ ok: false, badRow: 4, reason: expect.stringMatching(/row 4/) });
  });

  it('a replaced countersigner key in ledger_meta breaks the chain at row 1', () => {
    tamper("UPDATE ledger_meta SET value = ? WHERE key = 'countersigner_public_key'", hex(generateIdentity().publicKey));
    expect(new PrivacyLedger(db).verify()).toEqual({ ok: false, badRow: 1, reason: expect.stringMatching(/row 1.*genesis/) });
  });

  it('a forged countersignature names its row', () => {
    const row = ledger.events()[1];
    const forged = generateIdentity().sign(encodeCanonical('dpfed.v1/ledger-countersign', [{ b: Buffer.from(row.rowHash, 'hex') }]));
    tamper('UPDATE ledger_events SET countersignature = ? WHERE seq = ?', hex(forged), row.seq);
    expect(ledger.verify()).toEqual({ ok: false, badRow: 4, reason: expect.stringMatching(/row 4.*countersignature/) });
  });

  it('a coordinator that rewrites an event (fewer steps) and re-chains with its own key is caught by the institution signature', () => {
    // The countersigner itself understates ε: row 4 gets steps = 1 with a signature it made up, and it recomputes
    // every later hash, countersignature and the head. Only the bank's signature can expose it.
    const all = ledger.events();
    const institutionRows = db.prepare('SELECT seq, row_hash FROM ledger_institutions ORDER BY seq').all() as { seq: number; row_hash: string }[];
    let prev = Buffer.from(institutionRows[institutionRows.length - 1].row_hash, 'hex');
    for (const row of all) {
      const e = row.seq === 4 ? { ...row.event, steps: 1 } : row.event;
      const sig = row.seq === 4 ? Buffer.from(generateIdentity().sign(canonicalEventBytes(e))) : Buffer.from(row.institutionSignature, 'hex');
      const hash = createHash('sha256')
        .update(prev)
        .update(encodeCanonical('dpfed.v1/ledger-row/event', [{ u: row.seq }, { b: canonicalEventBytes(e) }]))
        .update(sig)
        .digest();
      const counter = coordinator.sign(encodeCanonical('dpfed.v1/ledger-countersign', [{ b: hash }]));
      tamper(
        'UPDATE ledger_events SET steps = ?, institution_signature = ?, prev_hash = ?, row_hash = ?, countersignature = ? WHERE seq = ?',
        e.steps,
        sig.toString('hex'),
        prev.toString('hex'),
        hash.toString('hex'),
        hex(counter),
        row.seq,
      );
      prev = hash;
    }
    const headSig = coordinator.sign(encodeCanonical('dpfed.v1/ledger-head', [{ u: 6 }, { b: prev }]));
    tamper("UPDATE ledger_meta SET value = ? WHERE key = 'head_hash'", prev.toString('hex'));
    tamper("UPDATE ledger_meta SET value = ? WHERE key = 'head_signature'", hex(headSig));
    expect(ledger.verify()).toEqual({ ok: false, badRow: 4, reason: expect.stringMatching(/row 4.*bad institution signature/) });
  });
});

describe('PrivacyLedger: epsilon', () => {
  it("spent() composes all the institution's events with the accountant; it is not a sum", () => {
    populate();
    const rdp = makeAccountant('rdp');
    const mechanisms = ledger.events({ institutionId: 'bank' }).map(({ event: e }) => ({ sampleRate: e.sampleRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps }));
    const spent = ledger.spent('bank', rdp);
    const direct = rdp.epsilon(mechanisms, BUDGET.delta);
    expect(spent.epsilon).toBe(direct.epsilon);
    expect(spent.delta).toBe(BUDGET.delta);
    expect(spent.epsilon).toBeGreaterThan(0);
    const sumOfEach = mechanisms.reduce((s, m) => s + rdp.epsilon([m], BUDGET.delta).epsilon, 0);
    expect(spent.epsilon).toBeLessThan(sumOfEach);
    // Hospital: its own events, at its own budget δ.
    const hospitalSpent = ledger.spent('hospital', rdp);
    expect(hospitalSpent.delta).toBe(1e-6);
    expect(hospitalSpent.epsilon).toBe(rdp.epsilon([{ sampleRate: 0.01, noiseMultiplier: 1.1, steps: 100 }], 1e-6).epsilon);
    expect(ledger.spent('bank', rdp, { runId: 'nope' }).epsilon).toBe(0);
    expect(() => ledger.spent('nobody', rdp)).toThrow(/nobody is not registered/);
  });

  it("spentThroughRounds() is spent() as it stood after each round: the run's events up to that round, composed", () => {
    populate();
    const rdp = makeAccountant('rdp');
    const trajectory = ledger.spentThroughRounds('bank', rdp, 'run-1', [1, 2, 3, 4]);
    const upTo = (round: number) =>
      ledger
        .events({ institutionId: 'bank', runId: 'run-1' })
        .filter((r) => r.event.round <= round)
        .map(({ event: e }) => ({ sampleRate: e.sampleRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps }));
    expect(trajectory.map((t) => t.epsilon)).toEqual([1, 2, 3, 3].map((round) => rdp.epsilon(upTo(round), BUDGET.delta).epsilon));
    // after the last round it is spent(); a round without an event repeats the one before
    expect(trajectory[2]).toEqual(ledger.spent('bank', rdp, { runId: 'run-1' }));
    expect(trajectory[3]).toEqual(trajectory[2]);
    expect(trajectory[0].epsilon).toBeLessThan(trajectory[1].epsilon);
    expect(ledger.spentThroughRounds('bank', rdp, 'run-1', [0]).map((t) => t.epsilon)).toEqual([0]);
    expect(() => ledger.spentThroughRounds('nobody', rdp, 'run-1', [1])).toThrow(/nobody is not registered/);
  });

  it('projected(), roundsLeft() and summary() agree with the budget logic', () => {
    populate();
    const rdp = makeAccountant('rdp');
    const perRound = { sampleRate: 0.01, noiseMultiplier: 1.1, steps: 100 };
    const recorded = ledger.events({ institutionId: 'bank' }).map(({ event: e }) => ({ sampleRate: e.sampleRate, noiseMultiplier: e.noiseMultiplier, steps: e.steps }));
    expect(ledger.projected('bank', [perRound], rdp)).toBe(rdp.epsilon([...recorded, perRound], BUDGET.delta).epsilon);
    const left = ledger.roundsLeft('bank', perRound, rdp);
    expect(left).toBe(projectedRoundsLeft(recorded, perRound, BUDGET, rdp));
    expect(left).toBeGreaterThan(0);
    ledger.recordRefusal('hospital', 'run-1', 2, 'budget', 2.5);
    const summary = ledger.summary(undefined, rdp);
    expect(summary.map((s) => s.institutionId)).toEqual(['bank', 'hospital']);
    const bankSummary = summary[0];
    expect(bankSummary).toMatchObject({ accountant: 'rdp', delta: 1e-5, budget: BUDGET, projectedRoundsLeft: left });
    expect(bankSummary.epsilon).toBe(ledger.spent('bank', rdp).epsilon);
    expect(bankSummary.remaining).toBeCloseTo(BUDGET.epsilon - bankSummary.epsilon, 12);
    expect(bankSummary.events).toHaveLength(3);
    expect(summary[1].refusals).toHaveLength(1);
    const onlyHospital = ledger.summary({ institutionId: 'hospital' }, rdp);
    expect(onlyHospital).toHaveLength(1);
    // A run filter shows that run's ε; the remaining budget still counts every run.
    const other = event('bank', 1, { runId: 'run-2' });
    ledger.append(other, signEvent(other, bank));
    const run2 = ledger.summary({ runId: 'run-2', institutionId: 'bank' }, rdp)[0];
    expect(run2.events).toHaveLength(1);
    expect(run2.epsilon).toBeLessThan(run2.epsilonTotal);
    expect(run2.epsilonTotal).toBe(ledger.spent('bank', rdp).epsilon);
  });
});
