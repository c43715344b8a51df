// Buffers for the Session frames that carry tensor bytes (proto/hand-framed-messages.ts: modelChunkFrame,
// packedModelFrame and taskWithModelFrame on the coordinator, resultTensorFrame and packedResultFrame at the
// institution), reused from round to round; proto/zero-copy-framing.ts uses them unless switched off.
// Each frame is handed out with room for grpc's message prefix in front of it (proto/grpc-internals.ts), so
// grpc-js sends it without copying; grpc-js calls a write's callback once the bytes are on their way, and
// the frame goes back to the pool from that callback. Without the pool every download and upload would
// allocate a fresh copy of the model per round, and fresh memory (page faults, then the garbage collector)
// is the largest CPU cost of a round in the round-overhead bench.
import { MESSAGE_PREFIX_BYTES, preframed } from './grpc-internals.ts';
import { SizedPool } from './sized-pool.ts';

export class FramePool {
  private readonly pool: SizedPool<Buffer>;

  constructor(maxPerSize = 16) {
    this.pool = new SizedPool((size) => Buffer.allocUnsafeSlow(size), maxPerSize);
  }

  /** A frame of `size` bytes, marked as preframed (grpc's prefix fits in front of it). */
  readonly take = (size: number): Buffer => preframed(this.pool.take(size + MESSAGE_PREFIX_BYTES).subarray(MESSAGE_PREFIX_BYTES));

  /** Gives a frame from take() back, once nothing refers to it any more. */
  give(frame: Buffer): void {
    this.pool.give(Buffer.from(frame.buffer, frame.byteOffset - MESSAGE_PREFIX_BYTES, frame.length + MESSAGE_PREFIX_BYTES));
  }
}
