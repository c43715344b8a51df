// The global models an institution holds: the last two it received, by the coordinator's model id (the
// candidate it evaluated, then trained from), each as one flat Float32Array shared with the learner
// (read-only). A model already held is not downloaded again.
import { parameterCount, parameterShapes, type ModelSpec } from '@dpfed/proto/model-spec';
import type { CoordinatorLink } from '@dpfed/proto/coordinator-link';
import { assembleWhole, flatFloat32, type NamedTensor } from '@dpfed/proto/tensor-stream';
import type { Envelope, TaskMsg } from '@dpfed/proto/wire';

export class HeldModels {
  private readonly models: { id: string; values: Float32Array }[] = [];

  constructor(
    private readonly connection: CoordinatorLink,
    private readonly log: (line: string) => void,
  ) {}

  /** The model held under `modelId`, if any. */
  held(modelId: string | undefined): Float32Array | undefined {
    return modelId ? this.models.find((m) => m.id === modelId)?.values : undefined;
  }

  /**
   * The model a task refers to, as one flat vector (read-only: learners must not modify it). A model
   * already held under the task's model id is not downloaded again (a round's training model is the
   * previous round's evaluated candidate, which came attached to the EVALUATE task). A download in chunks
   * is received straight into one flat vector; a packed one is used where it arrived.
   */
  async download(envelope: Envelope, spec: ModelSpec, modelId: string): Promise<Float32Array> {
    const cached = this.held(modelId);
    if (cached) return cached;
    const shapes = parameterShapes(spec);
    const count = parameterCount(spec);
    const offsets: number[] = [];
    shapes.reduce((offset, p) => (offsets.push(offset), offset + p.shape.reduce((a, b) => a * b, 1)), 0);
    let placed: Float32Array | null = null;
    const tensors = await this.connection.downloadModel(envelope, undefined, '', (index, dtype, byteLength) => {
      const size = shapes[index] ? shapes[index].shape.reduce((a, b) => a * b, 1) : -1;
      placed ??= new Float32Array(count);
      return dtype === 'FLOAT32' && byteLength === size * 4 ? placed.subarray(offsets[index], offsets[index] + size) : undefined;
    });
    return this.keep(modelId, spec, tensors, 'model download');
  }

  /** Keeps the model an EVALUATE task brought with it (Session stream), so the task needs no download. */
  keepAttached(task: TaskMsg, spec: ModelSpec): void {
    const attached = task.model;
    if (!attached || attached.packedData.length === 0 || !task.modelId || this.models.some((m) => m.id === task.modelId)) return;
    try {
      this.keep(task.modelId, spec, assembleWhole(attached.tensors, attached.packedData), 'model attached to the task');
    } catch (error) {
      this.log(`task ${task.kind} round ${task.envelope.round}: ${(error as Error).message}; downloading the model instead`);
    }
  }

  /** Checks a received model against the spec, as one flat vector (without a copy when its tensors lie one after another), and keeps it under `modelId`. */
  private keep(modelId: string, spec: ModelSpec, tensors: readonly NamedTensor[], what: string): Float32Array {
    const shapes = parameterShapes(spec);
    shapes.forEach(({ name, shape }, i) => {
      const t = tensors[i];
      const size = shape.reduce((a, b) => a * b, 1);
      if (!t || t.name !== name || t.dtype !== 'FLOAT32' || t.data.length !== size) throw new Error(`${what}: expected tensor "${name}" [${shape.join(',')}] at position ${i}`);
    });
    if (tensors.length !== shapes.length) throw new Error(`${what}: expected ${shapes.length} tensors, got ${tensors.length}`);
    const flat = flatFloat32(
      tensors.map((t) => t.data as Float32Array),
      parameterCount(spec),
    );
    if (modelId) {
      this.models.unshift({ id: modelId, values: flat });
      this.models.length = Math.min(this.models.length, 2);
    }
    return flat;
  }
}
