// Admission over real gRPC with mutual TLS: only enrolled institutions, with their enrolled identity key
// and a certificate bound to their own id, get anything from the coordinator; a revocation (made by the
// `dpfed enrol revoke` process on the coordinator's file) cuts a live session; TLS failures on either side
// stop a connection before any request.
import * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { createCertificateAuthority, issueCertificate } from '@dpfed/proto/certificate-authority';
import { signedRegistration } from '@dpfed/client/registration-request';
import { channelCredentials, readTlsMaterial, type TlsMaterial } from '@dpfed/proto/tls-credentials';
import { CHANNEL_OPTIONS, federationClientConstructor, type ClientFrameMsg, type CoordinatorFrameMsg, type RegisterResponse } from '@dpfed/proto/wire';
import {
  cleanUp,
  DPFED_BIN,
  enrol,
  makeInstitution,
  recordRounds,
  ROOT,
  runConfig,
  ShiftLearner,
  start,
  startTestCoordinator,
  tempDir,
  testPki,
  within,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

type RpcFailure = { code: grpc.status; details: string };

/** Challenge, then Register signed over its nonce: a refusal of either call rejects (admission runs before both). */
async function register(connection: CoordinatorConnection, id: string, identity: IdentityKey): Promise<RegisterResponse> {
  const challenge = await connection.challenge({ institutionId: id });
  return connection.register(signedRegistration(challenge, { institutionId: id, identity, budget: null, clientVersion: 'hand-made' }));
}

async function failure(call: Promise<unknown>): Promise<RpcFailure> {
  try {
    const answer = await call;
    throw new Error(`expected the call to be refused; it was answered: ${JSON.stringify(answer)}`);
  } catch (error) {
    if (error instanceof Error && error.message.startsWith('expected the call')) throw error;
    return error as RpcFailure;
  }
}

/** Expects PERMISSION_DENIED whose message names every one of `words`. */
async function denied(call: Promise<unknown>, ...words: string[]): Promise<void> {
  const f = await failure(call);
  expect(grpc.status[f.code], f.details).toBe('PERMISSION_DENIED');
  for (const word of words) expect(f.details).toContain(word);
}

/** Opens a raw Session stream with `credentials` and resolves with how it ended (its status or its first frame). */
function openSession(address: string, credentials: grpc.ChannelCredentials): Promise<{ code: grpc.status; details: string } | { frame: CoordinatorFrameMsg }> {
  const Client = federationClientConstructor();
  const client = new Client(address, credentials, CHANNEL_OPTIONS) as unknown as grpc.Client & { Session(): grpc.ClientDuplexStream<ClientFrameMsg, CoordinatorFrameMsg> };
  const stream = client.Session();
  return new Promise((resolve) => {
    stream.on('data', (frame: CoordinatorFrameMsg) => {
      resolve({ frame });
      stream.cancel();
    });
    stream.on('error', (e: grpc.ServiceError) => resolve({ code: e.code, details: e.details }));
    stream.on('end', () => resolve({ code: grpc.status.OK, details: 'ended' }));
    // a heartbeat with a made-up session: an admitted stream answers it (with an error frame)
    stream.write({ callId: 1, heartbeat: { envelope: { runId: 'x', round: 0, modelVersion: 0, institutionId: 'x', session: Buffer.alloc(16) } } } as unknown as ClientFrameMsg);
  }).finally(() => client.close()) as never;
}

describe('enrolment and mutual TLS against a running coordinator', () => {
  let dir: string;
  let coordinator: Coordinator | undefined;
  let institutions: TestInstitution[] = [];
  const connections: CoordinatorConnection[] = [];

  afterEach(async () => {
    for (const c of connections.splice(0)) c.close();
    await cleanUp({ institutions, coordinators: [coordinator], dir });
    institutions = [];
    coordinator = undefined;
  });

  async function federation(args: string[] = []): Promise<{ address: string; pki: Awaited<ReturnType<typeof testPki>> }> {
    dir = tempDir('dpfed-admission-');
    const config = runConfig(['--privacy', 'off', '--model', 'logistic', ...(args.length ? args : ['--rounds', '1', '--min-clients', '2'])]);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, livenessMs: 60_000 });
    return { address: `127.0.0.1:${coordinator.port}`, pki: await testPki() };
  }

  function connect(address: string, tls: TlsMaterial): CoordinatorConnection {
    const connection = new CoordinatorConnection(address, channelCredentials(tls));
    connections.push(connection);
    return connection;
  }

  it('refuses an unknown identity, a squatter under an enrolled id, and a certificate of another id, before it gets a run id; the enrolled key still registers', async () => {
    const { address, pki } = await federation();
    const c = coordinator!;
    const real = generateIdentity();
    enrol(c, 'bank-2', real.publicKey);
    enrol(c, 'bank-3', generateIdentity().publicKey);

    // unknown: a valid certificate of the federation for bank-1, but bank-1 was never enrolled: not even a nonce
    await denied(connect(address, pki.material('bank-1')).challenge({ institutionId: 'bank-1' }), 'bank-1', 'not enrolled');
    await denied(register(connect(address, pki.material('bank-1')), 'bank-1', generateIdentity()), 'bank-1', 'not enrolled');
    // squatting: bank-2's certificate (say, stolen) with a key that is not bank-2's enrolled one
    await denied(register(connect(address, pki.material('bank-2')), 'bank-2', generateIdentity()), 'bank-2', 'key mismatch');
    // another id's certificate: bank-4's certificate used to register as bank-2, with bank-2's own key
    await denied(register(connect(address, pki.material('bank-4')), 'bank-2', real), 'bank-4', 'bank-2', 'not to');
    // the SDK gives up at once on PERMISSION_DENIED (no retry loop)
    const stranger = makeInstitution({ id: 'bank-5', address, learner: new ShiftLearner(0.1, 10), enrol: false, reconnectForMs: 60_000 });
    institutions.push(stranger);
    await denied(within(stranger.client.run(), 10_000, 'the unenrolled SDK client to give up'), 'bank-5', 'not enrolled');
    // a Session stream over the certificate of an unenrolled institution is refused as it opens
    const session = await openSession(address, channelCredentials(pki.material('bank-1')));
    expect('code' in session && grpc.status[session.code]).toBe('PERMISSION_DENIED');
    expect('details' in session && session.details).toContain('"bank-1" is not enrolled');
    // none of them left a trace: no institution is registered
    expect((c.store.db.prepare('SELECT COUNT(*) AS n FROM institutions').get() as { n: number }).n).toBe(0);

    // the squatting attempt locked no one out: the real bank-2 registers with its enrolled key
    const response = await register(connect(address, pki.material('bank-2')), 'bank-2', real);
    expect(response.runId).toBe(c.runId);
    // and its Session stream is admitted (the made-up session is refused inside the stream, with an error frame)
    const admitted = await openSession(address, channelCredentials(pki.material('bank-2')));
    expect('frame' in admitted && admitted.frame.body).toBe('error');
  });

  it("refuses a client without a certificate and a client that does not trust the coordinator's CA, at the handshake", async () => {
    const { address, pki } = await federation();
    const c = coordinator!;
    const identity = generateIdentity();
    enrol(c, 'bank-1', identity.publicKey);

    // no client certificate: mutual TLS refuses the handshake, so no request reaches the coordinator
    const anonymous = await failure(register(connect(address, pki.caOnly()), 'bank-1', identity));
    expect(grpc.status[anonymous.code]).toBe('UNAVAILABLE');

    // a client whose CA is another one does not accept the coordinator's certificate
    const otherDir = join(dir, 'other-ca');
    const otherCa = await createCertificateAuthority(otherDir);
    const otherCert = await issueCertificate(otherDir, { name: 'bank-1', outDir: otherDir });
    const distrustful = readTlsMaterial({ ca: otherCa.certPath, cert: otherCert.certPath, key: otherCert.keyPath }, { ca: 'ca', cert: 'cert', key: 'key' });
    const refused = await failure(register(connect(address, distrustful), 'bank-1', identity));
    expect(grpc.status[refused.code]).toBe('UNAVAILABLE');
    // (the same client with the federation's CA and its own certificate gets in)
    expect((await register(connect(address, pki.material('bank-1')), 'bank-1', identity)).runId).toBe(c.runId);

    // the SDK, too, gets nowhere without trusting the coordinator's CA
    const sdk = makeInstitution({ id: 'bank-1', address, learner: new ShiftLearner(0.1, 10), identity, reconnectForMs: 1_500, transport: { tls: distrustful } });
    institutions.push(sdk);
    const sdkFailure = await failure(within(sdk.client.run(), 15_000, 'the distrustful SDK client to give up'));
    expect(grpc.status[sdkFailure.code]).toBe('UNAVAILABLE');
    expect((c.store.db.prepare("SELECT COUNT(*) AS n FROM institutions WHERE id = 'bank-1'").get() as { n: number }).n).toBe(1);
  });

  it("revocation by `dpfed enrol revoke` on the coordinator's file cuts the institution's live session mid-run; the others finish the run", async () => {
    const { address } = await federation(['--rounds', '6', '--min-clients', '2', '--round-timeout', '5', '--phase-timeout', '5']);
    const c = coordinator!;
    const seen = recordRounds(c);
    // slow learners, so the run is still going when the revocation lands
    const slow = () => new Promise<void>((r) => setTimeout(r, 700));
    institutions = [0.1, 0.2, 0.3].map((shift, k) => makeInstitution({ id: `bank-${k + 1}`, address, learner: new ShiftLearner(shift, 10 * (k + 1), { beforeTrain: slow }), pollMs: 2_000 }));
    const runs = institutions.map((i) => {
      i.run = i.client.run();
      return i.run.then(
        () => null,
        (e: RpcFailure) => e,
      );
    });
    await within(new Promise<void>((resolve) => c.machine.on('round', (s: { round: number }) => s.round === 1 && resolve())), 30_000, 'round 1 to commit');
    const cli = spawn(process.execPath, [DPFED_BIN, 'enrol', 'revoke', '--db', join(dir, 'coordinator.sqlite'), '--institution', 'bank-3'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cli.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    cli.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    expect(await new Promise((r) => cli.on('exit', r))).toBe(0);
    expect(out).toContain('bank-3: revoked');

    const cut = await within(runs[2], 20_000, 'bank-3 to be cut off');
    const cutInRound = c.machine.status.round;
    expect(cut, 'bank-3 should have been refused').not.toBeNull();
    expect(grpc.status[cut!.code]).toBe('PERMISSION_DENIED');
    expect(cut!.details).toContain('"bank-3" is revoked');
    await within(c.finished, 60_000, 'the run to finish');
    expect(await runs[0]).toBeNull();
    expect(await runs[1]).toBeNull();
    expect(seen.rounds.map((r) => r.round)).toEqual([1, 2, 3, 4, 5, 6]);
    // it was cut mid-run, and no round after that had it among its participants
    expect(cutInRound).toBeLessThan(6);
    for (let round = cutInRound + 1; round <= 6; round++) {
      expect(c.store.participants(c.runId, round).map((p) => p.institutionId)).toEqual(['bank-1', 'bank-2']);
    }

    // and it cannot come back with the key it had: it gets no nonce
    await denied(connect(address, (await testPki()).material('bank-3')).challenge({ institutionId: 'bank-3' }), 'bank-3', 'revoked');
    await denied(register(connect(address, (await testPki()).material('bank-3')), 'bank-3', institutions[2].identity), 'bank-3', 'revoked');
  });
});
