// The model a round's institutions download, serialised once: every download of the same model id and
// chunk size sends the same encoded messages instead of encoding the model again per institution.
// Only models up to `maxBytes` are kept (two at most: the global model and the candidate), so a very large
// model is still streamed chunk by chunk without a second full copy.
import { chunkTensors, type NamedTensor } from '../proto/tensor-stream.ts';
import type { TensorChunkMsg } from '../proto/wire.ts';

export class EncodedModelCache {
  private readonly entries = new Map<string, Buffer[]>();

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
    this.entries.set(key, encoded);
    while (this.entries.size > 2) this.entries.delete(this.entries.keys().next().value!);
    return encoded;
  }
}
