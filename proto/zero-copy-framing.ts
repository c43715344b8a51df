// The one switch between the two ways the Session frames that carry tensor bytes are written.
//
// Zero-copy (the default): the frames are written by hand (proto/hand-framed-messages.ts) into pooled
// buffers (proto/frame-pool.ts) that leave room for grpc's message prefix, and grpc-js is wrapped to send
// them without copying (proto/grpc-internals.ts installPreframedSends); whole models and results are
// padded so the receiver can view their bytes as float32 where they arrived.
//
// Off (env DPFED_ZERO_COPY=0, or the zeroCopy option of the coordinator and of the institution's
// connection): every frame is a message encoded by the generated encoder (proto/generated/), with no pool,
// no wrapped grpc-js and no padding (a receiver then copies the unaligned bytes). The bytes on the wire
// decode to the same messages either way, so a federation's results do not depend on the switch
// (test/zero-copy-switch.test.ts); `npm run bench -- --only rounds` reports the round overhead both ways.
import { CoordinatorFrame, ClientFrame, TensorChunk } from './generated/dpfed/v1/federation.ts';
import { FramePool } from './frame-pool.ts';
import { installPreframedSends } from './grpc-internals.ts';
import { modelChunkFrame, packedModelFrame, packedResultFrame, resultTensorFrame, taskWithModelFrame } from './hand-framed-messages.ts';
import { encodeMessage, type ResultHeaderMsg, type TaskMsg, type TensorChunkMsg } from './wire.ts';

/** The environment variable that switches zero-copy framing off ("0") or on ("1", the default). */
export const ZERO_COPY_ENV = 'DPFED_ZERO_COPY';

/** Whether frames are written zero-copy: `option` when given, else DPFED_ZERO_COPY (absent: on). */
export function zeroCopyEnabled(option?: boolean): boolean {
  if (option !== undefined) return option;
  const value = process.env[ZERO_COPY_ENV];
  if (value === undefined || value === '' || value === '1') return true;
  if (value === '0') return false;
  throw new Error(`${ZERO_COPY_ENV}: expected 0 or 1, got ${JSON.stringify(value.slice(0, 20))}`);
}

/** A frame ready to write: its bytes, and what to call once grpc-js has taken them (the pooled buffer goes back). */
export interface OutgoingFrame {
  bytes: Buffer;
  release?: () => void;
}

const NO_BYTES = new Uint8Array(0);

export class ZeroCopyFraming {
  readonly enabled: boolean;
  private readonly pool: FramePool | null;

  /** `zeroCopy` overrides DPFED_ZERO_COPY; `poolSize` is how many frames of one size the pool keeps. */
  constructor(o: { zeroCopy?: boolean; poolSize?: number } = {}) {
    this.enabled = zeroCopyEnabled(o.zeroCopy);
    this.pool = this.enabled ? new FramePool(o.poolSize) : null;
    if (this.enabled) installPreframedSends();
  }

  /** CoordinatorFrame { callId, modelChunk } around a TensorChunk already encoded (shared by every download of the model). */
  modelChunk(callId: number, encodedChunk: Uint8Array): OutgoingFrame {
    if (this.pool) return this.pooled(modelChunkFrame(callId, encodedChunk, this.pool.take));
    return { bytes: encodeMessage(CoordinatorFrame, { callId, modelChunk: TensorChunk.decode(encodedChunk) }) };
  }

  /** CoordinatorFrame { callId, wholeModel }: the tensors' encoded headers and their bytes; null when over `maxBytes`. */
  packedModel(callId: number, encodedHeaders: readonly Uint8Array[], packed: Uint8Array, maxBytes: number): OutgoingFrame | null {
    if (this.pool) return this.pooledOrNull(packedModelFrame(callId, encodedHeaders, packed, maxBytes, this.pool.take));
    return within(encodeMessage(CoordinatorFrame, { callId, wholeModel: { tensors: encodedHeaders.map((h) => TensorChunk.decode(h)), packedData: packed, padding: NO_BYTES } }), maxBytes);
  }

  /** CoordinatorFrame { callId, task } with the task's model attached (Task.model); null when over `maxBytes`. */
  taskWithModel(callId: number, task: TaskMsg, encodedHeaders: readonly Uint8Array[], packed: Uint8Array, maxBytes: number): OutgoingFrame | null {
    if (this.pool) return this.pooledOrNull(taskWithModelFrame(callId, task, encodedHeaders, packed, maxBytes, this.pool.take));
    const model = { tensors: encodedHeaders.map((h) => TensorChunk.decode(h)), packedData: packed, padding: NO_BYTES };
    return within(encodeMessage(CoordinatorFrame, { callId, task: { ...task, model } }), maxBytes);
  }

  /** ClientFrame { callId, wholeResult }: the header, the tensors' headers and their bytes; null when over `maxBytes`. */
  packedResult(callId: number, header: ResultHeaderMsg, tensorHeaders: readonly TensorChunkMsg[], packed: Uint8Array, maxBytes: number): OutgoingFrame | null {
    if (this.pool) return this.pooledOrNull(packedResultFrame(callId, header, tensorHeaders, packed, maxBytes, this.pool.take));
    return within(encodeMessage(ClientFrame, { callId, wholeResult: { header, tensors: [...tensorHeaders], packedData: packed, padding: NO_BYTES } }), maxBytes);
  }

  /** ClientFrame { callId, result: { tensor: chunk } }: one chunk of an uploaded result. */
  resultTensor(callId: number, chunk: TensorChunkMsg): OutgoingFrame {
    if (this.pool) return this.pooled(resultTensorFrame(callId, chunk, this.pool.take));
    return { bytes: encodeMessage(ClientFrame, { callId, result: { tensor: chunk } }) };
  }

  private pooled(frame: Buffer): OutgoingFrame {
    const pool = this.pool!;
    return { bytes: frame, release: () => pool.give(frame) };
  }

  private pooledOrNull(frame: Buffer | null): OutgoingFrame | null {
    return frame ? this.pooled(frame) : null;
  }
}

function within(bytes: Buffer, maxBytes: number): OutgoingFrame | null {
  return bytes.length > maxBytes ? null : { bytes };
}
