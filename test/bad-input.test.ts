// Bad input against a running coordinator, sent as hand-made messages over real gRPC: each gets a clear
// status naming the field, the server keeps serving, and the round commits with the good updates only.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import { generateIdentity, type IdentityKey } from '@dpfed/privacy/identity';
import { parameterShapes } from '@dpfed/proto/model-spec';
import { INSTITUTION_ID_PATTERN } from '@dpfed/proto/registration';
import { signedRegistration } from '@dpfed/client/registration-request';
import { channelCredentials } from '@dpfed/proto/tls-credentials';
import { SessionStream } from '@dpfed/client/session-stream';
import { chunkTensors, packTensors, type NamedTensor } from '@dpfed/proto/tensor-stream';
import {
  CHANNEL_OPTIONS,
  federationClientConstructor,
  type AckMsg,
  type ClientFrameMsg,
  type CoordinatorFrameMsg,
  type Envelope,
  type RegisterRequest,
  type ResultChunkMsg,
  type ResultHeaderMsg,
  type TaskMsg,
} from '@dpfed/proto/wire';
import { ShiftLearner, cleanUp, expectedFedAvg, makeInstitution, runConfig, start, startTestCoordinator, enrol, testPki, tempDir, within, type TestInstitution } from './helpers/federation-fixture.ts';

type RpcFailure = { code: grpc.status; details: string; message?: string };

/** A registration signed over a fresh challenge (by `signer` instead of the identity, to forge one). An id that
 * is not valid is registered over a nonce issued to `bad-name` (enrolled first): Register refuses the id itself. */
async function registration(conn: CoordinatorConnection, id: string, identity: IdentityKey, o: { signer?: IdentityKey } = {}): Promise<RegisterRequest> {
  const challenge = await conn.challenge({ institutionId: INSTITUTION_ID_PATTERN.test(id) ? id : 'bad-name' });
  const request = signedRegistration(challenge, { institutionId: id, identity, budget: null, clientVersion: 'hand-made' });
  if (o.signer) request.signature = signedRegistration(challenge, { institutionId: id, identity: o.signer, budget: null }).signature;
  return request;
}

/** Expects the call to fail with `code` and details naming `field`. */
async function refused(call: Promise<unknown>, code: grpc.status, field: string | RegExp): Promise<RpcFailure> {
  let failure: RpcFailure | undefined;
  try {
    await call;
  } catch (error) {
    failure = error as RpcFailure;
  }
  expect(failure, `expected ${grpc.status[code]} naming ${field}, the call succeeded`).toBeDefined();
  expect(grpc.status[failure!.code], failure!.details ?? failure!.message).toBe(grpc.status[code]);
  if (typeof field === 'string') expect(failure!.details).toContain(field);
  else expect(failure!.details).toMatch(field);
  return failure!;
}

describe('bad input against a running coordinator', () => {
  let dir: string | undefined;
  let coordinator: Coordinator | undefined;
  let institutions: TestInstitution[] = [];
  let connection: CoordinatorConnection | undefined;
  let raw: (grpc.Client & Record<string, (callback: (e: grpc.ServiceError | null, ack: AckMsg) => void) => grpc.ClientWritableStream<ResultChunkMsg>>) | undefined;

  afterAll(async () => {
    connection?.close();
    raw?.close();
    await cleanUp({ institutions, coordinators: [coordinator], dir });
  });

  it('refuses each bad message with a status naming the field, keeps serving, and commits the good updates only', async () => {
    dir = tempDir('dpfed-bad-input-');
    const config = runConfig(['--rounds', '2', '--min-clients', '2', '--privacy', 'off', '--model', 'logistic', '--round-timeout', '30', '--phase-timeout', '30']);
    // TLS without client certificates: one hand-written connection speaks for several institutions here
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, livenessMs: 60_000, clientCertificates: false });
    const c = coordinator;
    const address = `127.0.0.1:${c.port}`;
    const credentials = channelCredentials((await testPki()).caOnly());
    connection = new CoordinatorConnection(address, credentials);
    const conn = connection;
    const Client = federationClientConstructor();
    raw = new Client(address, credentials, CHANNEL_OPTIONS) as never;
    const shapes = parameterShapes(config.modelSpec);

    // Two good institutions (an SDK user's learner with known outputs). Their first training is held until
    // the bad institutions have registered, so round 2 samples everyone; their second until the bad
    // messages of round 2 are sent.
    let releaseRound1!: () => void;
    let releaseRound2!: () => void;
    const round1 = new Promise<void>((r) => (releaseRound1 = r));
    const round2 = new Promise<void>((r) => (releaseRound2 = r));
    const good = [
      { shift: 0.5, weight: 64 },
      { shift: -0.25, weight: 192 },
    ];
    institutions = good.map((g, k) => {
      let calls = 0;
      const learner = new ShiftLearner(g.shift, g.weight, { beforeTrain: () => (++calls === 1 ? round1 : round2) });
      return makeInstitution({ id: `good-${k + 1}`, address, learner });
    });
    const runs = start(institutions);
    runs.catch(() => undefined);
    await within(
      new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          if (c.machine.status.round === 1 && c.machine.status.phase === 'training') {
            clearInterval(timer);
            resolve();
          }
        }, 5);
      }),
      20_000,
      'round 1 to start training',
    );

    // ---- registration ----
    const badIds = ['bad-name', 'bad-shape', 'bad-nan', 'bad-inf', 'bad-trunc', 'bad-pack'];
    const identities = new Map(badIds.map((id) => [id, generateIdentity()]));
    const sessions = new Map<string, Uint8Array>();
    for (const id of badIds) enrol(c, id, identities.get(id)!.publicKey);
    for (const id of badIds) sessions.set(id, (await conn.register(await registration(conn, id, identities.get(id)!))).session);
    const stranger = generateIdentity();
    enrol(c, 'bad-signature', stranger.publicKey); // enrolled, so the signature check is what refuses it
    await refused(conn.register(await registration(conn, 'bad-signature', stranger, { signer: generateIdentity() })), grpc.status.UNAUTHENTICATED, 'signature');
    await refused(conn.register(await registration(conn, 'not an id!', stranger)), grpc.status.INVALID_ARGUMENT, 'institution_id');
    await refused(conn.challenge({ institutionId: 'not an id!' }), grpc.status.INVALID_ARGUMENT, 'institution_id');
    // an id that is not enrolled gets no nonce
    await refused(conn.challenge({ institutionId: 'bad-unenrolled' }), grpc.status.PERMISSION_DENIED, 'not enrolled');
    await refused(conn.register(await registration(conn, 'bad-name', stranger)), grpc.status.PERMISSION_DENIED, 'identity_public_key');
    const envelope = (id: string, o: Partial<Envelope> = {}): Envelope => ({ runId: c.runId, round: 2, modelVersion: 1, institutionId: id, session: sessions.get(id)!, ...o });
    await refused(conn.heartbeat(envelope('nobody', { session: randomBytes(16) })), grpc.status.INVALID_ARGUMENT, 'institution_id');
    await refused(conn.pullTask(envelope('bad-signature', { session: randomBytes(16) }), 0), grpc.status.INVALID_ARGUMENT, 'institution_id');
    await refused(conn.heartbeat(envelope('bad-name', { session: randomBytes(16) })), grpc.status.UNAUTHENTICATED, 'envelope.session');

    // ---- a result from an institution that is not in the round ----
    const header = (id: string, o: Partial<ResultHeaderMsg> = {}, env: Partial<Envelope> = {}): ResultHeaderMsg => ({
      envelope: envelope(id, env),
      kind: 'TRAIN_RESULT',
      numExamples: 1000,
      metrics: { loss: 0 },
      privacyEvent: undefined,
      encrypted: false,
      tensorCount: shapes.length,
      masked: false,
      ...o,
    });
    const update = (fill: number, o: { names?: string[]; shapes?: number[][] } = {}): NamedTensor[] =>
      shapes.map((s, i) => {
        const shape = o.shapes?.[i] ?? s.shape;
        return { name: o.names?.[i] ?? s.name, shape, dtype: 'FLOAT32', data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill) };
      });
    await refused(conn.pushResult(header('bad-name', {}, { round: 1, modelVersion: 0 }), update(1000)), grpc.status.FAILED_PRECONDITION, 'not a participant');

    // ---- round 2: everyone is sampled ----
    releaseRound1();
    const tasks = new Map<string, TaskMsg>();
    await within(
      Promise.all(
        badIds.map(async (id) => {
          for (;;) {
            const task = await conn.pullTask(envelope(id, { round: 0, modelVersion: 0 }), 5_000);
            if (task.kind === 'TRAIN') return void tasks.set(id, task);
          }
        }),
      ),
      20_000,
      "the bad institutions' round-2 training tasks",
    );
    for (const task of tasks.values()) expect([task.envelope.runId, task.envelope.round, task.envelope.modelVersion]).toEqual([c.runId, 2, 1]);
    expect(c.machine.status).toMatchObject({ round: 2, phase: 'training' });
    const serving = async () => expect(await conn.heartbeat(envelope('bad-nan'))).toMatchObject({ round: 2 });

    // wrong run, closed round, future round, wrong model version: FAILED_PRECONDITION naming the field; the update is not taken
    await refused(conn.pushResult(header('bad-name', {}, { runId: 'run-someone-else' }), update(1000)), grpc.status.FAILED_PRECONDITION, 'envelope.run_id');
    await refused(conn.pushResult(header('bad-name', {}, { round: 1 }), update(1000)), grpc.status.FAILED_PRECONDITION, /envelope\.round: round 1 is closed/);
    await refused(conn.pushResult(header('bad-name', {}, { round: 3 }), update(1000)), grpc.status.FAILED_PRECONDITION, 'envelope.round');
    await refused(conn.pushResult(header('bad-name', {}, { modelVersion: 0 }), update(1000)), grpc.status.FAILED_PRECONDITION, 'envelope.model_version');
    // (a refused download must end with a status, not leave the stream open: bounded here so a hang fails fast)
    await refused(
      within(conn.downloadModel(envelope('bad-name', { modelVersion: 7 })), 5_000, 'DownloadModel of an unknown version to answer'),
      grpc.status.FAILED_PRECONDITION,
      'envelope.model_version',
    );
    await refused(within(conn.downloadModel(envelope('bad-name', { runId: 'run-someone-else' })), 5_000, 'DownloadModel of another run to answer'), grpc.status.FAILED_PRECONDITION, 'envelope.run_id');
    // a header that does not add up: INVALID_ARGUMENT naming it
    await refused(conn.pushResult(header('bad-name', { tensorCount: 3 }), update(1000)), grpc.status.INVALID_ARGUMENT, 'header.tensor_count');
    await serving();
    // the model download of the task itself works
    const model = await conn.downloadModel(envelope('bad-name'));
    expect(model.map((t) => t.name)).toEqual(shapes.map((s) => s.name));

    // wrong tensor names or shapes, NaN, Inf, a truncated stream: INVALID_ARGUMENT, and the sender is rejected for the round
    await refused(conn.pushResult(header('bad-name'), update(1000, { names: ['dense_0/weights', 'dense_0/bias'] })), grpc.status.INVALID_ARGUMENT, 'tensor.name');
    await serving();
    await refused(conn.pushResult(header('bad-shape'), update(1000, { shapes: [[1, 30], [1]] })), grpc.status.INVALID_ARGUMENT, 'tensor.shape');
    await serving();
    const nan = update(0);
    nan[0].data[7] = Number.NaN;
    await refused(conn.pushResult(header('bad-nan'), nan), grpc.status.INVALID_ARGUMENT, /tensor\.data: .*index 7 is NaN/);
    await serving();
    const inf = update(0);
    inf[1].data[0] = Number.POSITIVE_INFINITY;
    await refused(conn.pushResult(header('bad-inf'), inf), grpc.status.INVALID_ARGUMENT, /tensor\.data: .*index 30 is Infinity/);
    await serving();
    const chunks = [...chunkTensors(update(1000), 16)];
    await refused(
      new Promise<AckMsg>((resolve, reject) => {
        const call = raw!.PushResult((error, ack) => (error ? reject(error) : resolve(ack)));
        call.write({ header: header('bad-trunc') });
        call.write({ tensor: chunks[0] });
        call.end();
      }),
      grpc.status.INVALID_ARGUMENT,
      /tensor\.data: .*incomplete/,
    );
    await serving();
    // a packed whole result whose tensor headers do not tile its packed bytes (on the Session stream)
    const packed = packTensors(update(1000));
    const session = new SessionStream(() => (raw as never as { Session(): grpc.ClientDuplexStream<ClientFrameMsg | Buffer, CoordinatorFrameMsg> }).Session());
    const badPack = session.call(
      10_000,
      (call) => call.write({ wholeResult: { header: header('bad-pack'), tensors: [packed.headers[0], { ...packed.headers[1], offset: 4 }], packedData: packed.packed, padding: new Uint8Array(0) } }),
      (f) => f.ack ?? undefined,
    );
    await refused(badPack, grpc.status.INVALID_ARGUMENT, 'tensor.offset');
    session.close();
    await serving();
    // a rejected institution cannot try again in this round
    await refused(conn.pushResult(header('bad-nan'), update(0)), grpc.status.FAILED_PRECONDITION, 'already answered');
    expect(c.machine.status).toMatchObject({ round: 2, phase: 'training' });

    // ---- the good institutions finish the round ----
    releaseRound2();
    const results = await within(runs, 30_000, 'the good institutions to finish');
    await c.finished;
    expect(results.map((r) => [r.roundsTrained, r.roundsEvaluated])).toEqual([
      [2, 2],
      [2, 2],
    ]);

    const { store, runId } = c;
    expect(store.rounds(runId).map((r) => [r.round, r.participants])).toEqual([
      [1, 2],
      [2, 2],
    ]);
    const participants = store.participants(runId, 2);
    expect(participants.map((p) => [p.institutionId, p.status])).toEqual([
      ['bad-inf', 'rejected'],
      ['bad-name', 'rejected'],
      ['bad-nan', 'rejected'],
      ['bad-pack', 'rejected'],
      ['bad-shape', 'rejected'],
      ['bad-trunc', 'rejected'],
      ['good-1', 'reported'],
      ['good-2', 'reported'],
    ]);
    const detail = new Map(participants.map((p) => [p.institutionId, p.detail]));
    expect(detail.get('bad-name')).toContain('tensor.name');
    expect(detail.get('bad-shape')).toContain('tensor.shape');
    expect(detail.get('bad-nan')).toContain('NaN');
    expect(detail.get('bad-inf')).toContain('Infinity');
    expect(detail.get('bad-trunc')).toContain('tensor.data');
    expect(detail.get('bad-pack')).toContain('tensor.offset');
    for (const id of badIds) {
      expect(participants.find((p) => p.institutionId === id)!.numExamples).toBe(0);
      expect(store.metric(runId, 2, id, 'train_loss')).toBeNull();
      expect(store.metric(runId, 2, id, 'auc')).toBeNull();
    }
    // the committed model is the aggregate of the two good updates only
    const before = store.model(runId, 1)!.parameters;
    expect(store.model(runId, 2)!.parameters).toEqual(expectedFedAvg(before, good));

    // a result for a closed round is refused, and the server still answers
    await refused(conn.pushResult(header('bad-nan', {}, { round: 2, modelVersion: 1 }), update(0)), grpc.status.FAILED_PRECONDITION, /envelope\.round: round 2 is closed/);
    expect((await conn.pullTask(envelope('bad-nan'), 0)).kind).toBe('DONE');
  });
});
