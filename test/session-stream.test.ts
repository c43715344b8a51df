// The Session stream, frame by frame, against a running coordinator over real gRPC: answers match the
// separate calls, malformed frames get a CallStatus naming the field while the stream keeps serving,
// cancelled and timed-out calls are dropped, and a shared encoded model chunk decodes as the frame
// protobuf itself would produce.
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import { SessionStream } from '@dpfed/client/session-stream';
import { FederationError } from '@dpfed/proto/federation-error';
import { MAX_OPEN_RESULTS } from '@dpfed/coordinator/session-service';
import { parameterShapes } from '@dpfed/proto/model-spec';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { generateIdentity } from '@dpfed/privacy/identity';
import { signedRegistration } from '@dpfed/client/registration-request';
import {
  CHANNEL_OPTIONS,
  federationClientConstructor,
  serializeTensorChunk,
  federationService,
  type ClientFrameMsg,
  type CoordinatorFrameMsg,
  type Envelope,
  type TensorChunkMsg,
} from '@dpfed/proto/wire';
import { modelChunkFrame } from '@dpfed/proto/hand-framed-messages';
import { cleanUp, enrol, runConfig, startTestCoordinator, tempDir, testCredentials, within } from './helpers/federation-fixture.ts';

/** Enrols `id` at `coordinator` with a fresh identity and registers it; the envelope of its round-0 requests. */
async function registerAs(conn: CoordinatorConnection, id: string, coordinator: Coordinator): Promise<Envelope> {
  const identity = generateIdentity();
  enrol(coordinator, id, identity.publicKey);
  const challenge = await conn.challenge({ institutionId: id });
  const { session, runId } = await conn.register(signedRegistration(challenge, { institutionId: id, identity, budget: null, clientVersion: 'test' }));
  return { runId, round: 0, modelVersion: 0, institutionId: id, session };
}

describe('modelChunkFrame', () => {
  it('is byte for byte a CoordinatorFrame { call_id, model_chunk } that protobuf decodes to the same chunk', () => {
    const service = federationService();
    const chunk: TensorChunkMsg = {
      name: 'dense_0/kernel',
      shape: [3, 2],
      dtype: 'FLOAT32',
      totalBytes: 24,
      offset: 0,
      data: Buffer.from(new Float32Array([1, 2, 3, 4, 5, 6]).buffer),
      tensorIndex: 0,
      tensorCount: 2,
    };
    for (const callId of [1, 127, 128, 300, 2 ** 31 - 1]) {
      const frame = modelChunkFrame(callId, serializeTensorChunk(chunk));
      const decoded = service.Session.responseDeserialize(frame) as CoordinatorFrameMsg;
      expect(decoded.callId).toBe(callId);
      expect(decoded.body).toBe('modelChunk');
      expect({ ...decoded.modelChunk, envelope: undefined, data: Buffer.from(decoded.modelChunk!.data) }).toEqual({ ...chunk, envelope: undefined });
      const reference = service.Session.responseSerialize({ callId, modelChunk: chunk }) as Buffer;
      expect(service.Session.responseDeserialize(reference)).toEqual(decoded);
    }
  });
});

describe('the Session stream against a running coordinator', () => {
  let dir: string | undefined;
  let coordinator: Coordinator | undefined;
  let raw: grpc.Client | undefined;
  const connections: CoordinatorConnection[] = [];

  afterAll(async () => {
    for (const c of connections) c.close();
    raw?.close();
    await cleanUp({ coordinators: [coordinator], dir });
  });

  it('answers like the separate calls, names the field of a bad frame, drops cancelled calls and keeps serving', async () => {
    dir = tempDir('dpfed-session-');
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config: runConfig(['--rounds', '1', '--min-clients', '2', '--model', 'logistic']) });
    const address = `127.0.0.1:${coordinator.port}`;
    const conn = new CoordinatorConnection(address, testCredentials('bank-1'));
    connections.push(conn);
    const envelope = await registerAs(conn, 'bank-1', coordinator);

    // the same answer through the session (the SDK's path) and through the separate call
    const Client = federationClientConstructor();
    raw = new Client(address, testCredentials('bank-1'), CHANNEL_OPTIONS);
    const separate = await new Promise((resolve, reject) => (raw as never as Record<string, Function>).Heartbeat({ envelope }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));
    expect(await conn.heartbeat(envelope)).toEqual(separate);

    // hand-made frames on a stream of our own
    const stream = (raw as never as { Session(): grpc.ClientDuplexStream<ClientFrameMsg, CoordinatorFrameMsg> }).Session();
    const answers = new Map<number, CoordinatorFrameMsg[]>();
    stream.on('data', (f: CoordinatorFrameMsg) => answers.set(f.callId, [...(answers.get(f.callId) ?? []), f]));
    stream.on('error', () => undefined);
    const answerTo = (callId: number) =>
      within(
        new Promise<CoordinatorFrameMsg[]>((resolve) => {
          const timer = setInterval(() => {
            if (answers.has(callId)) {
              clearInterval(timer);
              resolve(answers.get(callId)!);
            }
          }, 5);
        }),
        5_000,
        `an answer to call ${callId}`,
      );

    stream.write({ callId: 1 });
    expect((await answerTo(1))[0]).toMatchObject({ body: 'error', error: { code: grpc.status.INVALID_ARGUMENT, message: expect.stringContaining('body') } });
    stream.write({ callId: 2, resultEnd: true });
    expect((await answerTo(2))[0].error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, message: expect.stringContaining('header') });
    stream.write({ callId: 3, result: { tensor: { name: 'x', shape: [1], dtype: 'FLOAT32', totalBytes: 4, offset: 0, data: Buffer.alloc(4), tensorIndex: 0, tensorCount: 1 } } });
    stream.write({ callId: 3, result: { tensor: { name: 'x', shape: [1], dtype: 'FLOAT32', totalBytes: 4, offset: 0, data: Buffer.alloc(4), tensorIndex: 0, tensorCount: 1 } } });
    stream.write({ callId: 3, resultEnd: true });
    stream.write({ callId: 4, heartbeat: { envelope: { ...envelope, session: randomBytes(16) } } });
    expect((await answerTo(4))[0].error).toMatchObject({ code: grpc.status.UNAUTHENTICATED, message: expect.stringContaining('envelope.session') });
    // call 3 was refused once (its first frame was not a header); its later frames and its end were dropped
    expect((await answerTo(3)).map((f) => f.body)).toEqual(['error']);
    expect((await answerTo(3))[0].error!.message).toContain('header');

    // a pull that would wait is cancelled: no answer comes for it, and the stream still serves
    stream.write({ callId: 5, pullTask: { envelope, waitMs: 2_000 } });
    stream.write({ callId: 5, cancel: true });
    stream.write({ callId: 6, heartbeat: { envelope } });
    expect((await answerTo(6))[0]).toMatchObject({ body: 'heartbeat', heartbeat: { phase: expect.any(String) } });
    await new Promise((r) => setTimeout(r, 2_500));
    expect(answers.has(5)).toBe(false);
    stream.end();

    // the SDK's side: a call past its deadline fails with DEADLINE_EXCEEDED and the stream keeps serving
    const sdkStream = new SessionStream(() => (raw as never as { Session(): grpc.ClientDuplexStream<ClientFrameMsg | Buffer, CoordinatorFrameMsg> }).Session());
    const late = sdkStream.call(
      100,
      (call) => call.write({ pullTask: { envelope, waitMs: 5_000 } }),
      (f) => f.task ?? undefined,
    );
    const failure = await late.then(
      () => null,
      (e: unknown) => e,
    );
    expect(failure).toBeInstanceOf(FederationError);
    expect((failure as FederationError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    const beat = await sdkStream.call(
      5_000,
      (call) => call.write({ heartbeat: { envelope } }),
      (f) => f.heartbeat ?? undefined,
    );
    expect(beat).toMatchObject({ round: expect.any(Number) });
    sdkStream.close();
  });

  it('keeps at most MAX_OPEN_RESULTS uploads open per stream; cancelled ones free their place and a full upload then commits', async () => {
    const dir3 = tempDir('dpfed-session-uploads-');
    const config = runConfig(['--rounds', '1', '--min-clients', '1', '--model', 'logistic', '--round-timeout', '20', '--phase-timeout', '20']);
    const c = await startTestCoordinator({ dbPath: join(dir3, 'coordinator.sqlite'), config });
    try {
      const address = `127.0.0.1:${c.port}`;
      const conn = new CoordinatorConnection(address, testCredentials('bank-5'));
      connections.push(conn);
      const envelope = await registerAs(conn, 'bank-5', c);
      let task = await conn.pullTask(envelope, 5_000);
      while (task.kind !== 'TRAIN') task = await conn.pullTask(envelope, 5_000);
      const Client = federationClientConstructor();
      const client = new Client(address, testCredentials('bank-5'), CHANNEL_OPTIONS);
      const stream = (client as never as { Session(): grpc.ClientDuplexStream<ClientFrameMsg, CoordinatorFrameMsg> }).Session();
      const answers = new Map<number, CoordinatorFrameMsg>();
      stream.on('data', (f: CoordinatorFrameMsg) => answers.set(f.callId, f));
      stream.on('error', () => undefined);
      const header = {
        envelope: { ...task.envelope, institutionId: 'bank-5', session: envelope.session },
        kind: 'TRAIN_RESULT' as const,
        numExamples: 10,
        metrics: { loss: 0 },
        privacyEvent: undefined,
        encrypted: false,
        tensorCount: 2,
        masked: false,
      };
      for (let id = 1; id <= MAX_OPEN_RESULTS + 1; id++) stream.write({ callId: id, result: { header } });
      const overflow = await within(
        new Promise<CoordinatorFrameMsg>((resolve) => {
          const timer = setInterval(() => answers.has(MAX_OPEN_RESULTS + 1) && (clearInterval(timer), resolve(answers.get(MAX_OPEN_RESULTS + 1)!)), 5);
        }),
        5_000,
        'the refusal of one upload too many',
      );
      expect(overflow.error).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, message: expect.stringContaining('result') });
      for (let id = 1; id <= MAX_OPEN_RESULTS; id++) stream.write({ callId: id, cancel: true });
      stream.end();
      client.close();
      // the SDK's own upload on its own stream goes through, and the round commits with it
      const shapes = parameterShapes(config.modelSpec);
      const tensors = shapes.map((p) => ({ name: p.name, shape: p.shape, dtype: 'FLOAT32' as const, data: new Float32Array(p.shape.reduce((a, b) => a * b, 1)).fill(0.01) }));
      expect(await conn.pushResult(header, tensors)).toMatchObject({ accepted: true });
      for (;;) {
        const next = await conn.pullTask(envelope, 5_000);
        if (next.kind === 'EVALUATE') {
          const bins = config.task.evaluation.bins;
          const [positive, negative] = [new Uint32Array(bins), new Uint32Array(bins)];
          positive[700] = 1;
          negative[300] = 1;
          await conn.pushResult(
            { ...header, envelope: { ...next.envelope, institutionId: 'bank-5', session: envelope.session }, kind: 'EVALUATE_RESULT', numExamples: 2, metrics: { loss: 0.1, accuracy: 1 } },
            [
              { name: 'histogram/positive', shape: [bins], dtype: 'UINT32', data: positive },
              { name: 'histogram/negative', shape: [bins], dtype: 'UINT32', data: negative },
            ],
          );
        }
        if (next.kind === 'DONE') break;
      }
      await within(c.finished, 10_000, 'the run');
      expect(c.store.rounds(c.runId).map((r) => [r.round, r.participants])).toEqual([[1, 1]]);
    } finally {
      await cleanUp({ coordinators: [c], dir: dir3 });
    }
  });

  it('settles the calls in flight when the coordinator goes away, and later calls fail with UNAVAILABLE', async () => {
    const dir2 = tempDir('dpfed-session-gone-');
    const c = await startTestCoordinator({ dbPath: join(dir2, 'coordinator.sqlite'), config: runConfig(['--rounds', '1', '--min-clients', '2', '--model', 'logistic']) });
    const conn = new CoordinatorConnection(`127.0.0.1:${c.port}`, testCredentials('bank-9'));
    connections.push(conn);
    const envelope = await registerAs(conn, 'bank-9', c);
    const pending = conn.pullTask(envelope, 10_000).then(
      (task) => task.kind,
      (e: { code: grpc.status }) => grpc.status[e.code],
    );
    await new Promise((r) => setTimeout(r, 200));
    await cleanUp({ coordinators: [c], dir: dir2 });
    // the coordinator may still answer the pull as it stops (WAIT or DONE); otherwise the lost stream fails it
    expect(['WAIT', 'DONE', 'UNAVAILABLE', 'CANCELLED']).toContain(await within(pending, 8_000, 'the pending pull to settle'));
    const later = await conn.heartbeat(envelope).then(
      () => null,
      (e: { code: grpc.status }) => e.code,
    );
    expect(later).toBe(grpc.status.UNAVAILABLE);
  });
});
