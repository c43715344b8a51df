// The coordinator's reuse of update vectors and download frames.
import { describe, expect, it } from 'vitest';
import { FramePool } from '@dpfed/proto/frame-pool';
import { VectorPool } from '@dpfed/coordinator/vector-pool';
import { flatFloat32, packTensors, TensorAssembler, TensorStreamError, unpackTensors } from '@dpfed/proto/tensor-stream';
import { modelChunkFrame, packedModelFrame, packedResultFrame, resultTensorFrame, taskWithModelFrame } from '@dpfed/proto/hand-framed-messages';
import { taskConfigMessage } from '@dpfed/proto/task-config-message';
import { runConfig } from './helpers/federation-fixture.ts';
import { federationService, serializeTensorChunk, type ClientFrameMsg, type CoordinatorFrameMsg, type TaskMsg } from '@dpfed/proto/wire';

describe('VectorPool', () => {
  it('hands back a given vector of the asked length, never one of another length, and keeps at most maxKept', () => {
    const pool = new VectorPool(2);
    const a = pool.take(8);
    expect(a).toHaveLength(8);
    pool.give(a);
    expect(pool.take(8)).toBe(a);
    pool.give(a, new Float32Array(4));
    const b = pool.take(16);
    expect(b).toHaveLength(16);
    expect(b).not.toBe(a);
    pool.give(new Float32Array(8), new Float32Array(8), new Float32Array(8));
    const kept = [pool.take(8), pool.take(8), pool.take(8)];
    expect(new Set(kept).size).toBe(3); // the third is fresh: only two were kept
  });
});

describe('FramePool with modelChunkFrame', () => {
  it('a reused frame buffer is fully rewritten: the decoded frame has the new call id and chunk', () => {
    const pool = new FramePool();
    const service = federationService();
    const chunk = (fill: number) => serializeTensorChunk({ name: 'w', shape: [4], dtype: 'FLOAT32', totalBytes: 16, offset: 0, data: Buffer.alloc(16, fill), tensorIndex: 0, tensorCount: 1 });
    const first = modelChunkFrame(5, chunk(1), pool.take);
    pool.give(first);
    const second = modelChunkFrame(6, chunk(2), pool.take);
    expect(second.buffer).toBe(first.buffer); // same size: the memory was reused
    const decoded = service.Session.responseDeserialize(second) as CoordinatorFrameMsg;
    expect(decoded.callId).toBe(6);
    expect([...decoded.modelChunk!.data]).toEqual(new Array(16).fill(2));
  });
});

describe('resultTensorFrame', () => {
  it('decodes as the ClientFrame { callId, result: { tensor } } protobuf would produce, data included', () => {
    const service = federationService();
    const data = new Uint8Array(new Float32Array([0.5, -1.25, 3, 1e-7, 42]).buffer);
    const chunk = { name: 'dense_1/kernel', shape: [5], dtype: 'FLOAT32' as const, totalBytes: 40, offset: 20, data, tensorIndex: 2, tensorCount: 4 };
    for (const callId of [1, 200, 70_000]) {
      const frame = resultTensorFrame(callId, chunk);
      const decoded = service.Session.requestDeserialize(frame) as ClientFrameMsg;
      const reference = service.Session.requestDeserialize(service.Session.requestSerialize({ callId, result: { tensor: chunk } })) as ClientFrameMsg;
      expect(decoded).toEqual(reference);
      expect(decoded.callId).toBe(callId);
      expect([...decoded.result!.tensor!.data]).toEqual([...data]);
    }
  });
});

describe('packed whole frames (packedResultFrame / packedModelFrame)', () => {
  const service = federationService();
  const envelope = { runId: 'run-1', round: 2, modelVersion: 1, institutionId: 'bank-1', session: Buffer.alloc(16, 9) };
  const header = { envelope, kind: 'TRAIN_RESULT' as const, numExamples: 12, metrics: { loss: 0.5 }, privacyEvent: undefined, encrypted: false, tensorCount: 2, masked: false };
  const flat = new Float32Array([1, -2, 3.5, 0, 0.25, -0.75]);
  const tensors = [
    { name: 'dense_0/kernel', shape: [2, 2], dtype: 'FLOAT32' as const, data: flat.subarray(0, 4) },
    { name: 'dense_0/bias', shape: [2], dtype: 'FLOAT32' as const, data: flat.subarray(4) },
  ];
  /** What grpc-js hands the deserialiser: the message behind its 5-byte prefix, in a buffer of its own. */
  const received = (frame: Buffer) => Buffer.concat([Buffer.alloc(5), frame], frame.length + 5).subarray(5);

  it('packs consecutive views without copying, and anything else by copying', () => {
    const { headers, packed } = packTensors(tensors);
    expect(packed.buffer).toBe(flat.buffer);
    expect(headers.map((h) => [h.offset, h.totalBytes, h.data.length])).toEqual([
      [0, 16, 0],
      [16, 8, 0],
    ]);
    const apart = packTensors([tensors[1], tensors[0]]);
    expect(apart.packed.buffer).not.toBe(flat.buffer);
    expect([...new Float32Array(apart.packed.buffer)]).toEqual([0.25, -0.75, 1, -2, 3.5, 0]);
  });

  it('a packed result decodes as protobuf decodes it, its bytes aligned for float32 in the receive buffer, for call ids and headers of any size', () => {
    for (const callId of [1, 127, 128, 300, 70_000, 2 ** 28]) {
      for (const name of ['x', 'y'.repeat(120), 'z'.repeat(20_000)]) {
        const { headers, packed } = packTensors([{ ...tensors[0], name }, tensors[1]]);
        const frame = packedResultFrame(callId, header, headers, packed, 1 << 20)!;
        const decoded = service.Session.requestDeserialize(received(frame)) as ClientFrameMsg;
        expect(decoded.callId).toBe(callId);
        expect(decoded.body).toBe('wholeResult');
        const batch = decoded.wholeResult!;
        expect(batch.packedData.byteOffset % 4).toBe(0);
        expect(batch.header.numExamples).toBe(12);
        const unpacked = unpackTensors(batch.tensors, batch.packedData);
        expect(unpacked.map((t) => t.name)).toEqual([name, 'dense_0/bias']);
        expect([...new Float32Array(batch.packedData.buffer, batch.packedData.byteOffset, 6)]).toEqual([...flat]);
        const reference = service.Session.requestDeserialize(
          service.Session.requestSerialize({ callId, wholeResult: { header, tensors: headers, packedData: packed, padding: new Uint8Array(0) } }),
        ) as ClientFrameMsg;
        expect({ ...batch, padding: undefined }).toEqual({ ...reference.wholeResult!, padding: undefined });
      }
    }
  });

  it('a packed model decodes as protobuf decodes it, aligned; both frames are null above the size limit', () => {
    const { headers, packed } = packTensors(tensors);
    const encoded = headers.map((h) => serializeTensorChunk(h));
    for (const callId of [7, 128, 1_000_000]) {
      const frame = packedModelFrame(callId, encoded, packed, 1 << 20)!;
      expect(packedModelFrame(callId, encoded, packed, frame.length - 1)).toBeNull();
      const decoded = service.Session.responseDeserialize(received(frame)) as CoordinatorFrameMsg;
      expect(decoded.callId).toBe(callId);
      expect(decoded.wholeModel!.packedData.byteOffset % 4).toBe(0);
      expect(decoded.wholeModel!.tensors).toEqual(headers.map((h) => ({ ...h, envelope: undefined, data: new Uint8Array(0) })));
    }
    const result = packedResultFrame(1, header, headers, packed, 1 << 20)!;
    expect(packedResultFrame(1, header, headers, packed, result.length - 1)).toBeNull();
  });

  it('a task with its model attached decodes as protobuf decodes the task, the model packed and aligned; null above the size limit', () => {
    const { headers, packed } = packTensors(tensors);
    const encoded = headers.map((h) => serializeTensorChunk(h));
    const task: TaskMsg = {
      envelope,
      kind: 'EVALUATE',
      modelSpec: { kind: 'MODEL_KIND_LOGISTIC', inputDim: 3, hidden: [] },
      config: { ...taskConfigMessage({ ...runConfig().task, strategy: 'fedavg', proximalMu: 0, seed: '' }), seed: 'x'.repeat(300) },
      retryAfterMs: 0,
      message: '',
      modelId: 'abc123',
    };
    for (const callId of [3, 200, 99_999]) {
      const frame = taskWithModelFrame(callId, task, encoded, packed, 1 << 20)!;
      expect(taskWithModelFrame(callId, task, encoded, packed, frame.length - 1)).toBeNull();
      const decoded = service.Session.responseDeserialize(received(frame)) as CoordinatorFrameMsg;
      expect(decoded.callId).toBe(callId);
      expect(decoded.body).toBe('task');
      const reference = service.Session.responseDeserialize(service.Session.responseSerialize({ callId, task })) as CoordinatorFrameMsg;
      expect({ ...decoded.task!, model: undefined }).toEqual(reference.task);
      const model = decoded.task!.model!;
      expect(model.packedData.byteOffset % 4).toBe(0);
      expect(model.tensors.map((t) => [t.name, t.offset, t.totalBytes])).toEqual([
        ['dense_0/kernel', 0, 16],
        ['dense_0/bias', 16, 8],
      ]);
      expect([...new Float32Array(model.packedData.buffer, model.packedData.byteOffset, 6)]).toEqual([...flat]);
    }
  });

  it('unpacking refuses headers that do not tile packed_data exactly, naming the field', () => {
    const { headers, packed } = packTensors(tensors);
    const refuse = (chunks: typeof headers, bytes: Uint8Array, field: string) => {
      try {
        unpackTensors(chunks, bytes);
        throw new Error('accepted');
      } catch (error) {
        expect(error).toBeInstanceOf(TensorStreamError);
        expect((error as TensorStreamError).field).toBe(field);
      }
    };
    refuse([headers[0], { ...headers[1], offset: 12 }], packed, 'offset');
    refuse([headers[0], { ...headers[1], totalBytes: 12 }], packed, 'total_bytes');
    refuse([headers[0]], packed, 'packed_data');
    refuse([{ ...headers[0], data: new Uint8Array(16) }, headers[1]], packed, 'data');
    expect(unpackTensors(headers, new Uint8Array(0))).toEqual(headers); // not packed: the chunks carry their bytes
  });

  it('the assembler takes a whole aligned tensor as a view, copies an unaligned one, and flatFloat32 joins consecutive views without a copy', () => {
    const bytes = new Uint8Array(40);
    new Float32Array(bytes.buffer, 4, 6).set(flat);
    const chunk = (offset: number) => ({
      envelope: undefined,
      name: 'w',
      shape: [6],
      dtype: 'FLOAT32' as const,
      totalBytes: 24,
      offset: 0,
      data: bytes.subarray(offset, offset + 24),
      tensorIndex: 0,
      tensorCount: 1,
    });
    const aligned = new TensorAssembler();
    aligned.push(chunk(4));
    const [view] = aligned.finish();
    expect(view.data.buffer).toBe(bytes.buffer);
    expect([...view.data]).toEqual([...flat]);
    const unaligned = new TensorAssembler();
    unaligned.push(chunk(5));
    expect(unaligned.finish()[0].data.buffer).not.toBe(bytes.buffer);
    expect(
      flatFloat32(
        tensors.map((t) => t.data),
        6,
      ).buffer,
    ).toBe(flat.buffer);
    const joined = flatFloat32([tensors[1].data, tensors[0].data], 6);
    expect(joined.buffer).not.toBe(flat.buffer);
    expect([...joined]).toEqual([0.25, -0.75, 1, -2, 3.5, 0]);
  });
});
