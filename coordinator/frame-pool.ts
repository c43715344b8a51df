// Buffers for the Session frames that carry a shared encoded model chunk (proto/wire.ts modelChunkFrame),
// reused across institutions and rounds. grpc-js copies a message into its own framed buffer when it
// writes it, and calls the write's callback only after that, so a frame goes back to the pool from that
// callback. Without the pool every institution's download allocated a fresh copy of the model per round.

export class FramePool {
  private readonly free = new Map<number, Buffer[]>();

  constructor(private readonly maxPerSize = 32) {}

  readonly take = (size: number): Buffer => this.free.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);

  give(frame: Buffer): void {
    const list = this.free.get(frame.length) ?? [];
    if (list.length < this.maxPerSize) list.push(frame);
    this.free.set(frame.length, list);
  }
}
