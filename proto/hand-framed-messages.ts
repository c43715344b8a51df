// Session frames that carry tensor bytes, written as protobuf bytes directly instead of through the
// generated encoder: an encoded model chunk shared by every institution's stream, a result chunk whose data
// is copied once from the caller's tensor, and whole models and results whose tensor bytes are placed so the
// receiver can view them as float32 where grpc-js reassembles the message. The bytes are exactly what the
// generated encoder accepts as these messages (test/buffer-pools.test.ts decodes each with it); the field
// numbers are those of proto/dpfed/v1/federation.proto. proto/zero-copy-framing.ts decides when these are
// used.
import { ResultChunk, Task } from './generated/dpfed/v1/federation.ts';
import { MESSAGE_PREFIX_BYTES } from './grpc-internals.ts';
import { encodeMessage, serializeTensorChunk, type ResultHeaderMsg, type TaskMsg, type TensorChunkMsg } from './wire.ts';

/**
 * A CoordinatorFrame carrying an already serialised TensorChunk: the bytes protobuf would produce for
 * { callId, modelChunk }, written directly (field 4, length-delimited, then field 1, varint) so the
 * encoded model is shared by every institution's stream instead of being encoded again per call.
 */
export function modelChunkFrame(callId: number, encodedChunk: Uint8Array, allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer {
  return joined([lengthDelimited(4, encodedChunk.length), encodedChunk, callIdField(callId)], allocate);
}

/**
 * A ClientFrame { callId, result: { tensor: chunk } } written directly into one buffer: the chunk's fields
 * but its data encoded by protobuf, then the data (field 7) copied once from the caller's tensor, instead
 * of protobuf allocating a fresh message per chunk. Protobuf readers accept fields in any order.
 */
export function resultTensorFrame(callId: number, chunk: TensorChunkMsg, allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer {
  const tensor = tensorChunkParts(chunk);
  const tensorHead = lengthDelimited(2, tensor.length); // ResultChunk.tensor
  const resultHead = lengthDelimited(5, tensorHead.length + tensor.length); // ClientFrame.result
  return joined([resultHead, tensorHead, ...tensor.parts, callIdField(callId)], allocate);
}

/**
 * A CoordinatorFrame { callId, wholeModel: { tensors, packedData } } written directly: the tensors'
 * headers (already serialised TensorChunks without data), then every tensor's bytes in `packed`, aligned
 * for the receiver (packedFrame). Null when it would exceed `maxBytes`: the model then goes in chunks.
 */
export function packedModelFrame(callId: number, encodedHeaders: readonly Uint8Array[], packed: Uint8Array, maxBytes: number, allocate: (size: number) => Buffer = Buffer.allocUnsafe): Buffer | null {
  return packedFrame([{ field: 8, leading: modelBatchHeaders(encodedHeaders) }], MODEL_BATCH_PACKED, packed, callId, maxBytes, allocate); // CoordinatorFrame.whole_model
}

/**
 * A CoordinatorFrame { callId, task: { ...task, model: { tensors, packedData } } }: a task with the model
 * it refers to attached, packed and aligned like packedModelFrame. Null when it would exceed `maxBytes`.
 */
export function taskWithModelFrame(
  callId: number,
  task: TaskMsg,
  encodedHeaders: readonly Uint8Array[],
  packed: Uint8Array,
  maxBytes: number,
  allocate: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer | null {
  const taskFields = encodeMessage(Task, { ...task, model: undefined });
  // CoordinatorFrame.task holds the task's own fields, then Task.model (field 10)
  return packedFrame(
    [
      { field: 3, leading: [taskFields] },
      { field: 10, leading: modelBatchHeaders(encodedHeaders) },
    ],
    MODEL_BATCH_PACKED,
    packed,
    callId,
    maxBytes,
    allocate,
  );
}

/**
 * A ClientFrame { callId, wholeResult: { header, tensors, packedData } } written directly: the header,
 * the tensors' headers (TensorChunks without data, offsets into `packed`), then the bytes, aligned for the
 * receiver. Null when it would exceed `maxBytes`: the result then goes in chunks.
 */
export function packedResultFrame(
  callId: number,
  header: ResultHeaderMsg,
  tensorHeaders: readonly TensorChunkMsg[],
  packed: Uint8Array,
  maxBytes: number,
  allocate: (size: number) => Buffer = Buffer.allocUnsafe,
): Buffer | null {
  // ResultChunk { header } encodes as field 1, as ResultBatch.header is: the same bytes.
  const headerField = encodeMessage(ResultChunk, { header });
  const parts: ArrayLike<number>[] = [headerField];
  for (const chunk of tensorHeaders) {
    const encoded = serializeTensorChunk(chunk);
    parts.push(lengthDelimited(2, encoded.length), encoded); // ResultBatch.tensors
  }
  return packedFrame([{ field: 10, leading: parts }], { padding: 4, data: 3 }, packed, callId, maxBytes, allocate); // ClientFrame.whole_result
}

const NO_BYTES = new Uint8Array(0);

/** ModelBatch's padding and packed_data fields. */
const MODEL_BATCH_PACKED = { padding: 3, data: 2 };

/** ModelBatch.tensors: each encoded header as field 1. */
function modelBatchHeaders(encodedHeaders: readonly Uint8Array[]): ArrayLike<number>[] {
  return encodedHeaders.flatMap((h) => [lengthDelimited(1, h.length), h]);
}

/**
 * A frame whose last nested message ends with a padding field and a data field holding `packed`, then
 * the call id. `nesting` lists the enclosing length-delimited fields from the outside in, each with the
 * parts that precede the next level. The padding (0-7 bytes) is chosen so that the data starts at a
 * multiple of 4 counted from the start of grpc's 5-byte message prefix: where grpc-js reassembles a
 * received message (a buffer of its own, prefix first), the receiver can then view the bytes as float32
 * without copying them.
 */
function packedFrame(
  nesting: readonly { field: number; leading: readonly ArrayLike<number>[] }[],
  fields: { padding: number; data: number },
  packed: Uint8Array,
  callId: number,
  maxBytes: number,
  allocate: (size: number) => Buffer,
): Buffer | null {
  const build = (pad: number) => {
    let body: ArrayLike<number>[] = [lengthDelimited(fields.padding, pad), new Uint8Array(pad), lengthDelimited(fields.data, packed.length)];
    let dataAt = totalLength(body); // where the data starts, counted from the start of `body`
    for (let level = nesting.length - 1; level >= 0; level--) {
      const inner = [...nesting[level].leading, ...body];
      const head = lengthDelimited(nesting[level].field, totalLength(inner) + packed.length);
      dataAt += head.length + totalLength(nesting[level].leading);
      body = [head, ...inner];
    }
    return { parts: [...body, packed, callIdField(callId)], dataAt };
  };
  for (let pad = 0; pad < 8; pad++) {
    const candidate = build(pad);
    if ((MESSAGE_PREFIX_BYTES + candidate.dataAt) % 4 === 0) return joinedWithin(candidate.parts, maxBytes, allocate);
  }
  return joinedWithin(build(0).parts, maxBytes, allocate); // not reached: eight paddings cover every residue even when a length grows a byte
}

/** A TensorChunk in parts: its fields but data as protobuf encodes them, then the data field's head and the data. */
function tensorChunkParts(chunk: TensorChunkMsg): { parts: ArrayLike<number>[]; length: number } {
  const parts = [serializeTensorChunk({ ...chunk, data: NO_BYTES }), lengthDelimited(7, chunk.data.length), chunk.data];
  return { parts, length: totalLength(parts) };
}

/** `parts` one after another in one buffer from `allocate`. */
function joined(parts: readonly ArrayLike<number>[], allocate: (size: number) => Buffer): Buffer {
  const frame = allocate(totalLength(parts));
  let at = 0;
  for (const part of parts) {
    frame.set(part, at);
    at += part.length;
  }
  return frame;
}

/** joined(), or null when the parts come to more than `maxBytes`. */
function joinedWithin(parts: readonly ArrayLike<number>[], maxBytes: number, allocate: (size: number) => Buffer): Buffer | null {
  return totalLength(parts) > maxBytes ? null : joined(parts, allocate);
}

function totalLength(parts: readonly ArrayLike<number>[]): number {
  return parts.reduce((n, part) => n + part.length, 0);
}

/** The tag and length of a length-delimited field. */
function lengthDelimited(field: number, length: number): number[] {
  return [(field << 3) | 2, ...varint(length)];
}

/** Field 1 (call_id) of a session frame. */
function callIdField(callId: number): number[] {
  return [0x08, ...varint(callId)];
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  let v = value;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return bytes;
}
