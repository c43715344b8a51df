// The model a round's institutions download, serialised once: every download of the same model id and
// chunk size sends the same encoded messages instead of encoding the model again per institution.
// Only models up to `maxBytes` are kept (two at most: the global model and the candidate), so a very large
// model is still streamed chunk by chunk without a second full copy. For a packed whole frame only the
// tensors' headers are encoded; the bytes are the model's own memory.
import { chunkTensors, packTensors, type NamedTensor } from '@dpfed/proto/tensor-stream';
import type { TensorChunkMsg } from '@dpfed/proto/wire';

export class EncodedModelCache {
  private readonly entries = new Map<string, Buffer[]>();
  private readonly packedEntries = new Map<string, { headers: Buffer[]; data: Uint8Array }>();

  constructor(
    private readonly serialize: (chunk: TensorChunkMsg) => Buffer,
    private readonly maxBytes = 64 * 1024 * 1024,
  ) {}

  /** The encoded chunks of model `id`, or null when it is too large to keep encoded. */
  chunks(id: string, chunkBytes: number, tensors: () => NamedTensor[]): Buffer[] | null {
    if (!id) return null;
    const key = `${id}:${chunkBytes}`;
    const hit = this.entries.get(key);
    if (hit) return hit;
    const list = tensors();
    const total = list.reduce((n, t) => n + t.data.byteLength, 0);
    if (total > this.maxBytes) return null;
    const encoded = [...chunkTensors(list, chunkBytes)].map((chunk) => this.serialize(chunk));
    keepTwo(this.entries, key, encoded);
    return encoded;
  }

  /** Model `id` for a packed whole frame: its tensors' headers encoded, and its bytes (a view when the tensors are one flat vector). */
  packed(id: string, tensors: () => NamedTensor[]): { headers: Buffer[]; data: Uint8Array } {
    const hit = id ? this.packedEntries.get(id) : undefined;
    if (hit) return hit;
    const { headers, packed } = packTensors(tensors());
    const entry = { headers: headers.map((h) => this.serialize(h)), data: packed };
    if (id) keepTwo(this.packedEntries, id, entry);
    return entry;
  }
}

/** Keeps `value` under `key`, and only the two newest entries (the global model and the candidate). */
function keepTwo<V>(entries: Map<string, V>, key: string, value: V): void {
  entries.set(key, value);
  while (entries.size > 2) entries.delete(entries.keys().next().value!);
}
