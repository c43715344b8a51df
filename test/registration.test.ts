// Challenge–response Register: the signed declaration's byte layout (pinned by a hand-written vector, as
// the .proto states it), and a real coordinator over gRPC refusing replayed, altered, misdirected, unknown
// and expired registrations, recording budget changes, and refusing an institution whose own ledger is
// behind the coordinator's receipt, missing, or replaced.
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { RegistrationChallenges } from '@dpfed/coordinator/registration-challenges';
import { RpcError } from '@dpfed/coordinator/rpc-error';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import { FederationClient } from '@dpfed/client/federation-client';
import { InstitutionPrivacy } from '@dpfed/client/institution-privacy';
import type { Learner } from '@dpfed/client/learner';
import { signedRegistration } from '@dpfed/client/registration-request';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { PrivacyLedger } from '@dpfed/privacy/ledger';
import { ReceiptStore } from '@dpfed/privacy/receipts';
import { registrationDeclaration } from '@dpfed/proto/registration';
import { enrol, joinTestFederation, runConfig, startTestCoordinator, tempDir, testCredentials, testPki } from './helpers/federation-fixture.ts';

const bytes = (hex: string) => new Uint8Array(Buffer.from(hex.replace(/\s+/g, ''), 'hex'));

describe('registration declaration bytes', () => {
  it('match a hand-written vector of the layout in federation.proto', () => {
    const declaration = registrationDeclaration({
      nonce: new Uint8Array(32).fill(0x11),
      institutionId: 'a',
      identityPublicKey: new Uint8Array(32).fill(0x22),
      protocolVersion: 1,
      budget: { epsilon: 2.5, delta: 1e-5 },
      declaredExamples: 1000,
      schemaHash: bytes('abcd'),
      ledgerHeadSeq: 3,
      ledgerHeadHash: new Uint8Array(32).fill(0x33),
      receiptSeq: 2,
      anchorHash: new Uint8Array(32).fill(0x44),
    });
    const expected = [
      '6470666564 2e 7631 2f 7265676973746572 00', // "dpfed.v1/register" 0x00
      '62 00000020' + '11'.repeat(32), //             'b' nonce
      '73 00000001 61', //                            's' institution_id "a"
      '62 00000020' + '22'.repeat(32), //             'b' identity_public_key
      '75 0000000000000001', //                       'u' protocol_version 1
      '66 4004000000000000', //                       'f' budget.epsilon 2.5
      '66 3ee4f8b588e368f1', //                       'f' budget.delta 1e-5
      '75 00000000000003e8', //                       'u' declared_examples 1000
      '62 00000002 abcd', //                          'b' schema_hash
      '75 0000000000000003', //                       'u' ledger_head.seq 3
      '62 00000020' + '33'.repeat(32), //             'b' ledger_head.hash
      '75 0000000000000002', //                       'u' receipt_seq 2
      '62 00000020' + '44'.repeat(32), //             'b' anchor_hash
    ].join('');
    expect(Buffer.from(declaration).toString('hex')).toBe(Buffer.from(bytes(expected)).toString('hex'));
    // no budget and no ledger: zeros and empty byte fields, still self-delimiting
    const bare = registrationDeclaration({
      nonce: new Uint8Array(32),
      institutionId: 'a',
      identityPublicKey: new Uint8Array(32),
      protocolVersion: 1,
      budget: null,
      declaredExamples: 0,
      schemaHash: new Uint8Array(0),
      ledgerHeadSeq: 0,
      ledgerHeadHash: new Uint8Array(0),
      receiptSeq: 0,
      anchorHash: new Uint8Array(0),
    });
    const bareTail = ['66' + '00'.repeat(8), '66' + '00'.repeat(8), '75' + '00'.repeat(8), '62 00000000', '75' + '00'.repeat(8), '62 00000000', '75' + '00'.repeat(8), '62 00000000'].join('');
    expect(Buffer.from(bare).subarray(-60).toString('hex')).toBe(Buffer.from(bytes(bareTail)).toString('hex'));
  });
});

describe('registration challenges', () => {
  it('are single use, bound to their institution, and expire', () => {
    let now = 1_000_000;
    const challenges = new RegistrationChallenges(60_000, () => now);
    const refusal = (fn: () => unknown): { code: number; message: string } => {
      try {
        fn();
      } catch (error) {
        if (error instanceof RpcError) return { code: error.code, message: error.message };
        throw error;
      }
      throw new Error('expected a refusal');
    };
    const a = challenges.issue('bank-a', 0);
    expect(a.nonce).toHaveLength(32);
    expect(challenges.consume(a.nonce, 'bank-a').institutionId).toBe('bank-a');
    expect(refusal(() => challenges.consume(a.nonce, 'bank-a'))).toMatchObject({ code: grpc.status.UNAUTHENTICATED, message: expect.stringMatching(/^nonce: already used/) });
    const b = challenges.issue('bank-a', 0);
    expect(refusal(() => challenges.consume(b.nonce, 'bank-b'))).toMatchObject({ code: grpc.status.PERMISSION_DENIED, message: expect.stringMatching(/^nonce: issued for institution "bank-a"/) });
    const c = challenges.issue('bank-a', 0);
    now += 60_001;
    expect(refusal(() => challenges.consume(c.nonce, 'bank-a'))).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, message: expect.stringMatching(/^nonce: expired/) });
    expect(refusal(() => challenges.consume(new Uint8Array(32).fill(7), 'bank-a'))).toMatchObject({ code: grpc.status.UNAUTHENTICATED, message: expect.stringMatching(/^nonce: not issued/) });
    expect(refusal(() => challenges.consume(new Uint8Array(16), 'bank-a'))).toMatchObject({ code: grpc.status.UNAUTHENTICATED, message: expect.stringMatching(/^nonce: expected/) });
  });
});

describe('Register over real gRPC', () => {
  let dir: string;
  let coordinator: Coordinator;
  let address: string;
  const connections = new Map<string, CoordinatorConnection>();
  /** A hand-built connection over mutual TLS with `id`'s test certificate (the fixture's default transport). */
  const connFor = (id: string): CoordinatorConnection => {
    let connection = connections.get(id);
    if (!connection) connections.set(id, (connection = new CoordinatorConnection(address, testCredentials(id))));
    return connection;
  };

  beforeAll(async () => {
    dir = tempDir('dpfed-registration-');
    const config = runConfig(['--rounds', '1', '--min-clients', '3', '--privacy', 'record', '--epsilon', '3', '--delta', '1e-5']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    address = `127.0.0.1:${coordinator.port}`;
    const pki = await testPki();
    for (const id of ['bank-r', 'bank-x', 'bank-b', 'bank-l']) await pki.issue(id);
  });

  afterAll(async () => {
    for (const connection of connections.values()) connection.close();
    await coordinator?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function refusedWith(promise: Promise<unknown>, code: grpc.status, pattern: RegExp): Promise<void> {
    const error = (await promise.then(
      () => null,
      (e: grpc.ServiceError) => e,
    )) as grpc.ServiceError | null;
    expect(error, `expected status ${grpc.status[code]}`).not.toBeNull();
    expect({ code: grpc.status[error!.code], details: error!.details }).toMatchObject({ code: grpc.status[code], details: expect.stringMatching(pattern) });
  }

  /** The budgets the coordinator's ledger recorded for `id`, in order (after checking the ledger verifies). */
  const ledgerBudgets = (id: string) => {
    expect(new PrivacyLedger(coordinator.store.db).verify()).toMatchObject({ ok: true });
    return (coordinator.store.db.prepare('SELECT budget_epsilon AS epsilon FROM ledger_institutions WHERE institution_id = ? ORDER BY seq').all(id) as { epsilon: number }[]).map((r) => r.epsilon);
  };

  it('refuses a replayed, an altered, a misdirected and a self-chosen-nonce registration, naming the field', async () => {
    const identity = generateIdentity();
    enrol(coordinator, 'bank-r', identity.publicKey);
    enrol(coordinator, 'bank-x', generateIdentity().publicKey);
    const conn = connFor('bank-r');
    const challenge = await conn.challenge({ institutionId: 'bank-r' });
    expect(challenge.nonce).toHaveLength(32);
    expect(challenge.expiresInMs).toBe(60_000);
    const request = signedRegistration(challenge, { institutionId: 'bank-r', identity, budget: { epsilon: 2.5, delta: 1e-5 }, declaredExamples: 10 });
    const first = await conn.register(request);
    expect(first.session).toHaveLength(16);

    // the same bytes again: the nonce was used
    await refusedWith(conn.register(request), grpc.status.UNAUTHENTICATED, /^nonce: already used/);
    // the same session still works: the replay did not replace the real bank's registration
    await expect(conn.heartbeat({ runId: first.runId, round: 0, modelVersion: 0, institutionId: 'bank-r', session: first.session })).resolves.toMatchObject({});

    // a fresh nonce, but the budget raised after signing: the signature no longer covers the fields
    const fresh = await conn.challenge({ institutionId: 'bank-r' });
    const raised = { ...signedRegistration(fresh, { institutionId: 'bank-r', identity, budget: { epsilon: 2.5, delta: 1e-5 }, declaredExamples: 10 }), budget: { epsilon: 1e9, delta: 1e-5 } };
    await refusedWith(conn.register(raised), grpc.status.UNAUTHENTICATED, /^signature: .*budget/);
    // ... and so is a changed declared example count
    const other = await conn.challenge({ institutionId: 'bank-r' });
    const moreExamples = { ...signedRegistration(other, { institutionId: 'bank-r', identity, budget: { epsilon: 2.5, delta: 1e-5 }, declaredExamples: 100 }), declaredExamples: 100_000 };
    await refusedWith(conn.register(moreExamples), grpc.status.UNAUTHENTICATED, /^signature: /);
    expect(ledgerBudgets('bank-r')).toEqual([2.5]);
    expect(coordinator.store.db.prepare('SELECT budget_epsilon FROM institutions WHERE id = ?').get('bank-r')).toEqual({ budget_epsilon: 2.5 });

    // the schema hash is signed too, and must be a SHA-256 when present
    const hashed = await conn.challenge({ institutionId: 'bank-r' });
    const otherSchema = {
      ...signedRegistration(hashed, { institutionId: 'bank-r', identity, budget: { epsilon: 2.5, delta: 1e-5 }, schemaHash: new Uint8Array(32).fill(1) }),
      schemaHash: new Uint8Array(32).fill(2),
    };
    await refusedWith(conn.register(otherSchema), grpc.status.UNAUTHENTICATED, /^signature: /);
    const shortHash = await conn.challenge({ institutionId: 'bank-r' });
    await refusedWith(
      conn.register(signedRegistration(shortHash, { institutionId: 'bank-r', identity, budget: { epsilon: 2.5, delta: 1e-5 }, schemaHash: bytes('abcd') })),
      grpc.status.INVALID_ARGUMENT,
      /^schema_hash: /,
    );

    // a Challenge for another id over bank-r's certificate: no nonce (admission runs before Challenge)
    await refusedWith(conn.challenge({ institutionId: 'bank-x' }), grpc.status.PERMISSION_DENIED, /^certificate: .*bound to institution "bank-r", not to "bank-x"/);
    // a nonce issued to another institution (over its own certificate), presented by bank-r
    const elsewhere = await connFor('bank-x').challenge({ institutionId: 'bank-x' });
    await refusedWith(conn.register(signedRegistration(elsewhere, { institutionId: 'bank-r', identity, budget: null })), grpc.status.PERMISSION_DENIED, /^nonce: issued for institution "bank-x"/);
    // a nonce the client chose itself
    const own = signedRegistration({ ...challenge, nonce: new Uint8Array(32).fill(9) }, { institutionId: 'bank-r', identity, budget: null });
    await refusedWith(conn.register(own), grpc.status.UNAUTHENTICATED, /^nonce: not issued by this coordinator/);
  });

  it('records a budget changed across registrations as its own ledger row', async () => {
    const identity: IdentityKey = generateIdentity();
    enrol(coordinator, 'bank-b', identity.publicKey);
    const conn = connFor('bank-b');
    for (const epsilon of [2, 2, 4]) {
      const challenge = await conn.challenge({ institutionId: 'bank-b' });
      await conn.register(signedRegistration(challenge, { institutionId: 'bank-b', identity, budget: { epsilon, delta: 1e-5 } }));
    }
    expect(ledgerBudgets('bank-b')).toEqual([2, 4]);
  });

  it('refuses an institution whose own ledger is behind the receipt, replaced by a fresh one, or missing', async () => {
    const identity = generateIdentity();
    const budget = { epsilon: 5, delta: 1e-5 };
    const learner = {} as unknown as Learner;
    const transport = joinTestFederation(address, 'bank-l', identity.publicKey);
    const ledgerPath = join(dir, 'bank-l.ledger.sqlite');
    const register = async (path: string | null): Promise<unknown> => {
      const privacy = path ? new InstitutionPrivacy({ institutionId: 'bank-l', identity, budget, ledgerPath: path }) : undefined;
      const client = new FederationClient({ coordinator: address, institutionId: 'bank-l', identity, learner, privacy, budget, declaredExamples: 10, ...transport });
      try {
        return await client.register().then(
          () => 'registered',
          (error: grpc.ServiceError) => error,
        );
      } finally {
        client.close();
        privacy?.close();
      }
    };
    const heldSeq = () => ReceiptStore.read(coordinator.store.db, { subject: 'bank-l' }).at(-1)?.seq;

    expect(await register(ledgerPath)).toBe('registered');
    expect(heldSeq()).toBe(1); // the institution row of its own ledger
    copyFileSync(ledgerPath, join(dir, 'bank-l.at-seq-1.sqlite'));
    {
      // the institution's ledger grows (two refusals recorded locally), and it registers again
      const db = new Database(ledgerPath);
      const own = new PrivacyLedger(db, { countersigner: identity });
      own.recordRefusal('bank-l', 'run-x', 1, 'budget', 4);
      own.recordRefusal('bank-l', 'run-x', 2, 'budget', 4);
      db.close();
    }
    expect(await register(ledgerPath)).toBe('registered');
    expect(heldSeq()).toBe(3);

    // rolled back to the copy at seq 1
    copyFileSync(join(dir, 'bank-l.at-seq-1.sqlite'), join(dir, 'bank-l.rolled-back.sqlite'));
    const behind = (await register(join(dir, 'bank-l.rolled-back.sqlite'))) as grpc.ServiceError;
    expect({ code: behind.code, details: behind.details }).toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringMatching(/^ledger_head: .*head seq 1, behind the coordinator's receipt for row 3/),
    });

    // a fresh ledger path: the budget would start from zero
    const fresh = (await register(join(dir, 'bank-l.fresh.sqlite'))) as grpc.ServiceError;
    expect({ code: fresh.code, details: fresh.details }).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/^ledger_head: .*behind|^ledger_head: .*replaced/) });

    // no ledger at all
    const missing = (await register(null)) as grpc.ServiceError;
    expect({ code: missing.code, details: missing.details }).toMatchObject({
      code: grpc.status.FAILED_PRECONDITION,
      details: expect.stringMatching(/^ledger_head: .*declares no ledger.*wiped ledger or a fresh ledger path/),
    });

    // a ledger of the same length with another history (replaced): copy the fresh one and grow it to seq 3
    {
      const path = join(dir, 'bank-l.replaced.sqlite');
      const db = new Database(path);
      const own = new PrivacyLedger(db, { countersigner: identity });
      own.registerInstitution('bank-l', identity.publicKey, budget);
      own.recordRefusal('bank-l', 'run-y', 1, 'budget', 4);
      own.recordRefusal('bank-l', 'run-y', 2, 'budget', 4);
      db.close();
      const replaced = (await register(path)) as grpc.ServiceError;
      expect({ code: replaced.code, details: replaced.details }).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: expect.stringMatching(/^ledger_head: row 3 .*a replaced ledger/) });
    }

    // nothing of the refused attempts was recorded: the real ledger still registers, the receipt is unchanged
    expect(heldSeq()).toBe(3);
    expect(await register(ledgerPath)).toBe('registered');
  });
});
