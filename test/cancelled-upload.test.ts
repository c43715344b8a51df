// An upload the institution abandons half way (it cancels the PushResult call, or sends `cancel` for the
// upload on its Session stream) is not a result: the coordinator drops what arrived and the institution
// may push its result again in the same phase. Real gRPC, mutual TLS, hand-made institutions.
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import { signedRegistration } from '@dpfed/client/registration-request';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { generateIdentity } from '@dpfed/privacy/identity';
import { parameterShapes } from '@dpfed/proto/model-spec';
import { chunkTensors, type NamedTensor } from '@dpfed/proto/tensor-stream';
import { CHANNEL_OPTIONS, federationClientConstructor, type AckMsg, type ClientFrameMsg, type CoordinatorFrameMsg, type Envelope, type ResultChunkMsg, type ResultHeaderMsg } from '@dpfed/proto/wire';
import { cleanUp, enrol, runConfig, startTestCoordinator, tempDir, testCredentials, within } from './helpers/federation-fixture.ts';

type RawClient = grpc.Client & {
  PushResult(callback: (error: grpc.ServiceError | null, ack: AckMsg) => void): grpc.ClientWritableStream<ResultChunkMsg>;
  Session(): grpc.ClientDuplexStream<ClientFrameMsg, CoordinatorFrameMsg>;
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a cancelled upload', () => {
  let dir: string | undefined;
  let coordinator: Coordinator | undefined;
  const closers: (() => void)[] = [];

  afterAll(async () => {
    for (const close of closers) close();
    await cleanUp({ coordinators: [coordinator], dir });
  });

  it('leaves the institution free to push its result again in the same phase (PushResult call and Session stream)', async () => {
    dir = tempDir('dpfed-cancelled-upload-');
    const config = runConfig(['--rounds', '1', '--min-clients', '2', '--privacy', 'off', '--model', 'logistic', '--round-timeout', '60', '--phase-timeout', '60']);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config, livenessMs: 60_000 });
    const c = coordinator;
    const address = `127.0.0.1:${c.port}`;
    const shapes = parameterShapes(config.modelSpec);

    // two hand-made institutions, each on its own mutual-TLS connection
    const ids = ['bank-1', 'bank-2'];
    const joined = await Promise.all(
      ids.map(async (id) => {
        const identity = generateIdentity();
        enrol(c, id, identity.publicKey);
        const conn = new CoordinatorConnection(address, testCredentials(id));
        const Client = federationClientConstructor();
        const raw = new Client(address, testCredentials(id), CHANNEL_OPTIONS) as never as RawClient;
        closers.push(
          () => conn.close(),
          () => raw.close(),
        );
        const challenge = await conn.challenge({ institutionId: id });
        const { session, runId } = await conn.register(signedRegistration(challenge, { institutionId: id, identity, budget: null, clientVersion: 'test' }));
        return { id, conn, raw, envelope: { runId, round: 0, modelVersion: 0, institutionId: id, session } as Envelope };
      }),
    );
    const tasks = await within(
      Promise.all(
        joined.map(async (j) => {
          for (;;) {
            const task = await j.conn.pullTask(j.envelope, 5_000);
            if (task.kind === 'TRAIN') return task;
          }
        }),
      ),
      30_000,
      'the training tasks',
    );
    const header = (k: number): ResultHeaderMsg => ({
      envelope: { ...joined[k].envelope, round: tasks[k].envelope.round, modelVersion: tasks[k].envelope.modelVersion },
      kind: 'TRAIN_RESULT',
      numExamples: 0,
      metrics: { loss: 0.5 },
      privacyEvent: undefined,
      encrypted: false,
      tensorCount: shapes.length,
      masked: false,
    });
    const update = (fill: number): NamedTensor[] => shapes.map((s) => ({ name: s.name, shape: s.shape, dtype: 'FLOAT32', data: new Float32Array(s.shape.reduce((a, b) => a * b, 1)).fill(fill) }));
    const chunks = [...chunkTensors(update(0.01), 16)];
    expect(chunks.length).toBeGreaterThan(2);

    // ---- bank-1: a separate PushResult call, cancelled after its header and the first piece of a tensor ----
    const outcome = new Promise<grpc.status>((resolve) => {
      const call = joined[0].raw.PushResult((error) => resolve(error ? error.code : grpc.status.OK));
      call.write({ header: header(0) });
      call.write({ tensor: chunks[0] }, () => setTimeout(() => call.cancel(), 50));
    });
    expect(grpc.status[await within(outcome, 10_000, 'the cancelled call to end')]).toBe('CANCELLED');
    await sleep(200); // the coordinator has seen the cancellation
    expect(c.machine.status.phase).toBe('training');
    const ack1 = await joined[0].conn.pushResult(header(0), update(0.01));
    expect(ack1.accepted).toBe(true);
    // and that result counts: a third push is refused as a second answer
    await expect(joined[0].conn.pushResult(header(0), update(0.01))).rejects.toMatchObject({ message: expect.stringContaining('already answered') });

    // ---- bank-2: on a Session stream, an upload abandoned with `cancel`, then the whole result under a new call id ----
    const stream = joined[1].raw.Session();
    closers.push(() => stream.cancel());
    const answers: CoordinatorFrameMsg[] = [];
    stream.on('data', (frame: CoordinatorFrameMsg) => answers.push(frame));
    stream.on('error', () => undefined);
    stream.write({ callId: 1, body: 'result', result: { header: header(1) } } as ClientFrameMsg);
    stream.write({ callId: 1, body: 'result', result: { tensor: chunks[0] } } as ClientFrameMsg);
    stream.write({ callId: 1, body: 'cancel', cancel: true } as ClientFrameMsg);
    stream.write({ callId: 2, body: 'result', result: { header: header(1) } } as ClientFrameMsg);
    for (const tensor of chunks) stream.write({ callId: 2, body: 'result', result: { tensor } } as ClientFrameMsg);
    stream.write({ callId: 2, body: 'resultEnd', resultEnd: true } as ClientFrameMsg);
    await within(
      (async () => {
        while (!answers.some((f) => f.callId === 2)) await sleep(20);
      })(),
      10_000,
      'the answer to the second upload',
    );
    const answer = answers.find((f) => f.callId === 2)!;
    expect(answer.error ?? null).toBeNull();
    expect(answer.ack?.accepted).toBe(true);
    expect(answers.filter((f) => f.callId === 1)).toEqual([]);

    // both results count: the training phase is over and the round goes on to its evaluation
    await within(
      (async () => {
        while (c.machine.status.phase === 'training') await sleep(20);
      })(),
      10_000,
      'the training phase to close',
    );
    expect(c.machine.status.round).toBe(1);
  }, 60_000);
});
