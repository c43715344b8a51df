// Named tensors on the wire: split into chunks for a stream, or packed one after another for a whole
// frame (send side), and reassembled (receive side). The sender never copies a tensor whole (chunks are
// views into it); the receiver holds exactly one copy, allocated once from the announced size, or none
// when a tensor arrives whole and aligned (it is then a view of the received message). Bytes are
// little-endian.
import { DEFAULT_CHUNK_BYTES, type DTypeName, type Envelope, type TensorChunkMsg } from './wire.ts';

export type TensorData = Float32Array | Int32Array | Uint32Array | Float64Array | Uint8Array;

export interface NamedTensor {
  name: string;
  shape: number[];
  dtype: DTypeName;
  data: TensorData;
}

/** Bytes per element of each tensor type (0: not a tensor type). */
const ELEMENT_BYTES: Record<DTypeName, number> = { FLOAT32: 4, INT32: 4, UINT32: 4, FLOAT64: 8, BYTES: 1, DTYPE_UNSPECIFIED: 0, UNRECOGNIZED: 0 };

export function dtypeOf(data: TensorData): DTypeName {
  if (data instanceof Float32Array) return 'FLOAT32';
  if (data instanceof Int32Array) return 'INT32';
  if (data instanceof Uint32Array) return 'UINT32';
  if (data instanceof Uint8Array) return 'BYTES';
  return 'FLOAT64';
}

/** A typed array of `dtype` over `byteLength` bytes of `buffer` from `byteOffset` (aligned for the dtype). */
function typedView(dtype: DTypeName, buffer: ArrayBufferLike, byteOffset: number, byteLength: number): TensorData {
  const n = byteLength / ELEMENT_BYTES[dtype];
  switch (dtype) {
    case 'FLOAT32':
      return new Float32Array(buffer, byteOffset, n);
    case 'INT32':
      return new Int32Array(buffer, byteOffset, n);
    case 'UINT32':
      return new Uint32Array(buffer, byteOffset, n);
    case 'FLOAT64':
      return new Float64Array(buffer, byteOffset, n);
    case 'BYTES':
      return new Uint8Array(buffer, byteOffset, n);
    default:
      throw new TensorStreamError(`tensor dtype ${dtype} is not a tensor type`, 'dtype');
  }
}

function allocate(dtype: DTypeName, byteLength: number): TensorData {
  return typedView(dtype, new ArrayBuffer(byteLength), 0, byteLength);
}

/**
 * A tensor that arrives whole in one chunk, suitably aligned, is taken as it is: a typed view over the
 * chunk's bytes (which are the received message's own buffer, never reused by the transport) instead of a
 * fresh array and a copy.
 */
function adopted(chunk: TensorChunkMsg): TensorData | undefined {
  const d = chunk.data;
  if (chunk.offset !== 0 || d.length !== chunk.totalBytes || d.byteOffset % ELEMENT_BYTES[chunk.dtype] !== 0) return undefined;
  return typedView(chunk.dtype, d.buffer, d.byteOffset, d.length);
}

/** Splits tensors into chunks of at most `chunkBytes` payload (rounded down to whole elements). */
export function* chunkTensors(tensors: readonly NamedTensor[], chunkBytes = DEFAULT_CHUNK_BYTES, envelope?: Envelope): Generator<TensorChunkMsg> {
  if (!(chunkBytes >= 8)) throw new Error(`chunk size must be at least 8 bytes, got ${chunkBytes}`);
  for (let index = 0; index < tensors.length; index++) {
    const t = tensors[index];
    const element = ELEMENT_BYTES[t.dtype];
    const step = Math.floor(chunkBytes / element) * element;
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    let offset = 0;
    do {
      const end = Math.min(bytes.length, offset + step);
      yield {
        envelope: offset === 0 && index === 0 ? envelope : undefined,
        name: t.name,
        shape: offset === 0 ? t.shape : [],
        dtype: t.dtype,
        totalBytes: bytes.length,
        offset,
        data: bytes.subarray(offset, end),
        tensorIndex: index,
        tensorCount: tensors.length,
      };
      offset = end;
    } while (offset < bytes.length);
  }
}

/** The bytes of arrays that lie one after another in one buffer, as one view; null when they do not (or there are none). */
export function consecutiveBytes(parts: readonly TensorData[]): Uint8Array | null {
  if (parts.length === 0) return null;
  let end = parts[0].byteOffset;
  for (const p of parts) {
    if (p.buffer !== parts[0].buffer || p.byteOffset !== end) return null;
    end += p.byteLength;
  }
  return new Uint8Array(parts[0].buffer, parts[0].byteOffset, end - parts[0].byteOffset);
}

/** Float32 arrays as one flat vector of `length` values: a view when they lie one after another in one buffer, otherwise a copy. */
export function flatFloat32(parts: readonly Float32Array[], length: number): Float32Array {
  const bytes = consecutiveBytes(parts);
  if (bytes && bytes.byteLength === length * 4) return new Float32Array(bytes.buffer, bytes.byteOffset, length);
  const flat = new Float32Array(length);
  let at = 0;
  for (const p of parts) {
    flat.set(p, at);
    at += p.length;
  }
  if (at !== length) throw new Error(`flatFloat32: the parts hold ${at} values, expected ${length}`);
  return flat;
}

/**
 * Tensors for a packed whole frame (ModelBatch / ResultBatch packed_data): each tensor's header as a
 * chunk without data (offset = where its bytes start in `packed`), and every tensor's bytes one after
 * another. When the tensors are consecutive views into one buffer (a flat parameter vector), `packed` is
 * a view of it, not a copy.
 */
export function packTensors(tensors: readonly NamedTensor[], envelope?: Envelope): { headers: TensorChunkMsg[]; packed: Uint8Array } {
  const headers: TensorChunkMsg[] = [];
  let offset = 0;
  for (let index = 0; index < tensors.length; index++) {
    const t = tensors[index];
    headers.push({
      envelope: index === 0 ? envelope : undefined,
      name: t.name,
      shape: t.shape,
      dtype: t.dtype,
      totalBytes: t.data.byteLength,
      offset,
      data: new Uint8Array(0),
      tensorIndex: index,
      tensorCount: tensors.length,
    });
    offset += t.data.byteLength;
  }
  const consecutive = consecutiveBytes(tensors.map((t) => t.data));
  if (consecutive) return { headers, packed: consecutive };
  const packed = new Uint8Array(offset);
  for (const [i, t] of tensors.entries()) packed.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), headers[i].offset);
  return { headers, packed };
}

/**
 * The chunks of a whole frame, each carrying its tensor's bytes: as they are when the frame has no packed
 * data, otherwise cut from `packed` (views, no copy) after checking that the headers tile it exactly.
 */
export function unpackTensors(chunks: readonly TensorChunkMsg[], packed: Uint8Array): TensorChunkMsg[] {
  if (packed.length === 0) return [...chunks];
  let at = 0;
  const out = chunks.map((chunk) => {
    if (chunk.data.length !== 0) throw new TensorStreamError(`tensor "${chunk.name}": a packed frame carries the bytes in packed_data, not in the tensor`, 'data');
    if (chunk.offset !== at) throw new TensorStreamError(`tensor "${chunk.name}": expected offset ${at} in packed_data, got ${chunk.offset}`, 'offset');
    if (!(Number.isSafeInteger(chunk.totalBytes) && chunk.totalBytes >= 0) || at + chunk.totalBytes > packed.length) {
      throw new TensorStreamError(`tensor "${chunk.name}": ${chunk.totalBytes} bytes at offset ${at} run past packed_data (${packed.length} bytes)`, 'total_bytes');
    }
    const data = packed.subarray(at, at + chunk.totalBytes);
    at += chunk.totalBytes;
    return { ...chunk, offset: 0, data };
  });
  if (at !== packed.length) throw new TensorStreamError(`packed_data holds ${packed.length} bytes, the tensors ${at}`, 'packed_data');
  return out;
}

export class TensorStreamError extends Error {
  constructor(
    message: string,
    readonly field: string,
  ) {
    super(message);
  }
}

/** Reassembles chunks; `expect` may refuse a tensor by name/shape/dtype as soon as its first chunk arrives. */
export class TensorAssembler {
  private readonly done: NamedTensor[] = [];
  private current: { tensor: NamedTensor; bytes: Uint8Array; received: number; index: number } | null = null;
  private tensorCount = -1;
  private totalBytes = 0;

  constructor(
    private readonly expect?: (name: string, shape: readonly number[], dtype: DTypeName, index: number) => void,
    private readonly maxTotalBytes = Number.MAX_SAFE_INTEGER,
    /** Where a tensor's bytes go (e.g. a view into one flat buffer, so nothing is copied afterwards); default a new array. */
    private readonly place?: (index: number, dtype: DTypeName, byteLength: number) => TensorData | undefined,
  ) {}

  push(chunk: TensorChunkMsg): void {
    if (this.tensorCount < 0) this.tensorCount = chunk.tensorCount;
    else if (chunk.tensorCount !== this.tensorCount) throw new TensorStreamError('tensor_count changed within one stream', 'tensor_count');
    if (!this.current) {
      if (chunk.offset !== 0) throw new TensorStreamError(`tensor "${chunk.name}": first chunk must start at offset 0, got ${chunk.offset}`, 'offset');
      if (chunk.tensorIndex !== this.done.length) throw new TensorStreamError(`tensor "${chunk.name}": expected tensor_index ${this.done.length}, got ${chunk.tensorIndex}`, 'tensor_index');
      const element = ELEMENT_BYTES[chunk.dtype];
      if (!element) throw new TensorStreamError(`tensor "${chunk.name}": unknown dtype ${chunk.dtype}`, 'dtype');
      if (!chunk.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new TensorStreamError(`tensor "${chunk.name}": bad shape`, 'shape');
      const elements = chunk.shape.reduce((a, b) => a * b, 1);
      if (elements * element !== chunk.totalBytes) {
        throw new TensorStreamError(`tensor "${chunk.name}": shape [${chunk.shape.join(',')}] needs ${elements * element} bytes, total_bytes says ${chunk.totalBytes}`, 'total_bytes');
      }
      this.expect?.(chunk.name, chunk.shape, chunk.dtype, chunk.tensorIndex);
      this.totalBytes += chunk.totalBytes;
      if (this.totalBytes > this.maxTotalBytes) throw new TensorStreamError(`stream exceeds ${this.maxTotalBytes} bytes`, 'total_bytes');
      const placed = this.place?.(chunk.tensorIndex, chunk.dtype, chunk.totalBytes);
      if (placed && (placed.byteLength !== chunk.totalBytes || dtypeOf(placed) !== chunk.dtype)) {
        throw new TensorStreamError(`tensor "${chunk.name}": the receiver's buffer does not fit ${chunk.totalBytes} bytes of ${chunk.dtype}`, 'total_bytes');
      }
      const data = placed ?? adopted(chunk) ?? allocate(chunk.dtype, chunk.totalBytes);
      this.current = {
        tensor: { name: chunk.name, shape: [...chunk.shape], dtype: chunk.dtype, data },
        bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
        received: 0,
        index: chunk.tensorIndex,
      };
    } else if (chunk.name !== this.current.tensor.name || chunk.tensorIndex !== this.current.index) {
      throw new TensorStreamError(`tensor "${this.current.tensor.name}" incomplete: got a chunk of "${chunk.name}" at ${this.current.received} of ${this.current.bytes.length} bytes`, 'name');
    } else if (chunk.offset !== this.current.received) {
      throw new TensorStreamError(`tensor "${chunk.name}": expected offset ${this.current.received}, got ${chunk.offset}`, 'offset');
    }
    const c = this.current;
    if (c.received + chunk.data.length > c.bytes.length) throw new TensorStreamError(`tensor "${chunk.name}": more bytes than total_bytes ${c.bytes.length}`, 'data');
    if (c.bytes.buffer !== chunk.data.buffer || c.bytes.byteOffset !== chunk.data.byteOffset) c.bytes.set(chunk.data, c.received); // an adopted chunk is already in place
    c.received += chunk.data.length;
    if (c.received === c.bytes.length) {
      this.done.push(c.tensor);
      this.current = null;
    }
  }

  /** The complete tensors; throws when the stream ended mid-tensor or short of tensor_count. */
  finish(expectedCount?: number): NamedTensor[] {
    if (this.current) throw new TensorStreamError(`tensor "${this.current.tensor.name}" incomplete: ${this.current.received} of ${this.current.bytes.length} bytes`, 'data');
    const count = expectedCount ?? (this.tensorCount < 0 ? 0 : this.tensorCount);
    if (this.done.length !== count) throw new TensorStreamError(`expected ${count} tensors, received ${this.done.length}`, 'tensor_count');
    return this.done;
  }
}

/**
 * The tensors of a whole frame (ModelBatch, ResultBatch): checked and assembled like a stream. Packed
 * bytes are used where they arrived (aligned tensors become views); otherwise `place` may say where each
 * tensor's bytes go.
 */
export function assembleWhole(chunks: readonly TensorChunkMsg[], packed: Uint8Array, place?: (index: number, dtype: DTypeName, byteLength: number) => TensorData | undefined): NamedTensor[] {
  const assembler = new TensorAssembler(undefined, Number.MAX_SAFE_INTEGER, packed.length > 0 ? undefined : place);
  for (const chunk of unpackTensors(chunks, packed)) assembler.push(chunk);
  return assembler.finish();
}
