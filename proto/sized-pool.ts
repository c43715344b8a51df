// Big buffers kept for reuse, by size: what a round needs again (update vectors, frames of tensor bytes)
// comes from here instead of fresh memory, which costs page faults and then the garbage
// collector's time to free it. A buffer taken is the caller's until given back; the caller gives it back
// only when nothing else refers to it any more. Buffers are handed out as they were left, not cleared.

export class SizedPool<T extends { readonly length: number }> {
  private readonly free = new Map<number, T[]>();

  constructor(
    private readonly make: (size: number) => T,
    private readonly maxPerSize: number,
  ) {}

  /** A kept buffer of exactly `size`, or a new one. */
  readonly take = (size: number): T => this.free.get(size)?.pop() ?? this.make(size);

  /** Keeps each buffer for reuse, at most maxPerSize of one size (the rest is left to the collector). */
  give(...items: T[]): void {
    for (const item of items) {
      const list = this.free.get(item.length) ?? [];
      if (list.length < this.maxPerSize) list.push(item);
      this.free.set(item.length, list);
    }
  }
}
