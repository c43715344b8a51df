// Float32 vectors that receive institutions' updates, taken back once a round has aggregated them. Each
// round otherwise allocated a fresh vector per institution (4 MB each at 1M parameters). A vector handed
// out is overwritten in full by the update it receives (an incomplete upload is refused), so vectors are
// not cleared.
import { SizedPool } from '@dpfed/proto/sized-pool';

export class VectorPool extends SizedPool<Float32Array> {
  /** maxKept: vectors kept of one length (a run's updates all have the model's length). */
  constructor(maxKept = 64) {
    super((length) => new Float32Array(length), maxKept);
  }
}
