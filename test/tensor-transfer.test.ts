// Named tensors in chunked streams: a > 64 MiB model through a real federation round without raising the
// 4 MiB message cap, and the reassembly rules of proto/tensor-stream.ts (each violation names its field).
import * as grpc from '@grpc/grpc-js';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { EvalOutcome, TaskContext } from '@dpfed/client/learner';
import type { Coordinator } from '@dpfed/coordinator/coordinator-server';
import { CoordinatorConnection } from '@dpfed/client/coordinator-connection';
import { generateIdentity } from '@dpfed/privacy/identity';
import { parameterCount } from '@dpfed/proto/model-spec';
import { signedRegistration } from '@dpfed/client/registration-request';
import { chunkTensors, dtypeOf, TensorAssembler, TensorStreamError, type NamedTensor } from '@dpfed/proto/tensor-stream';
import { CHANNEL_OPTIONS, DEFAULT_CHUNK_BYTES, MAX_MESSAGE_BYTES, federationClientConstructor, type TensorChunkMsg } from '@dpfed/proto/wire';
import {
  ShiftLearner,
  cleanUp,
  expectedFedAvg,
  maxAbsDifference,
  makeInstitution,
  runConfig,
  start,
  startTestCoordinator,
  enrol,
  testCredentials,
  tempDir,
  within,
  type TestInstitution,
} from './helpers/federation-fixture.ts';

const MIB = 1024 * 1024;

function tensor(name: string, shape: number[], data: NamedTensor['data']): NamedTensor {
  return { name, shape, dtype: dtypeOf(data), data };
}

function streamError(fn: () => void): TensorStreamError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TensorStreamError);
    return error as TensorStreamError;
  }
  throw new Error('expected a TensorStreamError, nothing was thrown');
}

describe('chunkTensors / TensorAssembler', () => {
  const a = tensor(
    'dense_0/kernel',
    [3, 5],
    Float32Array.from({ length: 15 }, (_, i) => i * 0.5 - 3),
  );
  const b = tensor(
    'counts',
    [7],
    Uint32Array.from({ length: 7 }, (_, i) => i * 1000 + 1),
  );
  const c = tensor('wide', [2, 3], Float64Array.from([Math.PI, -Math.E, 1e-300, 1e300, 0, -0]));

  it('round-trips several tensors of every dtype through chunks of a few bytes, each chunk within the size', () => {
    for (const size of [8, 12, 13, 64, DEFAULT_CHUNK_BYTES]) {
      const chunks = [...chunkTensors([a, b, c], size)];
      for (const chunk of chunks) {
        expect(chunk.data.length).toBeLessThanOrEqual(size);
        expect(chunk.data.length % (chunk.dtype === 'FLOAT64' ? 8 : 4)).toBe(0);
        expect(chunk.tensorCount).toBe(3);
      }
      const assembler = new TensorAssembler();
      for (const chunk of chunks) assembler.push(chunk);
      const out = assembler.finish(3);
      expect(out.map((t) => [t.name, t.shape, t.dtype])).toEqual([
        [a.name, a.shape, 'FLOAT32'],
        [b.name, b.shape, 'UINT32'],
        [c.name, c.shape, 'FLOAT64'],
      ]);
      expect(out[0].data).toEqual(a.data);
      expect(out[1].data).toEqual(b.data);
      expect(out[2].data).toEqual(c.data);
    }
    // chunks are views: the sender never copies a tensor
    const first = chunkTensors([a], 16).next().value as TensorChunkMsg;
    expect(first.data.buffer).toBe(a.data.buffer);
    expect(() => [...chunkTensors([a], 4)]).toThrow(/chunk size/);
  });

  it('an out-of-order offset throws naming offset', () => {
    const chunks = [...chunkTensors([a], 16)];
    const assembler = new TensorAssembler();
    assembler.push(chunks[0]);
    const error = streamError(() => assembler.push(chunks[2]));
    expect(error.field).toBe('offset');
    expect(error.message).toMatch(/offset/);
    // a first chunk that does not start at 0
    expect(streamError(() => new TensorAssembler().push(chunks[1])).field).toBe('offset');
  });

  it('a total_bytes that does not match the shape throws naming total_bytes', () => {
    const [first] = [...chunkTensors([a], 16)];
    const error = streamError(() => new TensorAssembler().push({ ...first, totalBytes: first.totalBytes + 4 }));
    expect(error.field).toBe('total_bytes');
    expect(error.message).toMatch(/total_bytes/);
    // more bytes than announced
    const liar = { ...first, shape: [1, 1], totalBytes: 4 };
    expect(streamError(() => new TensorAssembler().push(liar)).field).toBe('data');
    // and a stream larger than the receiver allows
    expect(streamError(() => new TensorAssembler(undefined, 32).push(first)).field).toBe('total_bytes');
  });

  it('a truncated stream throws at finish, naming the incomplete tensor', () => {
    const chunks = [...chunkTensors([a, b], 16)];
    const assembler = new TensorAssembler();
    for (const chunk of chunks.slice(0, 2)) assembler.push(chunk);
    const error = streamError(() => assembler.finish());
    expect(error.field).toBe('data');
    expect(error.message).toMatch(/dense_0\/kernel.*incomplete/);
    // a stream that stops between tensors
    const whole = new TensorAssembler();
    for (const chunk of [...chunkTensors([a], 16)]) whole.push({ ...chunk, tensorCount: 2 });
    const short = streamError(() => whole.finish());
    expect(short.field).toBe('tensor_count');
    expect(short.message).toMatch(/expected 2 tensors, received 1/);
  });

  it('a tensor_count that changes mid-stream, or differs from what the receiver expects, throws naming tensor_count', () => {
    const chunks = [...chunkTensors([a, b], 16)];
    const assembler = new TensorAssembler();
    assembler.push(chunks[0]);
    const error = streamError(() => assembler.push({ ...chunks[1], tensorCount: 5 }));
    expect(error.field).toBe('tensor_count');
    expect(error.message).toMatch(/tensor_count/);
    const complete = new TensorAssembler();
    for (const chunk of chunks) complete.push(chunk);
    expect(streamError(() => complete.finish(3)).field).toBe('tensor_count');
  });

  it('a chunk of another tensor before the current one is complete, or a skipped tensor_index, is refused', () => {
    const chunks = [...chunkTensors([a, b], 16)];
    const first = new TensorAssembler();
    first.push(chunks[0]);
    const bStart = chunks.findIndex((ch) => ch.name === 'counts');
    expect(streamError(() => first.push(chunks[bStart])).field).toBe('name');
    expect(streamError(() => new TensorAssembler().push(chunks[bStart])).field).toBe('tensor_index');
    // the receiver's own check sees name, shape and dtype with the first chunk
    const picky = new TensorAssembler((name) => {
      if (name !== 'expected') throw new Error(`tensor.name: unexpected "${name}"`);
    });
    expect(() => picky.push(chunks[0])).toThrow(/tensor.name/);
  });
});

describe('a > 64 MiB model through a federation round over real gRPC', () => {
  let dir: string | undefined;
  let coordinator: Coordinator | undefined;
  let institutions: TestInstitution[] = [];

  afterAll(async () => {
    await cleanUp({ institutions, coordinators: [coordinator], dir });
  });

  it('2 clients, 1 round: the committed model equals the aggregate exactly; no chunk exceeds 4 MiB; the cap is not raised', async () => {
    expect(DEFAULT_CHUNK_BYTES).toBe(4 * MIB);
    expect(MAX_MESSAGE_BYTES).toBe(4 * MIB + 64 * 1024);
    dir = tempDir('dpfed-large-');
    const config = runConfig(['--rounds', '1', '--min-clients', '2', '--privacy', 'off', '--model', 'mlp:4096', '--features', '4096', '--round-timeout', '60', '--phase-timeout', '60']);
    expect(config.modelSpec).toEqual({ kind: 'mlp', inputDim: 4096, hidden: [{ units: 4096, activation: 'relu' }] });
    const parameters = parameterCount(config.modelSpec);
    expect(parameters * 4).toBeGreaterThan(64 * MIB);

    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    const address = `127.0.0.1:${coordinator.port}`;
    const clients = [
      { shift: 0.125, weight: 64 },
      { shift: -0.5, weight: 192 },
    ];
    institutions = clients.map((c, k) => makeInstitution({ id: `bank-${k + 1}`, address, learner: new ShiftLearner(c.shift, c.weight) }));
    const results = await within(start(institutions), 100_000, 'the large-model round');
    await coordinator.finished;
    expect(results.map((r) => [r.roundsTrained, r.roundsEvaluated])).toEqual([
      [1, 1],
      [1, 1],
    ]);

    const { store, runId } = coordinator;
    expect(store.rounds(runId).map((r) => [r.round, r.participants])).toEqual([[1, 2]]);
    const initial = store.model(runId, 0)!.parameters;
    const committed = store.model(runId, 1)!.parameters;
    expect(committed.length).toBe(parameters);
    const expected = expectedFedAvg(initial, clients);
    let mismatches = 0;
    for (let i = 0; i < parameters; i++) if (committed[i] !== expected[i]) mismatches++;
    expect(mismatches).toBe(0);

    // What crosses the wire: an observer downloads the committed model over a raw stream and measures
    // every chunk, asking for 64 MiB chunks (the server holds them to its 4 MiB default).
    const observer = generateIdentity();
    const connection = new CoordinatorConnection(address, testCredentials('observer'));
    enrol(coordinator, 'observer', observer.publicKey);
    const challenge = await connection.challenge({ institutionId: 'observer' });
    const registration = await connection.register(signedRegistration(challenge, { institutionId: 'observer', identity: observer, budget: null, clientVersion: 'test' }));
    connection.close();
    const Client = federationClientConstructor();
    const raw = new Client(address, testCredentials('observer'), CHANNEL_OPTIONS) as grpc.Client & Record<string, (request: unknown) => grpc.ClientReadableStream<TensorChunkMsg>>;
    const sizes: number[] = [];
    const assembler = new TensorAssembler();
    await new Promise<void>((resolve, reject) => {
      const call = raw.DownloadModel({ envelope: { runId, round: 2, modelVersion: 1, institutionId: 'observer', session: registration.session }, chunkBytes: 64 * MIB });
      call.on('data', (chunk: TensorChunkMsg) => {
        sizes.push(chunk.data.length);
        assembler.push(chunk);
      });
      call.on('error', reject);
      call.on('end', resolve);
    });
    raw.close();
    expect(Math.max(...sizes)).toBe(4 * MIB);
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(parameters * 4);
    expect(sizes.length).toBeGreaterThanOrEqual(16);
    const downloaded = assembler.finish(4);
    expect(downloaded.map((t) => t.name)).toEqual(['dense_0/kernel', 'dense_0/bias', 'dense_1/kernel', 'dense_1/bias']);
    let offset = 0;
    let same = true;
    for (const t of downloaded) {
      const values = t.data as Float32Array;
      for (let i = 0; i < values.length; i++) if (values[i] !== committed[offset + i]) same = false;
      offset += values.length;
    }
    expect(same).toBe(true);
  });
});

// The three ways a model and an update travel on the Session stream, each through a real round: whole in
// one frame (fits one message), and in chunks from the coordinator's encoded model (above one message, up
// to the 64 MiB it keeps encoded); the > 64 MiB case above covers models streamed without that cache.
/** A ShiftLearner that keeps a copy of the model it evaluated in each round. */
class RecordingShiftLearner extends ShiftLearner {
  readonly evaluated = new Map<number, Float32Array>();

  override async evaluate(model: Float32Array, task: TaskContext): Promise<EvalOutcome> {
    this.evaluated.set(task.round, model.slice());
    return super.evaluate(model, task);
  }
}

describe.each([
  // one download each (round 1's model); every candidate comes attached to its EVALUATE task, and round 2 trains on it
  { label: 'one frame each way (a model that fits one message)', model: 'mlp:256,256,100', features: '30', frames: 'whole', downloads: 2 },
  // nothing attached: round 1's model, then each candidate for its evaluation (round 2 trains on the one it holds)
  { label: 'chunked frames from the encoded model (8 MiB)', model: 'mlp:2048', features: '1024', frames: 'chunked', downloads: 6 },
])('a round with $label', ({ model, features, frames, downloads }) => {
  let dir: string | undefined;
  let coordinator: Coordinator | undefined;
  let institutions: TestInstitution[] = [];

  afterAll(async () => {
    await cleanUp({ institutions, coordinators: [coordinator], dir });
  });

  it('commits exactly the weighted FedAvg of the two updates', async () => {
    dir = tempDir('dpfed-frames-');
    const config = runConfig(['--rounds', '2', '--min-clients', '2', '--privacy', 'off', '--model', model, '--features', features, '--round-timeout', '60', '--phase-timeout', '60']);
    const bytes = parameterCount(config.modelSpec) * 4;
    if (frames === 'whole') expect(bytes).toBeLessThan(MAX_MESSAGE_BYTES - 64 * 1024);
    else expect(bytes).toBeGreaterThan(MAX_MESSAGE_BYTES);
    coordinator = await startTestCoordinator({ dbPath: join(dir, 'coordinator.sqlite'), config });
    const address = `127.0.0.1:${coordinator.port}`;
    const clients = [
      { shift: 0.25, weight: 10 },
      { shift: -0.125, weight: 30 },
    ];
    const learners = clients.map((c) => new RecordingShiftLearner(c.shift, c.weight));
    institutions = learners.map((learner, k) => makeInstitution({ id: `bank-${k + 1}`, address, learner }));
    const downloadRequests = vi.spyOn(CoordinatorConnection.prototype, 'downloadModel');
    try {
      const results = await within(start(institutions), 60_000, 'the rounds');
      await coordinator.finished;
      expect(results.map((r) => [r.roundsTrained, r.roundsEvaluated])).toEqual([
        [2, 2],
        [2, 2],
      ]);
      expect(downloadRequests).toHaveBeenCalledTimes(downloads);
    } finally {
      downloadRequests.mockRestore();
    }
    const { store, runId } = coordinator;
    for (const round of [1, 2]) {
      const before = store.model(runId, round - 1)!.parameters;
      const committed = store.model(runId, round)!.parameters;
      expect(maxAbsDifference(committed, expectedFedAvg(before, clients))).toBe(0);
      // each institution evaluated exactly the model the round then committed
      for (const learner of learners) expect(maxAbsDifference(learner.evaluated.get(round)!, committed)).toBe(0);
    }
  });
});
