// Float32 vectors of one length, handed out for institutions' updates and taken back once a round has
// aggregated them. Each round otherwise allocated a fresh vector per institution (4 MB each at 1M
// parameters); on this machine fresh memory costs page faults and the garbage collector's time to free it,
// which together were the largest item of a round's CPU. A vector handed out is overwritten in full by the
// update it receives (an incomplete upload is refused), so vectors are not cleared.

export class VectorPool {
  private readonly free: Float32Array[] = [];

  constructor(private readonly maxKept = 64) {}

  take(length: number): Float32Array {
    while (this.free.length) {
      const v = this.free.pop()!;
      if (v.length === length) return v;
    }
    return new Float32Array(length);
  }

  /** Gives vectors back; the caller must hold no other reference to them. */
  give(vectors: Iterable<Float32Array>): void {
    for (const v of vectors) if (this.free.length < this.maxKept) this.free.push(v);
  }
}
