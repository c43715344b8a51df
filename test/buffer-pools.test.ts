// The coordinator's reuse of update vectors and download frames.
import { describe, expect, it } from 'vitest';
import { FramePool } from '../proto/frame-pool.ts';
import { VectorPool } from '../coordinator/vector-pool.ts';
import { federationService, serializeTensorChunk, modelChunkFrame, resultTensorFrame, wholeModelFrame, wholeResultFrame, type ClientFrameMsg, type CoordinatorFrameMsg } from '../proto/wire.ts';

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

describe('wholeResultFrame / wholeModelFrame', () => {
  const service = federationService();
  const kernel = { name: 'dense_0/kernel', shape: [2, 2], dtype: 'FLOAT32' as const, totalBytes: 16, offset: 0, data: new Uint8Array(new Float32Array([1, -2, 3.5, 0]).buffer), tensorIndex: 0, tensorCount: 2 };
  const bias = { name: 'dense_0/bias', shape: [2], dtype: 'FLOAT32' as const, totalBytes: 8, offset: 0, data: new Uint8Array(new Float32Array([0.25, -0.75]).buffer), tensorIndex: 1, tensorCount: 2 };
  const envelope = { runId: 'run-1', round: 2, modelVersion: 1, institutionId: 'bank-1', session: Buffer.alloc(16, 9) };
  const header = { envelope, kind: 'TRAIN_RESULT' as const, numExamples: 12, metrics: { loss: 0.5 }, privacyEvent: null, tensorCount: 2, masked: false };

  it('a whole result decodes as the protobuf encoding of the same frame; null above the size limit', () => {
    const frame = wholeResultFrame(300, header, [kernel, bias], 1 << 20)!;
    const decoded = service.Session.requestDeserialize(frame) as ClientFrameMsg;
    const reference = service.Session.requestDeserialize(service.Session.requestSerialize({ callId: 300, wholeResult: { header, tensors: [kernel, bias] } }));
    expect(decoded).toEqual(reference);
    expect(decoded.body).toBe('wholeResult');
    expect(new Float32Array(new Uint8Array(decoded.wholeResult!.tensors[0].data).buffer)).toEqual(new Float32Array([1, -2, 3.5, 0]));
    expect(wholeResultFrame(300, header, [kernel, bias], frame.length - 1)).toBeNull();
  });

  it('a whole model decodes as the protobuf encoding of the same frame; null above the size limit', () => {
    const chunks = [serializeTensorChunk(kernel), serializeTensorChunk(bias)];
    const frame = wholeModelFrame(7, chunks, 1 << 20)!;
    expect(wholeModelFrame(7, chunks, frame.length - 1)).toBeNull();
    const decoded = service.Session.responseDeserialize(frame) as CoordinatorFrameMsg;
    expect(decoded).toEqual(service.Session.responseDeserialize(service.Session.responseSerialize({ callId: 7, wholeModel: { tensors: [kernel, bias] } })));
    expect(decoded.wholeModel!.tensors.map((t) => t.name)).toEqual(['dense_0/kernel', 'dense_0/bias']);
  });
});
