// Named tensors on the wire: split into chunks for a stream (send side) and reassembled from a stream
// (receive side). The sender never copies a tensor whole (chunks are views into it); the receiver holds
// exactly one copy, allocated once from the announced size. Bytes are little-endian.
import { DEFAULT_CHUNK_BYTES, type DTypeName, type Envelope, type TensorChunkMsg } from './wire.ts';

export type TensorData = Float32Array | Int32Array | Uint32Array | Float64Array | Uint8Array;

export interface NamedTensor {
  name: string;
  shape: number[];
  dtype: DTypeName;
  data: TensorData;
}

const ELEMENT_BYTES: Record<DTypeName, number> = { FLOAT32: 4, INT32: 4, UINT32: 4, FLOAT64: 8, BYTES: 1 };

export function dtypeOf(data: TensorData): DTypeName {
  if (data instanceof Float32Array) return 'FLOAT32';
  if (data instanceof Int32Array) return 'INT32';
  if (data instanceof Uint32Array) return 'UINT32';
  if (data instanceof Uint8Array) return 'BYTES';
  return 'FLOAT64';
}

function allocate(dtype: DTypeName, byteLength: number): TensorData {
  const buffer = new ArrayBuffer(byteLength);
  switch (dtype) {
    case 'FLOAT32': return new Float32Array(buffer);
    case 'INT32': return new Int32Array(buffer);
    case 'UINT32': return new Uint32Array(buffer);
    case 'FLOAT64': return new Float64Array(buffer);
    case 'BYTES': return new Uint8Array(buffer);
  }
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
        envelope: offset === 0 && index === 0 ? envelope ?? null : null,
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

export class TensorStreamError extends Error {
  constructor(message: string, readonly field: string) {
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
      const data = placed ?? allocate(chunk.dtype, chunk.totalBytes);
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
    c.bytes.set(chunk.data, c.received);
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
