// Buffers for the Session frames that carry tensor bytes (proto/wire.ts modelChunkFrame on the coordinator,
// resultTensorFrame at the institution), reused from round to round. grpc-js copies a message into its own
// framed buffer when it writes it, and calls the write's callback only after that, so a frame goes back
// to the pool from that callback. Without the pool every download and upload allocated a fresh copy of
// the model per round, and fresh memory (page faults, then the garbage collector) was the largest CPU
// cost of a round here.
import { SizedPool } from './sized-pool.ts';

export class FramePool extends SizedPool<Buffer> {
  constructor(maxPerSize = 16) {
    super((size) => Buffer.allocUnsafeSlow(size), maxPerSize);
  }
}
