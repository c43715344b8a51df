// Buffers for the Session frames that carry tensor bytes (proto/wire.ts modelChunkFrame on the coordinator,
// resultTensorFrame at the institution), reused from round to round. grpc-js copies a message into its own
// framed buffer when it writes it, and calls the write's callback only after that, so a frame goes back
// to the pool from that callback. Without the pool every download and upload allocated a fresh copy of
// the model per round, and fresh memory (page faults, then the garbage collector) was the largest CPU
// cost of a round here.

export class FramePool {
  private readonly free = new Map<number, Buffer[]>();

  constructor(private readonly maxPerSize = 16) {}

  readonly take = (size: number): Buffer => this.free.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);

  give(frame: Buffer): void {
    const list = this.free.get(frame.length) ?? [];
    if (list.length < this.maxPerSize) list.push(frame);
    this.free.set(frame.length, list);
  }
}
